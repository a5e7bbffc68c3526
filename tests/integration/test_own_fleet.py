"""A new user's path with their own fleet, on a real fleet's recording (Backblaze's disks,
"Hard drive data and stats, Backblaze, Inc."): infer a catalogue, replay with no false dead
letter, train, evaluate, backtest through Kafka, Spark and Redis; evaluate's and the
backtest's event tables agree on the windows the job closes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKBLAZE = ROOT.parent / "shared" / "data" / "backblaze"
COLUMNS = ["--device-column", "serial_number", "--time-column", "date"]
SENSORS = "smart_1_raw,smart_5_raw,smart_9_raw,smart_194_raw,smart_197_raw"


def _prognos(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )
    assert result.returncode == 0, (
        f"prognos {' '.join(args[:2])} exited {result.returncode}:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture
def env(kafka_bootstrap: str, redis_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROGNOS_")}
    return {
        **base,
        "PROGNOS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PROGNOS_REDIS_URL": redis_url,
        "PROGNOS_SPARK_UI": "0",
    }


def test_a_new_users_path_on_backblaze(
    env: dict[str, str], unique_topic: str, dlq_topic: str, tmp_path: Path
) -> None:
    drives = BACKBLAZE / "drives_sample3000.csv"
    failures = BACKBLAZE / "failures.csv"
    if not drives.is_file():
        pytest.fail(
            f"the Backblaze sample is not at {drives}; the repo expects ../shared beside it"
        )
    catalogue = tmp_path / "disks.toml"

    # 1. A catalogue from the recording: every value it holds passes.
    out = _prognos(
        env, "catalogue", "infer", str(drives), *COLUMNS,
        "--metadata", "model,capacity_bytes", "--ignore", "failure", "--out", str(catalogue),
    )  # fmt: skip
    assert catalogue.is_file() and "smart_197_raw" in catalogue.read_text()

    # 2. Replayed with it: no false dead letter.
    out = _prognos(
        env, "replay", str(drives), *COLUMNS, "--metadata", "model,capacity_bytes",
        "--ignore", "failure", "--catalogue", str(catalogue), "--topic", unique_topic,
        "--as-fast-as-possible",
    )  # fmt: skip
    assert "112,299 readings to" in out and " 0 dead letters" in out, out

    # 3. Trained on it with its failure log (kept small for CI: one network, few epochs).
    model = tmp_path / "model"
    out = _prognos(
        env, "train", "--data", str(drives), *COLUMNS, "--sensors", SENSORS,
        "--failures", str(failures), "--events-time-column", "failure_date",
        "--catalogue", str(catalogue), "--out", str(model), "--lead", "1d",
        "--ensemble", "none", "--folds", "1", "--epochs", "8", "--no-plots", "--seed", "7",
    )  # fmt: skip
    for name in ("model.onnx", "split.json", "catalogue.toml", "training.json", "report.json"):
        assert (model / name).is_file(), f"training wrote no {name}"

    # 4. Evaluated: the operator's figures, beside Backblaze's own rule.
    report = json.loads((model / "report.json").read_text())
    events = report["events"]
    for key in ("failures", "caught", "caught_share", "median_lead_s", "false_alerts",
                "device_months", "false_alerts_per_device_month"):  # fmt: skip
        assert key in events, key
    assert events["failures"] > 0
    assert report["baselines"], "no rule baseline beside the model"

    # 5. Backtest: the same devices through Kafka, Spark and Redis.
    backtest = tmp_path / "backtest"
    out = _prognos(env, "backtest", str(drives), "--model", str(model), "--lead", "1d",
                   "--no-plots", "--out", str(backtest))  # fmt: skip
    result: dict[str, Any] = json.loads((backtest / "backtest.json").read_text())
    assert result["discrepancies"] == [], result["discrepancies"]
    assert result["job"]["windows_scored"] == result["evaluate"]["windows_the_job_could_close"]
    assert result["job"]["dead_letters"] == 0 and result["job"]["late_readings"] == 0
    assert result["backtest"]["events"] == result["evaluate"]["events"]
    assert "the pipeline raised the alerts evaluate predicts" in out

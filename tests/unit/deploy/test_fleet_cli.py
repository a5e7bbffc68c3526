"""``prognos train`` / ``prognos evaluate`` on a recording: options, bad inputs, a small run.

Bad inputs go through ``--dry-run`` (no PyTorch needed): each must end in a message that
names the file, the field and the fix, on stderr, with exit code 1 and no traceback; what
is only odd (a log naming devices the recording lacks) is a note, and nothing is dropped
without one. The training runs need the train extra and stay small (2 cores in CI).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deploy.cli import build_parser, main

HOUR = 3600.0
T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def write_fleet(
    folder: Path, devices: int = 12, days: int = 10, seed: int = 0
) -> tuple[Path, Path, Path]:
    """plant.csv (hourly temp and vib; vib climbs in the 12 h before each failure), its
    failure log (two failures on most devices) and a maintenance log."""
    rng = np.random.default_rng(seed)
    rows, failures, maintenance = [], [], []
    hours = days * 24
    for d in range(devices):
        name = f"pump-{d:02d}"
        fails = [60 + 7 * d % 40, 150 + 5 * d % 60] if d % 4 else [100 + 3 * d]
        fails = [f for f in fails if f < hours - 5]
        vib = rng.normal(1.0, 0.1, hours)
        for f in fails:
            ramp = np.arange(hours)
            near = (ramp <= f) & (ramp > f - 12)
            vib[near] += (12 - (f - ramp[near])) * 0.4
        temp = rng.normal(60.0, 1.0, hours)
        t = [T0 + pd.Timedelta(hours=h) for h in range(hours)]
        rows.append(pd.DataFrame({"machine": name, "ts": t, "temp": temp, "vib": vib}))
        failures += [(name, T0 + pd.Timedelta(hours=f)) for f in fails]
        if d % 3 == 0:
            maintenance.append((name, T0 + pd.Timedelta(hours=hours - 30)))
    frame = pd.concat(rows, ignore_index=True)
    frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    plant = folder / "plant.csv"
    frame.to_csv(plant, index=False)
    log = folder / "failures.csv"
    pd.DataFrame(failures, columns=["machine", "failed_at"]).assign(
        failed_at=lambda f: f["failed_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ).to_csv(log, index=False)
    maint = folder / "maintenance.csv"
    pd.DataFrame(maintenance, columns=["machine", "failed_at"]).assign(
        failed_at=lambda f: f["failed_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ).to_csv(maint, index=False)
    return plant, log, maint


COLUMNS = ["--device-column", "machine", "--time-column", "ts", "--events-time-column",
           "failed_at"]  # fmt: skip


def dry_run(plant: Path, *extra: str) -> int:
    return main(["train", "--data", str(plant), "--out", str(plant.parent / "model"), *COLUMNS,
                 "--dry-run", *extra])  # fmt: skip


def refused(capsys: pytest.CaptureFixture[str], code: int) -> str:
    out = capsys.readouterr()
    assert code == 1, out.out + out.err
    assert "Traceback" not in out.err and out.err.startswith("prognos train: error: ")
    return out.err


def test_the_cli_module_imports_only_argparse() -> None:
    source = (Path(__file__).resolve().parents[3] / "deploy" / "fleet_cli.py").read_text()
    top = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert top == ["from __future__ import annotations", "import argparse",
                   "from typing import Any"]  # fmt: skip


def test_the_options_parse_durations_and_regimes() -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "--out", "m", "--data", "x.csv", "--window", "1h",
                              "--horizon", "1d", "--sequence-length", "7d", "--regimes", "6"])  # fmt: skip
    assert (args.window, args.horizon, args.sequence_length, args.regimes) == (
        3600.0, 86400.0, "7d", 6
    )  # fmt: skip
    args = parser.parse_args(["evaluate", "--data", "x.csv", "--lead", "1d", "--max-lead", "3d"])
    assert (args.lead, args.max_lead, args.include_training_devices) == (86400.0, 259200.0, False)


def test_a_bad_duration_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "--out", "m", "--window", "5x"])
    assert exc.value.code == 2 and "unknown unit" in capsys.readouterr().err


def test_dry_run_prints_the_choices_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, log, maint = write_fleet(tmp_path)
    assert dry_run(plant, "--failures", str(log), "--maintenance", str(maint)) == 0
    out = capsys.readouterr().out
    for choice in ("window: ", "horizon: ", "sequence_length: ", "regimes: 1 (no setting"):
        assert choice in out
    assert "dry run: would train on" in out and not (tmp_path / "model").exists()


def test_a_log_naming_unknown_devices_is_noted_and_one_naming_none_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, log, _ = write_fleet(tmp_path)
    extra = tmp_path / "more.csv"
    extra.write_text(log.read_text() + "pump-99,2026-01-03T00:00:00Z\n")
    assert dry_run(plant, "--failures", str(extra)) == 0
    assert f"{extra} (machine, failed_at): 1 failure(s) of 1 device(s) the recording does not have" in (
        capsys.readouterr().out
    )  # fmt: skip
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("machine,failed_at\nPUMP-1,2026-01-03T00:00:00Z\n")
    err = refused(capsys, dry_run(plant, "--failures", str(wrong)))
    assert str(wrong) in err and "is in the recording" in err and "--events-device-column" in err


def test_failure_times_outside_the_recording_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, log, _ = write_fleet(tmp_path)
    odd = tmp_path / "odd.csv"
    odd.write_text(log.read_text() + "pump-01,2025-06-01T00:00:00Z\npump-02,2027-01-01T00:00:00Z\n")
    assert dry_run(plant, "--failures", str(odd)) == 0
    out = capsys.readouterr().out
    assert f"{odd} (machine, failed_at): 1 failure(s) before their device's first reading" in out
    assert "1 failure(s) after the recording ends (2026-01-10T23:00:00Z" in out


def test_no_failures_at_all_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant, _, _ = write_fleet(tmp_path)
    err = refused(capsys, dry_run(plant))
    assert f"{plant}: no failures to learn from" in err and "--failures FILE" in err
    empty = tmp_path / "none.csv"
    empty.write_text("machine,failed_at\n")
    err = refused(capsys, dry_run(plant, "--failures", str(empty)))
    assert f"{plant}: no failures to learn from" in err


def test_a_failure_flag_column_labels_and_is_not_a_sensor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, log, _ = write_fleet(tmp_path)
    frame = pd.read_csv(plant)
    failures = pd.read_csv(log)
    hit = set(zip(failures["machine"], failures["failed_at"], strict=True))
    frame["failed"] = [
        int((m, t) in hit) for m, t in zip(frame["machine"], frame["ts"], strict=True)
    ]
    flagged = tmp_path / "flagged.csv"
    frame.to_csv(flagged, index=False)
    assert dry_run(flagged, "--failure-column", "failed") == 0
    assert "'failed'" not in capsys.readouterr().out  # not dropped as a sensor: never one
    err = refused(capsys, dry_run(flagged, "--failure-column", "broken"))
    assert f"{flagged}: --failure-column 'broken' is not a column" in err and "machine" in err


def test_a_sensor_missing_on_some_devices_is_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, log, _ = write_fleet(tmp_path)
    frame = pd.read_csv(plant)
    frame.loc[frame["machine"].isin(["pump-01", "pump-05"]), "temp"] = np.nan
    frame.to_csv(plant, index=False)
    assert dry_run(plant, "--failures", str(log), "--test-fraction", "0") == 0
    out = capsys.readouterr().out
    assert f"'temp' has no value on 2 device(s) of {plant} (e.g. pump-01, pump-05)" in out


def test_a_horizon_longer_than_any_history_suggests_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, log, _ = write_fleet(tmp_path)
    err = refused(capsys, dry_run(plant, "--failures", str(log), "--horizon", "30d"))
    assert f"{plant}: --horizon 30d is longer than every device's history" in err
    assert "Try --horizon " in err


def test_one_reading_per_device_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant = tmp_path / "snap.csv"
    plant.write_text("machine,ts,temp\n" + "".join(
        f"m{i},2026-01-01T00:00:00Z,{i}\n" for i in range(8)
    ))  # fmt: skip
    log = tmp_path / "f.csv"
    log.write_text("machine,failed_at\nm1,2026-01-01T00:00:00Z\n")
    err = refused(capsys, dry_run(plant, "--failures", str(log)))
    assert f"{plant}: every device has a single reading" in err and "--device-column" in err


def test_a_text_column_taken_for_a_sensor_names_the_column_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, log, _ = write_fleet(tmp_path)
    frame = pd.read_csv(plant)
    frame["site"] = "north"
    frame.to_csv(plant, index=False)
    err = refused(capsys, dry_run(plant, "--failures", str(log)))
    assert f"{plant}: " in err and "rejected for site/number" in err
    assert "--metadata site" in err


def test_a_mapping_naming_a_missing_column_and_a_bad_log_time_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, log, _ = write_fleet(tmp_path)
    err = refused(capsys, dry_run(plant, "--failures", str(log), "--sensors", "temp,pressure"))
    assert f"{plant}: the sensor 'pressure' column 'pressure' is not in the file" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("machine,failed_at\npump-01,yesterday\n")
    err = refused(capsys, dry_run(plant, "--failures", str(bad)))
    assert f"{bad}:2: failed_at: 'yesterday' is not a time" in err
    missing = tmp_path / "cols.csv"
    missing.write_text("machine,when\npump-01,2026-01-03T00:00:00Z\n")
    err = refused(capsys, dry_run(plant, "--failures", str(missing)))
    assert f"{missing}: the failure log has no column 'failed_at'" in err
    assert "--events-time-column" in err


def test_evaluate_names_the_sensors_the_recording_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, log, _ = write_fleet(tmp_path)
    code = main(["evaluate", "--data", str(plant), *COLUMNS, "--failures", str(log),
                 "--out", str(tmp_path / "r")])  # fmt: skip
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.err
    assert "reads sensor(s) s2, s3" in out.err and "--sensors NAME=COLUMN" in out.err
    assert "has no split.json: every device of the recording is scored" not in out.err


# -- a small training run ------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    pytest.importorskip("torch", reason="PyTorch not installed: needs the train extra")
    pytest.importorskip("sklearn", reason="scikit-learn not installed: needs the train extra")
    folder = tmp_path_factory.mktemp("fleet")
    plant, log, maint = write_fleet(folder, devices=16, days=12)
    model = folder / "model"
    code = main(["--log-level", "WARNING", "train", "--data", str(plant), "--out", str(model),
                 *COLUMNS, "--failures", str(log), "--maintenance", str(maint), "--window", "2h",
                 "--horizon", "8h", "--sequence-length", "4", "--lead", "2h", "--epochs", "2",
                 "--folds", "1", "--seeds", "1", "--arch", "gru", "--threads", "1",
                 "--no-plots"])  # fmt: skip
    assert code == 0
    return plant, log, maint, model


def test_training_writes_the_split_the_choices_and_the_held_out_report(
    trained: tuple[Path, Path, Path, Path],
) -> None:
    _, _, _, model = trained
    split = json.loads((model / "split.json").read_text())
    training = json.loads((model / "training.json").read_text())
    report = json.loads((model / "report.json").read_text())
    assert len(split["test_devices"]) == 3 and len(split["train_devices"]) == 13
    assert not set(split["test_devices"]) & set(split["train_devices"])
    assert training["choices"]["window"] == {"value": "2h", "reason": "--window"}
    assert training["choices"]["regimes"]["value"] == 1
    assert training["recording"]["options"]["device_column"] == "machine"
    assert training["events"]["failures"] > 0 and training["events"]["maintenance"] > 0
    assert training["data"]["devices"] <= 13  # trained on the training devices only
    assert report["kind"] == "recording" and report["protocol"]["devices"] == 3
    ev = report["events"]
    for key in ("failures", "caught", "caught_share", "median_lead_s", "false_alerts",
                "device_months", "false_alerts_per_device_month"):  # fmt: skip
        assert key in ev
    assert ev["lead_s"] == 2 * HOUR and ev["max_lead_s"] == 8 * HOUR
    assert "## Choices" in (model / "MODEL_CARD.md").read_text()
    # The catalogue the model was trained with, inferred from the training data.
    pytest.importorskip("ingest.infer", reason="this tree has no catalogue inference yet")
    from ingest.catalogue import Catalogue

    catalogue = Catalogue.load(model / "catalogue.toml")
    assert {s.name for s in catalogue.sensors} == {"temp", "vib"}
    assert training["catalogue"]["from"].startswith("inferred from")


def test_evaluate_reuses_the_training_options_and_scores_the_held_out_devices(
    trained: tuple[Path, Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant, _, _, model = trained
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(model), "--data", str(plant), "--out", str(out),
                 "--lead", "2h", "--no-plots"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "using the column and event options the model was trained with" in printed
    report = json.loads((out / "report.json").read_text())
    held = json.loads((model / "report.json").read_text())
    assert report["events"]["failures"] == held["events"]["failures"]
    assert report["events"]["caught"] == held["events"]["caught"]
    assert main(["evaluate", "--model", str(model), "--data", str(plant), "--out", str(out),
                 "--include-training-devices", "--no-plots"]) == 0  # fmt: skip
    every = json.loads((out / "report.json").read_text())
    assert every["protocol"]["devices"] == 16
    assert any("optimistic" in n for n in every["notes"])

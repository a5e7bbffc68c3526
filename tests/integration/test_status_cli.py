"""``prognos status`` against a real redis-server, with and without data, and with none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from deploy.stack import free_port
from stream.alerts import AlertPolicy, ScoredWindow
from stream.contract import Keys
from stream.sink import RedisAlertSink

ROOT = Path(__file__).resolve().parents[2]
W = 60_000


def _status(redis_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PROGNOS_REDIS_URL": redis_url,
        "PROGNOS_STATE_DIR": str(tmp_path / "state"),
        "PROGNOS_KAFKA_PORT": str(free_port()),
        "PROGNOS_CHECKPOINT": str(tmp_path / "checkpoint"),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", "status", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
    )


def test_status_with_no_data_yet(redis_url: str, key_prefix: str, tmp_path: Path) -> None:
    result = _status(redis_url, tmp_path, "--key-prefix", key_prefix)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "kafka  stopped" in out
    assert "no data yet: no batch recorded" in out and "no data yet: no window scored" in out
    assert "kafka lag: unknown (no offsets of" in out


def test_status_when_redis_is_down(tmp_path: Path) -> None:
    result = _status(f"redis://app:s3cret@127.0.0.1:{free_port()}/0", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "s3cret" not in result.stdout + result.stderr
    assert "not reachable" in result.stdout and "prognos stack up" in result.stdout
    assert "stream job: unknown (no Redis)" in result.stdout


def test_status_shows_metrics_dead_letters_and_the_fleet(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    sink = RedisAlertSink(redis_url, AlertPolicy(threshold=0.5), W, prefix=key_prefix)
    risks = {f"pump-{i}": 0.1 * i for i in range(1, 8)}
    sink.write([ScoredWindow(d, 0, W, r, "v1", "CPUExecutionProvider") for d, r in risks.items()])
    sink.close()
    client = redis.Redis.from_url(redis_url)
    now = int(time.time() * 1000)
    client.hset(Keys(key_prefix).metrics, mapping={
        "batch_id": "41", "input_rows": "5000", "input_rows_per_s": "2500.0", "batch_ms": "2000",
        "dropped_by_watermark_total": "3", "dead_letters_total": "7", "windows_scored_total": "700",
        "alerts_total": "12", "scoring_ms": "40.0", "sink_ms": "15.0",
        "provider": "CPUExecutionProvider", "updated_ms": str(now - 2000),
    })  # fmt: skip
    client.hset(Keys(key_prefix).deadletters, mapping={"temperature/range": "5", "value/json": "2"})
    client.close()
    offsets = tmp_path / "checkpoint" / "main" / "offsets"
    offsets.mkdir(parents=True)
    (offsets / "41").write_text(
        'v1\n{"batchWatermarkMs":0}\n{"prognos.readings":{"0":10,"1":12}}\n'
    )

    result = _status(redis_url, tmp_path, "--key-prefix", key_prefix)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "running; last batch 41" in out
    assert "5000 readings at 2500/s in 2000 ms" in out
    assert "700 windows scored, 12 alert events, 7 dead letters, 3 late readings dropped" in out
    assert "temperature/range" in out and "kafka lag: unknown (no Kafka broker answers" in out
    assert (
        "7 devices, 3 open alerts, 3 at or above the threshold" in out
        and "highest risk 0.700 (pump-7)" in out
    )
    top = out.split("top 5 by risk:")[1].split()
    assert top[0::2] == ["pump-7", "pump-6", "pump-5", "pump-4", "pump-3"]

    report = json.loads(_status(redis_url, tmp_path, "--key-prefix", key_prefix, "--json").stdout)
    assert report["metrics"]["batch_id"] == 41 and report["dead_letters"]["value/json"] == 2
    assert report["top_devices"][0]["device"] == "pump-7"
    assert report["top_devices"][0]["risk"] == pytest.approx(0.7)

"""`prognos demo` as a user runs it: its own stack, the stream job, a degrading fleet, alerts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from deploy.stack import free_port, port_is_free


def test_demo_shows_alerts_and_stops_everything_it_started(tmp_path: Path) -> None:
    """Run as a user would, under a key prefix of its own: alerts and progress lines come
    from that prefix, no ERROR line is logged, and nothing is left running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGNOS_")}
    metrics_port, dashboard_port = free_port(), free_port()
    ports = {
        "PROGNOS_KAFKA_PORT": free_port(),
        "PROGNOS_KAFKA_CONTROLLER_PORT": free_port(),
        "PROGNOS_REDIS_PORT": free_port(),
    }
    env.update(
        {k: str(v) for k, v in ports.items()},
        PROGNOS_STATE_DIR=str(tmp_path / "state"),
        PROGNOS_SPARK_UI="0",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy.cli",
            "demo",
            "--duration",
            "240",
            "--machines",
            "6",
            "--fast-fail",
            "3",
            "--key-prefix",
            "demo-test",
            "--metrics-port",
            str(metrics_port),
            "--dashboard-port",
            str(dashboard_port),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=420,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    opened = re.findall(r"ALERT opened\s+(turbofan-\d+)", out)
    assert opened, f"no alert within the demo's 240 s:\n{out[-3000:]}"
    # The fast-degrading engines are the first ones of the fleet.
    assert set(opened) & {"turbofan-0000", "turbofan-0001", "turbofan-0002"}
    assert "stopped the fleet, the stream job and the local stack" in out
    # Progress comes from the prefix's metrics hash: a batch number, not "starting" forever.
    assert re.search(r"status: batch \d+, \d+ windows scored", out), out[-3000:]
    assert f"Prometheus metrics: http://127.0.0.1:{metrics_port}/metrics" in out
    assert f"the live dashboard: http://127.0.0.1:{dashboard_port}/" in out
    logs = tmp_path / "state" / "logs"
    assert (
        f"Prometheus metrics at http://127.0.0.1:{metrics_port}/metrics"
        in (logs / "demo-stream.log").read_text()
    ), "the demo's stream job did not serve its metrics"
    for name in ("demo-stream.log", "demo-source.log", "demo-dashboard.log"):
        errors = [line for line in (logs / name).read_text().splitlines() if " ERROR " in line]
        assert errors == [], f"{name} logged ERROR lines in a normal run:\n" + "\n".join(errors)
    left = [*ports.values(), metrics_port, dashboard_port]
    assert all(port_is_free(port) for port in left), "the demo left a service listening"

"""`prognos stack up`, `status` and `down` against real processes, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deploy.stack import free_port, port_is_free


def _prognos(
    args: list[str], env: dict[str, str], timeout: int = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGNOS_")}
    env.update(
        PROGNOS_STATE_DIR=str(tmp_path / "state"),
        PROGNOS_KAFKA_PORT=str(free_port()),
        PROGNOS_KAFKA_CONTROLLER_PORT=str(free_port()),
        PROGNOS_REDIS_PORT=str(free_port()),
    )
    return env


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/cmdline").read_bytes() != b""


def test_up_status_down_leaves_nothing_running(tmp_path: Path) -> None:
    env = _env(tmp_path)
    ports = [
        int(env[k])
        for k in ("PROGNOS_KAFKA_PORT", "PROGNOS_KAFKA_CONTROLLER_PORT", "PROGNOS_REDIS_PORT")
    ]

    up = _prognos(["stack", "up"], env)
    assert up.returncode == 0, up.stderr
    pids = [
        int(p.read_text())
        for p in (tmp_path / "state").glob("*/*.pid")
        if p.name in ("kafka.pid", "redis.pid")
    ]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    assert not any(port_is_free(port) for port in ports)

    status = _prognos(["stack", "status"], env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("running") == 2

    again = _prognos(["stack", "up"], env)  # idempotent: nothing new is started
    assert again.returncode == 0

    down = _prognos(["stack", "down"], env)
    assert down.returncode == 0, down.stderr
    assert "kafka" in down.stdout and "redis" in down.stdout
    assert not any(_alive(pid) for pid in pids)
    assert all(port_is_free(port) for port in ports)

    after = _prognos(["stack", "status"], env)
    assert after.returncode == 1
    assert after.stdout.count("stopped") == 2
    twice = _prognos(["stack", "down"], env)
    assert twice.returncode == 1
    assert "nothing to stop" in twice.stderr
    assert "Traceback" not in twice.stderr


def test_broker_that_is_not_up_in_time_is_reported_with_its_log(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env["PROGNOS_START_TIMEOUT"] = "1"
    result = _prognos(["stack", "up"], env)
    assert result.returncode == 1
    assert "did not become healthy within 1s" in result.stderr
    assert "kafka.log" in result.stderr
    assert "Traceback" not in result.stderr
    assert all(
        port_is_free(int(env[k])) for k in ("PROGNOS_KAFKA_PORT", "PROGNOS_KAFKA_CONTROLLER_PORT")
    )


def test_port_taken_by_a_stranger_is_refused(tmp_path: Path) -> None:
    import socket

    env = _env(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", int(env["PROGNOS_KAFKA_PORT"])))
        sock.listen()
        result = _prognos(["stack", "up"], env)
    assert result.returncode == 1
    assert (
        f"port {env['PROGNOS_KAFKA_PORT']}" in result.stderr
        and "PROGNOS_KAFKA_PORT" in result.stderr
    )

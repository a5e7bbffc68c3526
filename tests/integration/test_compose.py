"""The container image and the compose file, end to end (``make image``, deploy/compose.yaml).

Builds the image as ``make image`` does (the Docker engine started when none runs, the base
image made with debootstrap where no registry is reachable), starts the compose file under a
project name of its own (three brokers, Redis, a Spark master and worker, the stream job
submitted to them, a replay of C-MAPSS FD001), waits for alerts in Redis, then takes it
down and checks nothing of it is left. An engine the test started is stopped again, and the
host's iptables FORWARD policy and IP forwarding are put back (deploy/docker/engine.sh).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from stream.contract import DEFAULT_PREFIX, Keys
from tests.conftest import CMAPSS_DIR, ROOT

pytestmark = pytest.mark.timeout(1800)


def _run(*cmd: str, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{(result.stdout + result.stderr)[-3000:]}"
    )
    return result.stdout


def _image_id(name: str) -> str:
    """The image's ID, or "" when the engine has no such image."""
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def _dangling() -> set[str]:
    """The engine's untagged images."""
    return set(_run("docker", "images", "-q", "--filter", "dangling=true").split())


def test_the_image_runs_the_compose_file_from_readings_to_alerts(tmp_path: Path) -> None:
    import redis

    from deploy.stack import free_port

    engine_was_running = (
        subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    )
    project = f"prognos-test-{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = {"PROGNOS_COMPOSE_REDIS_PORT": str(port), "PROGNOS_CMAPSS_DIR": str(CMAPSS_DIR)}
    compose = ["docker-compose", "-p", project, "-f", str(ROOT / "deploy" / "compose.yaml")]
    try:
        _run("make", "--no-print-directory", "engine", timeout=600)  # to list its images
        replaced = [_image_id("prognos:latest"), _image_id("prognos-venv:build")]
        dangling = _dangling()
        _run("make", "--no-print-directory", "image", timeout=1500)
        built = [_image_id("prognos:latest"), _image_id("prognos-venv:build")]
        assert all(built), "make image did not tag prognos:latest and its venv stage"
        # A rebuild removes the images it replaced and leaves no untagged image behind.
        left = [old for old, new in zip(replaced, built, strict=True) if old and old != new]
        assert not [old for old in left if _image_id(old)], f"replaced images left: {left}"
        assert _dangling() <= dangling, f"untagged images after the build: {_dangling()}"
        assert _run("docker", "run", "--rm", "prognos:latest", "id", "-u").strip() != "0"
        _run(*compose, "up", "-d", env=env)
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 600
        alerts = 0
        while time.monotonic() < deadline:
            try:
                alerts = int(client.xlen(Keys(DEFAULT_PREFIX).alerts))
            except redis.RedisError:
                alerts = 0
            if alerts:
                break
            time.sleep(3)
        logs = subprocess.run(
            [*compose, "logs", "--no-color", "replay", "stream"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **env},
        ).stdout
        assert alerts > 0, f"no alert within 600 s; logs:\n{logs[-4000:]}"
        assert "replayed 20,631 rows" in logs and "stream job started" in logs
        client.close()
    finally:
        started = time.monotonic()
        _run(*compose, "down", "-v", "--remove-orphans", env=env, timeout=300)
        down_s = time.monotonic() - started
        left = _run(
            "docker", "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}"
        )
        volumes = _run(
            "docker",
            "volume",
            "ls",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={project}",
        )
        if not engine_was_running:
            _run("sh", "deploy/docker/engine.sh", "stop", timeout=120)
    assert not left.strip() and not volumes.strip(), (left, volumes)
    assert down_s < 60, (
        f"compose down took {down_s:.0f} s (init: true should stop services promptly)"
    )

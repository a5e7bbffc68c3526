"""`prognos dashboard` in a real headless Chromium (Debian's), driven by Playwright: what the
sink writes to Redis appears on the page without a reload, a device view shows its risk over
time and its alerts, and a Redis that is down is shown and recovered from."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from deploy.dashboard import DashboardConfig, make_server, open_socket
from deploy.stack import free_port, redis_server_binary
from models.drift import DriftReference
from stream.alerts import AlertPolicy, ScoredWindow
from stream.contract import JobMetrics, Keys, TopFeature
from stream.drift import DriftMonitor, DriftSettings
from stream.sink import RedisAlertSink

W = 600_000
POLICY = AlertPolicy(threshold=0.5, hysteresis=0.1, resolve_windows=2, cooldown_windows=3)
ARTIFACTS = Path(__file__).resolve().parents[2] / ".prognos" / "test-artifacts"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Chromium is not installed: `make test` installs Debian's chromium package "
            "(apt-get install chromium)"
        )
    return found


def _windows(device: str, risks: list[float], first: int = 0) -> list[ScoredWindow]:
    top = (
        TopFeature("s11__mean", 48.1, 4.2, 47.0, 47.6),
        TopFeature("s4__slope", 0.9, -3.1, -0.2, 0.4),
    )
    start = 1_767_225_600_000
    return [
        ScoredWindow(
            device,
            start + (first + i) * W,
            start + (first + i + 1) * W,
            r,
            "2.0.0",
            "CPUExecutionProvider",
            top,
            coverage=1.0,
        )
        for i, r in enumerate(risks)
    ]


class _Dashboard:
    def __init__(self, redis_url: str, key_prefix: str) -> None:
        self.sock = open_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = make_server(
            DashboardConfig(redis_url=redis_url, key_prefix=key_prefix, port=0)
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> _Dashboard:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "the dashboard did not start"
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the dashboard did not stop"


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox refuses to run as root (CI here is root).
        b = p.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def test_an_alert_written_to_redis_appears_on_the_page_within_5_seconds(
    browser: Any, redis_url: str, key_prefix: str
) -> None:
    sink = RedisAlertSink(redis_url, POLICY, W, prefix=key_prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        sink.write(
            _windows("pump-1", [0.1, 0.2, 0.4, 0.7, 0.8])
            + _windows("pump-2", [0.1, 0.1, 0.2, 0.1, 0.1])
            + _windows("pump-3", [0.3, 0.3, 0.35, 0.3, 0.32])
        )
        metrics = JobMetrics(batch_id=41, input_rows=900, input_rows_per_s=1234.0, batch_ms=800)
        metrics.kafka_lag_records, metrics.dead_letters_total = 17, 2
        client.hset(Keys(key_prefix).metrics, mapping=metrics.to_hash())
        client.hset(Keys(key_prefix).deadletters, mapping={"x.s3/range": 2})
        # Input drift in s11, as the job's monitor publishes it.
        reference = DriftReference(("s11", "s4"), ((0.0,), (0.0,)), ((0.5, 0.5), (0.5, 0.5)), 100)
        monitor = DriftMonitor(reference, DriftSettings(recent=50, min_windows=10, sustain=10))
        values = np.column_stack([np.full(60, 2.0), np.tile([-1.0, 1.0], 30)])
        notices = monitor.update([f"pump-{i % 3 + 1}" for i in range(60)], values, 0, "2.0.0")
        assert [n.kind for n in notices] == ["started"]
        monitor.publish(client, Keys(key_prefix), notices)
        client.hset(Keys(key_prefix).drift, "psi:s4", "nan")  # a figure not computed yet

        with _Dashboard(redis_url, key_prefix) as dash:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(dash.url + "/")
            page.wait_for_function(
                "document.querySelector('#fleet-devices .v')?.textContent === '3'", timeout=10_000
            )
            assert page.text_content("#job-batch .v") == "41"
            assert page.text_content("#job-lag .v") == "17"
            assert page.text_content("#job-dead .v") == "2"
            assert page.locator('tr.drifting[data-sensor="s11"]').count() == 1
            assert page.locator('tr.drift-row[data-sensor="s4"]').count() == 0  # NaN: left out
            assert "drift started: s11" in (page.text_content("#drift-notices") or "")
            # The open alert with its explanation: values and normal ranges.
            card = page.locator('.alert[data-device="pump-1"]')
            assert card.count() == 1
            first = card.locator("tr.feature").first.text_content() or ""
            assert "s11__mean" in first and "48.100" in first and "47.000 – 47.600" in first
            assert page.locator('.alert[data-device="pump-9"]').count() == 0

            # A new alert reaches Redis; the page shows it, no reload, within 5 s.
            sink.write(_windows("pump-9", [0.2, 0.3, 0.95]))
            written = time.monotonic()
            page.wait_for_selector('.alert[data-device="pump-9"]', timeout=5_000)
            shown_after = time.monotonic() - written
            assert shown_after < 5.0
            assert page.text_content("#open-count") == "2"
            assert page.locator('#riskiest tr[data-device="pump-9"]').count() == 1

            # The device view: risk over time (every window) and the alert's lifecycle.
            sink.write(_windows("pump-1", [0.3, 0.2, 0.1], first=5))  # resolves pump-1
            page.click('#riskiest tr[data-device="pump-1"]')
            page.wait_for_function(
                "document.querySelector('#risk-line')?.dataset.points === '8'", timeout=5_000
            )
            lifecycle = page.locator("#lifecycle li.life").all_text_contents()
            assert len(lifecycle) == 2
            assert "resolved" in lifecycle[0] and "opened" in lifecycle[1]  # newest first
            assert page.locator("#threshold").count() == 1
            page.wait_for_selector('.alert[data-device="pump-1"]', state="detached", timeout=5_000)

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            page.close()
    finally:
        client.close()
        sink.close()


def test_a_dashboard_started_with_redis_down_says_so_and_recovers(
    browser: Any, key_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    with _Dashboard(f"redis://127.0.0.1:{port}/0", key_prefix) as dash:
        page = browser.new_page()
        page.goto(dash.url + "/")
        page.wait_for_selector("#status.show", timeout=10_000)
        message = page.text_content("#status") or ""
        assert f"Redis at redis://127.0.0.1:{port}/0 does not answer" in message
        assert "prognos stack up" in message
        server = subprocess.Popen(
            [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            page.wait_for_selector("#status.show", state="hidden", timeout=15_000)
            assert "no scored window yet" in (page.text_content("#fleet") or "")
        finally:
            server.terminate()
            server.wait(timeout=10)
        page.close()


def test_stopping_with_a_page_open_ends_its_event_stream_at_once(
    browser: Any, redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import signal

    caplog.set_level(logging.INFO)
    dash = _Dashboard(redis_url, key_prefix).__enter__()
    page = browser.new_page()
    page.goto(dash.url + "/")
    page.wait_for_function("document.querySelector('#updated').textContent.startsWith('live')")
    started = time.monotonic()
    dash.server.handle_exit(signal.SIGINT, None)  # what Ctrl-C does
    dash.thread.join(timeout=20)
    assert not dash.thread.is_alive()
    assert time.monotonic() - started < 3.0, "the open event stream held the stop"
    assert "graceful shutdown exceeded" not in caplog.text
    page.close()

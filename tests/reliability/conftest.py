"""Fixtures of the reliability suite: its settings, the recording and the golden run.

The golden run is made once per session, in this process's Spark session (the ``spark``
fixture, already warm when the integration tests ran first), on the session's broker and
Redis. Fault runs compare against it. At the end of the session the report is printed
as a markdown table and saved as JSON (``bench-results/reliability.json``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import (
    REPORT,
    ChaosSettings,
    FaultRow,
    Recording,
    Snapshot,
    create_topic,
    make_recording,
    produce,
    run_in_process,
    snapshot,
)


@dataclass(frozen=True)
class Golden:
    """The golden run: its recording, what it sent and what reached Redis."""

    recording: Recording
    readings_sent: int
    snapshot: Snapshot


@pytest.fixture(scope="session")
def chaos() -> ChaosSettings:
    """The suite's settings (CI variant, or the long one with PROGNOS_CHAOS_LONG=1)."""
    return REPORT.settings


@pytest.fixture(scope="session")
def recording(
    chaos: ChaosSettings, cmapss_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Recording:
    """FD001 engines 1..chaos.engines as a C-MAPSS file of their own."""
    return make_recording(cmapss_dir, chaos.engines, tmp_path_factory.mktemp("recording"))


@pytest.fixture(scope="session")
def golden(
    chaos: ChaosSettings,
    recording: Recording,
    spark: Any,
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Golden]:
    """The recording processed once with no fault; what reached Redis."""
    import redis
    from kafka import KafkaAdminClient

    run_id = uuid.uuid4().hex[:8]
    topic = create_topic(kafka_bootstrap, f"reliability-golden-{run_id}")
    prefix = f"reliability:golden:{run_id}"
    started = time.monotonic()
    try:
        produced = produce(recording, kafka_bootstrap, topic)
        job = run_in_process(
            spark,
            topic,
            kafka_bootstrap,
            redis_url,
            prefix,
            tmp_path_factory.mktemp("golden") / "checkpoint",
            chaos,
        )
        snap = snapshot(redis_url, prefix, kafka_bootstrap, topic)
    finally:
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            admin.delete_topics([topic, f"{topic}.dlq"])
        finally:
            admin.close()
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    ids = [event_id for event_id, _ in snap.events]
    late = job.metrics.dropped_by_watermark_total
    REPORT.add(
        FaultRow(
            fault="none (golden run)",
            readings_sent=produced.sent,
            alerts_expected=len(ids),
            lost=0,
            duplicated=len(ids) - len(set(ids)),
            differing=0,
            state_differs=0,
            dead_letters_expected=len(snap.dead_letters),
            dead_letters_duplicated=sum(1 for n in snap.dead_letters.values() if n > 1),
            job_starts=1,
            seconds=round(time.monotonic() - started, 1),
            passed=True,
            notes=f"{len(snap.devices)} devices, {late} late readings; in-process",
        )
    )
    # The oracle must be worth comparing with: alerts happen, each once, nothing is late
    # (a late reading would make the outcome depend on batch boundaries).
    assert produced.sent == recording.readings and produced.failed == 0
    assert len(ids) >= 3, f"the golden run raised only {len(ids)} alert events"
    assert len(ids) == len(set(ids)), "the golden run has a duplicated alert event"
    assert len(snap.devices) == recording.engines
    assert late == 0, f"{late} readings were late in the golden run; raise --watermark"
    # Every invalid record is in the dead-letter topic once and counted once.
    assert produced.bad_acked and set(snap.dead_letters) == produced.bad_acked
    assert set(snap.dead_letters.values()) == {1}
    assert snap.dead_letter_counts == {"payload/json": str(len(produced.bad_acked))}
    yield Golden(recording, produced.sent, snap)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not REPORT.rows and not REPORT.fuzz:
        return
    path = REPORT.save()
    terminalreporter.write_sep("=", "reliability report")
    terminalreporter.write_line(REPORT.markdown())
    terminalreporter.write_line("")
    terminalreporter.write_line(f"saved to {path}")

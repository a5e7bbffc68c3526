"""The Prometheus metrics: names and units by Prometheus' conventions, progress reports folded
in once, the endpoint served over HTTP, and a port in use refused with the fix."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.contract import JobMetrics
from stream.coverage import BatchCoverage
from stream.deadletters import DeadLetter
from stream.errors import ConfigError
from stream.metrics import PrometheusMetrics, kafka_lag
from stream.redis_config import RedisConfig
from stream.runner import JobProgress, ReadingsSource


def _families(metrics: PrometheusMetrics) -> dict[str, object]:
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_every_metric_follows_prometheus_naming() -> None:
    metrics = PrometheusMetrics()
    metrics.model_loaded("v1", "CPUExecutionProvider", "0" * 64)
    families = _families(metrics)
    for name, family in families.items():
        assert name.startswith("prognos_"), name
        kind = family.type  # type: ignore[attr-defined]
        if kind == "counter":
            assert not name.endswith("_total")  # the parser strips it; samples carry it
            assert all(s.name.endswith("_total") for s in family.samples)  # type: ignore[attr-defined]
        if kind == "histogram":
            assert name.endswith("_seconds"), name
    assert {"prognos_readings", "prognos_dead_letters", "prognos_alert_events",
            "prognos_batch_duration_seconds", "prognos_kafka_lag_records",
            "prognos_model_info"} <= set(families)  # fmt: skip


def test_kafka_lag_sums_partitions_and_ignores_what_it_cannot_read() -> None:
    sources = [
        {"endOffset": {"t": {"0": 5, "1": 7}}, "latestOffset": '{"t": {"0": 9, "1": 7}}'},
        {"endOffset": None, "latestOffset": None},  # a batch before any offset
    ]
    assert kafka_lag(sources) == 4
    assert kafka_lag([{"endOffset": "not json", "latestOffset": "{}"}]) is None
    assert kafka_lag([]) is None


def test_progress_reports_and_batches_reach_the_counters_once() -> None:
    prometheus = PrometheusMetrics()
    progress = JobProgress(RedisConfig("redis://127.0.0.1:1", "p"), "CPU", prometheus)
    progress.batch_written(
        windows=10,
        events=3,
        scoring_ms=20.0,
        sink_ms=5.0,
        redis_ms=1.0,
        coverage=BatchCoverage(mean=0.5, low=4),
        event_counts={("opened", "warning"): 2, ("resolved", "warning"): 1},
    )
    progress.dead_lettered({"range": 2, "json": 1})

    class Query:
        recentProgress = [  # noqa: RUF012
            {"batchId": 0, "numInputRows": 100, "durationMs": {"triggerExecution": 1500},
             "stateOperators": [{"numRowsDroppedByWatermark": 2}],
             "sources": [{"endOffset": {"t": {"0": 100}}, "latestOffset": {"t": {"0": 130}}}]},
            {"batchId": 1, "numInputRows": 30, "durationMs": {"triggerExecution": 500},
             "stateOperators": [], "sources": []},
        ]  # fmt: skip

    progress.record([Query()])  # type: ignore[list-item]
    progress.record([Query()])  # type: ignore[list-item]  # the same reports again: not twice
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in _families(prometheus).values()
        for s in f.samples  # type: ignore[attr-defined]
    }
    assert samples[("prognos_readings_total", ())] == 130
    assert samples[("prognos_late_readings_total", ())] == 2
    assert samples[("prognos_windows_scored_total", ())] == 10
    assert samples[("prognos_low_coverage_windows_total", ())] == 4
    assert samples[("prognos_sensor_coverage_ratio", ())] == 0.5
    assert (
        samples[("prognos_alert_events_total", (("kind", "opened"), ("severity", "warning")))] == 2
    )
    assert samples[("prognos_dead_letters_total", (("rule", "range"),))] == 2
    assert samples[("prognos_batch_duration_seconds_count", ())] == 2
    assert samples[("prognos_batch_duration_seconds_sum", ())] == 2.0
    assert samples[("prognos_kafka_lag_records", ())] == 30  # the last report with offsets
    assert samples[("prognos_last_batch_id", ())] == 1
    m: JobMetrics = progress.metrics
    assert (m.input_rows, m.dropped_by_watermark_total, m.dead_letters_total) == (30, 2, 3)


def test_the_endpoint_serves_the_text_format_and_a_busy_port_is_refused_with_the_fix() -> None:
    metrics = PrometheusMetrics()
    metrics.model_loaded("v7", "CPUExecutionProvider", "ab" * 32)
    port = metrics.serve(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        assert 'prognos_model_info{provider="CPUExecutionProvider",sha256=' in text
        assert 'version="v7"' in text
        with pytest.raises(ConfigError) as info:
            PrometheusMetrics().serve(port)
        message = str(info.value)
        assert f"metrics port 127.0.0.1:{port} is in use" in message
        assert "--metrics-port" in message
    finally:
        metrics.close()
    with socket.socket() as probe:  # closed: nothing listens on the port any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        probe.bind(("127.0.0.1", port))
        probe.listen()


def test_a_bad_metrics_port_setting_names_the_variable() -> None:
    from stream.config import StreamConfig

    with pytest.raises(ConfigError, match="PROGNOS_METRICS_PORT='abc' is not a TCP port"):
        StreamConfig.from_env({"PROGNOS_METRICS_PORT": "abc"})
    with pytest.raises(ConfigError, match="--metrics-port 70000"):
        StreamConfig.from_env({}, metrics_port=70000)
    assert StreamConfig.from_env({"PROGNOS_METRICS_PORT": "9464"}).metrics_port == 9464


class _Progress:
    """A query whose progress reports are ``reports``."""

    def __init__(self, reports: list[dict[str, object]]) -> None:
        self.recentProgress = reports


def _letters(n: int, field: str, rule: str, reason: str) -> list[DeadLetter]:
    return [DeadLetter(None, b"{}", field, rule, reason, "t") for _ in range(n)]


def _watching(topic: str = "t") -> JobProgress:
    """A job's progress that checks the first records read from ``topic``."""
    source = ReadingsSource(topic, f"{topic}.dlq", "default")
    return JobProgress(RedisConfig("redis://127.0.0.1:1", "p"), "CPU", None, source)


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "broke the same rule" in r.getMessage()]


def test_one_rule_breaking_most_of_the_first_readings_is_said_once_with_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The job's side of ingest.watch: a catalogue that does not fit the fleet sends every
    reading to the dead-letter topic, which the job's per-batch lines only counted."""
    progress = _watching("plant.readings")
    broken = _letters(350, "x.pressure", "range", "50.0 is outside [0, 40] bar")
    caplog.set_level("WARNING", logger="stream.runner")
    batches = [{"batchId": i, "numInputRows": 400, "durationMs": {}} for i in range(4)]
    progress.batch_read(0, broken)
    progress.batch_read(1, broken + _letters(5, "payload", "json", "not JSON"))
    progress.record([_Progress(batches[:1])])  # type: ignore[list-item]
    assert not _said(caplog)  # 400 read: too few to judge
    # Batch 3's letters come before its progress report: they wait for it, and do not
    # count against batches 1 and 2's records (1,200 records, 700 letters so far).
    progress.batch_read(2, [])
    progress.batch_read(3, broken * 3)
    progress.record([_Progress(batches[:3])])  # type: ignore[list-item]
    said = _said(caplog)
    assert len(said) == 1, said
    assert "58% of the first 1,200 records read from plant.readings (700)" in said[0]
    assert "x.pressure/range (x.pressure: 50.0 is outside [0, 40] bar)" in said[0]
    assert "plant.readings.dlq" in said[0] and "--catalogue" in said[0]
    progress.record([_Progress(batches)])  # type: ignore[list-item]
    progress.finish()
    assert len(_said(caplog)) == 1  # once


def test_good_records_are_not_judged_by_a_later_batchs_dead_letters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    progress = _watching()
    caplog.set_level("WARNING", logger="stream.runner")
    progress.batch_read(0, [])
    progress.batch_read(1, _letters(1500, "x.s2", "range", "out"))  # its report not yet in
    progress.record([_Progress([{"batchId": 0, "numInputRows": 1200}])])  # type: ignore[list-item]
    assert not _said(caplog)
    under = _watching()
    under.batch_read(0, _letters(500, "x.s2", "range", "out"))
    under.record([_Progress([{"batchId": 0, "numInputRows": 1000}])])  # type: ignore[list-item]
    assert not _said(caplog)  # half, not most


def test_a_run_shorter_than_the_check_is_judged_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    progress = _watching()
    caplog.set_level("WARNING", logger="stream.runner")
    progress.batch_read(0, _letters(90, "x.s2", "unknown", "not declared"))
    progress.record([_Progress([{"batchId": 0, "numInputRows": 100}])])  # type: ignore[list-item]
    assert not _said(caplog)
    progress.finish()  # --available-now read 100 records in all
    said = _said(caplog)
    assert len(said) == 1 and "90% of the first 100 records" in said[0], said

"""The stream job's Prometheus endpoint against the real pipeline: scraped while C-MAPSS
engines are replayed through Kafka, parsed with prometheus_client's own parser, and every
counter checked against the job's own totals and what Redis holds."""

from __future__ import annotations

import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

from ingest.config import KafkaConfig
from ingest.producer import ReadingProducer
from ingest.replay import ReplayOptions, replay_file
from stream.config import StreamConfig
from stream.contract import JobMetrics, Keys
from stream.job import StreamJob

ENGINES = 20
BAD = {  # payload -> the rule it breaks
    b"garbage, not JSON": "json",
    b'{"v":1,"d":"FD001-001","t":"2026-01-01T00:10:00.000Z","s":1,"x":{"s3":99999.0}}': "range",
    b'{"v":1,"d":"FD001-002","t":"2026-01-01T00:10:00.000Z","s":1,"x":{"s3":99998.0}}': "range",
}
# Readings of the first cycles, sent after the replay: later than the watermark by then.
LATE = 3


def _scrape(port: int) -> dict[str, float]:
    """``/metrics`` as {sample name with labels: value}, through prometheus_client's parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def _by_label(sample: dict[str, float], name: str) -> dict[str, float]:
    return {k[len(name) + 1 : -1]: v for k, v in sample.items() if k.startswith(name + "{")}


@pytest.fixture
def one_partition_topic(kafka_bootstrap: str) -> Iterator[str]:
    topic = f"test-metrics-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="prognos-tests")
    admin.create_topics([NewTopic(topic, 1, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    try:
        yield topic
    finally:
        try:
            admin.delete_topics([topic, f"{topic}.dlq"])
        finally:
            admin.close()


def test_metrics_scraped_during_a_replay_agree_with_the_jobs_own_totals(
    spark: Any,
    kafka_bootstrap: str,
    redis_url: str,
    one_partition_topic: str,
    key_prefix: str,
    cmapss_dir: Path,
    tmp_path: Path,
) -> None:
    table = np.loadtxt(cmapss_dir / "train_FD001.txt")
    subset = tmp_path / "train_FD001.txt"
    np.savetxt(subset, table[table[:, 0] <= ENGINES], fmt="%g")
    readings = int((table[:, 0] <= ENGINES).sum())

    kafka = KafkaConfig.from_env(
        {"PROGNOS_KAFKA_BOOTSTRAP": kafka_bootstrap, "PROGNOS_TOPIC": one_partition_topic}
    )
    config = replace(
        StreamConfig.from_env(
            {},
            redis_url=redis_url,
            key_prefix=key_prefix,
            checkpoint=tmp_path / "ckpt",
            max_offsets_per_trigger=800,
            trigger_seconds=0.5,
            metrics_port=0,  # any free port
        ),
        kafka=kafka,
    )
    job = StreamJob(spark, config)
    job.start()
    assert job.prometheus is not None and job.prometheus.port
    port = job.prometheus.port
    runner = threading.Thread(target=job.run, kwargs={"install_signals": False}, daemon=True)
    runner.start()
    total = readings + len(BAD) + LATE
    scrapes: list[dict[str, float]] = []
    try:
        with ReadingProducer(kafka) as producer:  # the replay, while the job runs
            report = replay_file(subset, producer, ReplayOptions(progress=False, sort_by_time=True))
        assert report.sent == readings
        raw = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        for payload in BAD:
            raw.send(one_partition_topic, key=b"bad", value=payload)
        for i in range(LATE):
            raw.send(
                one_partition_topic,
                key=b"FD001-001",
                value=b'{"v":1,"d":"FD001-001","t":"2026-01-01T00:0%d:00.000Z","s":1,"x":{"s2":642.0}}'
                % i,
            )
        raw.flush()
        raw.close()
        # Until every record is counted and two scrapes 3 s apart agree (no-data batches
        # that close windows as the watermark moves come after the last readings).
        deadline = time.monotonic() + 240
        stable = 0.0
        while time.monotonic() < deadline and runner.is_alive():
            scrapes.append(_scrape(port))
            last = scrapes[-1]
            done = last.get("prognos_readings_total") == total
            if done and len(scrapes) > 1 and scrapes[-2] == last:
                stable += 0.25
                if stable >= 3:
                    break
            else:
                stable = 0.0
            time.sleep(0.25)
        final = scrapes[-1]
        with job.progress.lock:
            own = JobMetrics(**vars(job.metrics))
    finally:
        job.request_stop()
        runner.join(timeout=120)
    assert not runner.is_alive(), "the job did not stop"
    assert final.get("prognos_readings_total") == total, f"not every record was counted: {final}"
    assert any(0 < s.get("prognos_readings_total", 0) < total for s in scrapes), (
        "no scrape was taken while the replay was being read"
    )

    # The counters are the job's own totals (and the hash it publishes to Redis).
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = Keys(key_prefix)
        published = JobMetrics.from_hash(client.hgetall(keys.metrics))
        stream_length = client.xlen(keys.alerts)
        open_alerts = client.scard(keys.open)
        devices = client.hlen(keys.risk)
        drift = client.hgetall(keys.drift)
        notices = client.xlen(keys.drift_notices)
    finally:
        client.close()
    assert published is not None
    assert final["prognos_windows_scored_total"] == own.windows_scored_total > 0
    assert own.windows_scored_total == published.windows_scored_total
    events = _by_label(final, "prognos_alert_events_total")
    assert sum(events.values()) == own.alerts_total == stream_length > 0
    assert any(k.startswith("kind=opened,") for k in events), events
    assert final["prognos_late_readings_total"] == own.dropped_by_watermark_total == LATE
    dead = _by_label(final, "prognos_dead_letters_total")
    assert dead == {"rule=json": 1.0, "rule=range": 2.0}
    assert sum(dead.values()) == own.dead_letters_total == published.dead_letters_total
    assert final["prognos_open_alerts"] == open_alerts
    assert final["prognos_fleet_devices"] == devices == ENGINES
    assert final["prognos_kafka_lag_records"] == 0  # all read
    assert final["prognos_last_batch_id"] == own.batch_id
    # Over 4,000 records at 800 a batch: at least 5 batches, each observed once.
    assert 5 <= final["prognos_batch_duration_seconds_count"] <= own.batch_id + 1
    assert final["prognos_sensor_coverage_ratio"] == pytest.approx(own.coverage, abs=1e-4)
    # Input drift: the fleet's PSI per watched sensor, the same in Redis and Prometheus.
    psi = _by_label(final, "prognos_drift_psi")
    watched = [s for s in job.spec.sensors if s != "cycle"]
    assert set(psi) == {f"sensor={s}" for s in watched}
    for sensor in watched:
        assert float(drift[f"psi:{sensor}"]) == pytest.approx(psi[f"sensor={sensor}"], abs=1e-4)
    assert final["prognos_drift_sensors"] == len([s for s in drift["drifting"].split(",") if s])
    started = _by_label(final, "prognos_drift_notices_total").get("kind=started", 0)
    assert started + _by_label(final, "prognos_drift_notices_total").get("kind=ended", 0) == notices
    info = _by_label(final, "prognos_model_info")
    (labels,) = info
    assert f"version={job.scorer.metadata.model_version}" in labels
    assert "provider=CPUExecutionProvider" in labels


SPARK_SERVLET = """
import sys, urllib.request
from deploy.spark import spark_session
from stream.session import SparkConfig
spark = spark_session(SparkConfig.from_env(app_name="prognos-servlet", ui=True,
                                           extra={"spark.ui.port": sys.argv[1]}))
try:
    spark.range(1000).selectExpr("sum(id)").collect()
    for path in ("/metrics/prometheus", "/metrics/executors/prometheus"):
        url = spark.sparkContext.uiWebUrl + path
        print("=== " + path)
        print(urllib.request.urlopen(url, timeout=10).read().decode())
finally:
    spark.stop()
"""


def test_sessions_prognos_builds_serve_sparks_own_metrics_in_the_prometheus_format() -> None:
    import subprocess
    import sys

    from deploy.stack import free_port

    result = subprocess.run(
        [sys.executable, "-c", SPARK_SERVLET, str(free_port())],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _, driver, executors = result.stdout.split("=== ")
    families = {f.name for f in text_string_to_metric_families(driver.split("\n", 1)[1])}
    # Named after the app, not an application id that changes at each start.
    assert any(n.startswith("metrics_prognos_servlet_driver_") for n in families), families
    samples = list(text_string_to_metric_families(executors.split("\n", 1)[1]))
    assert "spark_info" in {f.name for f in samples}

"""The stream job end to end, all real: C-MAPSS FD001 replayed into Kafka, Spark reading it
with format("kafka"), the committed default model in ONNX Runtime, alerts in Redis."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from kafka import KafkaProducer

from ingest.config import KafkaConfig
from ingest.consumer import read_records
from ingest.producer import ReadingProducer
from ingest.replay import ReplayOptions, replay_file
from stream.config import StreamConfig
from stream.contract import Keys
from stream.job import StreamJob

MALFORMED = {
    b'{"v":1,"d":"FD001-001","t":"2026-01-01T00:10:00.000Z","s":"one","x":{"s2":642.0}}': (
        "s",
        "type",
    ),
    b'{"v":1,"d":"FD001-002","t":"2026-01-01T00:10:00.000Z","s":1,"x":{"s2":NaN}}': (
        "x.s2",
        "finite",
    ),
    b'{"v":1,"d":"FD001-003","t":"2026-01-01T00:10:00.000Z","s":1,"x":{"s3":99999.0}}': (
        "x.s3",
        "range",
    ),
    b"garbage, not JSON": ("payload", "json"),
    b'{"v":1,"t":"2026-01-01T00:10:00.000Z","s":1,"x":{"s2":642.0}}': ("d", "required"),
}


@pytest.fixture(scope="module")
def replayed(kafka_bootstrap: str, cmapss_dir: Path) -> dict[str, Any]:
    """train_FD001.txt replayed once into a topic of its own, with malformed records mixed in."""
    import uuid

    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    topic = f"test-cmapss-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    admin.close()
    config = KafkaConfig.from_env(
        {"PROGNOS_KAFKA_BOOTSTRAP": kafka_bootstrap, "PROGNOS_TOPIC": topic}
    )
    with ReadingProducer(config) as producer:
        report = replay_file(
            cmapss_dir / "train_FD001.txt", producer, ReplayOptions(progress=False)
        )
    assert report.sent == 20_631
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for payload in MALFORMED:
        raw.send(topic, key=b"bad", value=payload)
    raw.flush()
    raw.close()
    table = np.loadtxt(cmapss_dir / "train_FD001.txt")
    failure = {
        f"FD001-{int(u):03d}": int(table[table[:, 0] == u, 1].max()) for u in np.unique(table[:, 0])
    }
    return {"config": config, "failure_cycle": failure}


def _config(
    replayed: dict[str, Any], redis_url: str, prefix: str, checkpoint: Path, **kw: Any
) -> StreamConfig:
    base = StreamConfig.from_env(
        {},
        redis_url=redis_url,
        key_prefix=prefix,
        checkpoint=checkpoint,
        available_now=True,
        max_offsets_per_trigger=4000,
        watermark_seconds=3 * 3000.0,
    )
    return replace(base, kafka=replayed["config"], **kw)


def _alerts(redis_url: str, prefix: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [json.loads(f[b"event"]) for _, f in client.xrange(Keys(prefix).alerts)]
    finally:
        client.close()


def _run(spark: Any, config: StreamConfig) -> StreamJob:
    job = StreamJob(spark, config)
    job.start()
    job.run(install_signals=False)
    return job


def test_cmapss_replay_raises_alerts_near_failure(
    spark: Any, replayed: dict[str, Any], redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    job = _run(spark, _config(replayed, redis_url, key_prefix, tmp_path / "ckpt"))
    assert job.metrics.dropped_by_watermark_total == 0

    client = redis.Redis.from_url(redis_url)
    try:
        risk = {k.decode(): float(v) for k, v in client.hgetall(Keys(key_prefix).risk).items()}
        deadletters = {
            k.decode(): int(v) for k, v in client.hgetall(Keys(key_prefix).deadletters).items()
        }
    finally:
        client.close()
    failure = replayed["failure_cycle"]
    assert set(risk) == set(failure), "the latest-risk hash must cover every engine"

    alerts = _alerts(redis_url, key_prefix)
    ids = [a["event_id"] for a in alerts]
    assert len(ids) == len(set(ids)), "an alert event appears twice in the stream"
    opened = [a for a in alerts if a["kind"] == "opened"]
    alerted = {a["device_id"] for a in opened}
    assert len(alerted) >= 90, f"only {len(alerted)} of 100 engines raised an alert before failure"
    cycle_ms = 600_000
    leads = [
        failure[a["device_id"]] - (a["window_end_ms"] - 1_767_225_600_000) // cycle_ms
        for a in opened
    ]
    # Alerts come near the end of life, not at the start: the model's horizon is 30 cycles.
    assert np.median(leads) <= 60, f"alerts open too early: median lead {np.median(leads)} cycles"
    for a in opened:
        assert a["model_version"] and a["provider"] == "CPUExecutionProvider"
        assert a["top_features"] and {"name", "value", "normal_low", "normal_high"} <= set(
            a["top_features"][0]
        )

    expected = Counter(f"{field}/{rule}" for field, rule in MALFORMED.values())
    assert Counter(deadletters) == expected
    letters = read_records(
        replayed["config"].bootstrap_servers,
        f"{replayed['config'].topic}.dlq",
        decode_values=False,
        expected=len(MALFORMED),
        timeout_s=60,
    )
    got = {
        (r.value, r.headers["prognos.error.field"], r.headers["prognos.error.rule"])
        for r in letters
    }
    assert got == {(payload, field, rule) for payload, (field, rule) in MALFORMED.items()}
    topic = replayed["config"].topic
    for r in letters:  # the reason names the field; the source names topic, partition, offset
        assert r.headers["prognos.error.reason"].startswith(f"{r.headers['prognos.error.field']}: ")
        assert re.fullmatch(rf"kafka:{re.escape(topic)}/\d+@\d+", r.headers["prognos.source"])


def test_restart_mid_stream_equals_an_uninterrupted_run(
    spark: Any, replayed: dict[str, Any], redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    golden_prefix, broken_prefix = f"{key_prefix}:golden", f"{key_prefix}:restarted"
    _run(spark, _config(replayed, redis_url, golden_prefix, tmp_path / "golden"))

    first = StreamJob(
        spark,
        _config(
            replayed,
            redis_url,
            broken_prefix,
            tmp_path / "restarted",
            available_now=False,
            trigger_seconds=0.5,
        ),
    )
    first.start()
    deadline = time.monotonic() + 300
    while first.queries[0].lastProgress is None or first.queries[0].lastProgress["batchId"] < 2:
        assert time.monotonic() < deadline, "the job did not get through 3 batches in 300 s"
        assert first.queries[0].exception() is None
        time.sleep(0.5)
    first.stop()
    partial = _alerts(redis_url, broken_prefix)
    _run(spark, _config(replayed, redis_url, broken_prefix, tmp_path / "restarted"))

    golden = _alerts(redis_url, golden_prefix)
    restarted = _alerts(redis_url, broken_prefix)
    assert len(golden) > 0
    assert len(partial) < len(golden), "the first run was not stopped mid-stream"
    # The same alerts with the same contents (their order in the stream may differ across
    # devices, as batch boundaries differ).
    assert sorted(json.dumps(a, sort_keys=True) for a in restarted) == sorted(
        json.dumps(a, sort_keys=True) for a in golden
    )
    assert len({a["event_id"] for a in restarted}) == len(restarted)
    # The window operator's state was committed as changelogs (RocksDB changelog
    # checkpointing, set by the job), and a restart on it gives the same alerts.
    state = tmp_path / "restarted" / "main" / "state"
    assert list(state.rglob("*.changelog")), f"no changelog files under {state}"

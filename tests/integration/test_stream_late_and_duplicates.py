"""Duplicates are counted once and late readings are counted, not silently lost.

Two runs of the stream job over the same C-MAPSS engines: one clean, one where every third
reading is sent twice and a few readings arrive far behind the watermark. Duplicating only
some readings would change the window statistics (mean, std ...), so equal results mean
the duplicates were dropped; the late readings must show up in the job's metrics.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import redis

from ingest.config import KafkaConfig
from ingest.producer import ReadingProducer
from ingest.schema import Reading
from stream.config import StreamConfig
from stream.contract import Keys
from stream.job import StreamJob

BASE = datetime(2026, 1, 1, tzinfo=UTC)
UNITS = 8
LATE = 7


def _readings(cmapss_dir: Path) -> list[Reading]:
    table = np.loadtxt(cmapss_dir / "train_FD001.txt")
    table = table[table[:, 0] <= UNITS]
    table = table[np.lexsort((table[:, 0], table[:, 1]))]  # cycle by cycle across engines
    return [
        Reading(
            device_id=f"FD001-{int(row[0]):03d}",
            event_time=BASE + timedelta(minutes=10 * int(row[1])),
            seq=int(row[1]),
            sensors={f"s{i}": float(row[4 + i]) for i in range(1, 22)},
            settings={f"setting{i}": float(row[1 + i]) for i in range(1, 4)},
        )
        for row in table
    ]


def _publish(bootstrap: str, topic: str, readings: list[Reading]) -> None:
    config = KafkaConfig.from_env({"PROGNOS_KAFKA_BOOTSTRAP": bootstrap, "PROGNOS_TOPIC": topic})
    with ReadingProducer(config, source="test") as producer:
        producer.send_many(readings)


def _run(
    spark: Any, bootstrap: str, topic: str, redis_url: str, prefix: str, checkpoint: Path
) -> StreamJob:
    config = StreamConfig.from_env(
        {},
        redis_url=redis_url,
        key_prefix=prefix,
        checkpoint=checkpoint,
        available_now=True,
        max_offsets_per_trigger=800,
    )
    config = replace(
        config,
        kafka=KafkaConfig.from_env({"PROGNOS_KAFKA_BOOTSTRAP": bootstrap, "PROGNOS_TOPIC": topic}),
    )
    job = StreamJob(spark, config)
    job.start()
    job.run(install_signals=False)
    return job


def _state(redis_url: str, prefix: str) -> tuple[dict[bytes, bytes], list[str]]:
    client = redis.Redis.from_url(redis_url)
    try:
        risk = client.hgetall(Keys(prefix).risk)
        alerts = sorted(
            json.dumps(json.loads(f[b"event"]), sort_keys=True)
            for _, f in client.xrange(Keys(prefix).alerts)
        )
        return risk, alerts
    finally:
        client.close()


def test_duplicates_are_dropped_and_late_readings_counted(
    spark: Any,
    kafka_bootstrap: str,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
    cmapss_dir: Path,
) -> None:
    readings = _readings(cmapss_dir)
    clean_topic, noisy_topic = (
        f"test-clean-{uuid.uuid4().hex[:8]}",
        f"test-noisy-{uuid.uuid4().hex[:8]}",
    )
    _publish(kafka_bootstrap, clean_topic, readings)
    noisy = []
    for i, r in enumerate(readings):
        noisy.append(r)
        if i % 3 == 0:
            noisy.append(r)  # the same device and seq again: a duplicate
    # Late: far behind everything already seen, sent last on an engine's own partition.
    noisy += [
        Reading(
            "FD001-001",
            BASE + timedelta(minutes=10 * (k + 1)),
            10_000 + k,
            dict(readings[k].sensors),
        )
        for k in range(LATE)
    ]
    _publish(kafka_bootstrap, noisy_topic, noisy)

    clean = _run(
        spark, kafka_bootstrap, clean_topic, redis_url, f"{key_prefix}:clean", tmp_path / "clean"
    )
    dirty = _run(
        spark, kafka_bootstrap, noisy_topic, redis_url, f"{key_prefix}:noisy", tmp_path / "noisy"
    )

    clean_risk, clean_alerts = _state(redis_url, f"{key_prefix}:clean")
    noisy_risk, noisy_alerts = _state(redis_url, f"{key_prefix}:noisy")
    assert len(clean_risk) == UNITS and clean_alerts
    assert noisy_risk == clean_risk, "duplicates changed the features: they were not dropped"
    assert noisy_alerts == clean_alerts
    assert clean.metrics.dropped_by_watermark_total == 0
    assert dirty.metrics.dropped_by_watermark_total == LATE, "late readings must be counted"

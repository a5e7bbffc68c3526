"""The first end-to-end path: kafka-python -> real broker -> Spark format("kafka") -> Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deploy.smoke import count_deliveries, produce_sample_readings, start_smoke_query
from stream.contract import Keys


def test_every_record_reaches_redis_exactly_once(
    spark: Any,
    kafka_bootstrap: str,
    redis_url: str,
    unique_topic: str,
    key_prefix: str,
    checkpoint_dir: Path,
) -> None:
    import redis

    sent = produce_sample_readings(kafka_bootstrap, unique_topic, count=500, devices=7)

    query = start_smoke_query(
        spark,
        {"kafka.bootstrap.servers": kafka_bootstrap},
        unique_topic,
        redis_url,
        key_prefix,
        "r1",
        checkpoint_dir,
    )
    query.awaitTermination(timeout=180)
    assert not query.isActive, "the availableNow query did not finish in 180 s"
    assert query.exception() is None

    deliveries = count_deliveries(redis_url, key_prefix, "r1")
    assert len(deliveries) == len(sent), f"{len(sent) - len(deliveries)} records lost"
    duplicated = {k: n for k, n in deliveries.items() if n != 1}
    assert not duplicated, f"records written more than once: {duplicated}"

    client = redis.Redis.from_url(redis_url)
    try:
        values = client.hvals(Keys(key_prefix).smoke_values("r1"))
    finally:
        client.close()
    assert sorted(values) == sorted(sent)
    devices = {json.loads(v)["d"] for v in values}  # schema v1: "d" is the device id
    assert len(devices) == 7


def test_restart_on_same_checkpoint_reads_nothing_twice(
    spark: Any,
    kafka_bootstrap: str,
    redis_url: str,
    unique_topic: str,
    key_prefix: str,
    checkpoint_dir: Path,
) -> None:
    first = produce_sample_readings(kafka_bootstrap, unique_topic, count=100)
    opts = {"kafka.bootstrap.servers": kafka_bootstrap}
    start_smoke_query(
        spark, opts, unique_topic, redis_url, key_prefix, "r1", checkpoint_dir
    ).awaitTermination(180)
    second = produce_sample_readings(kafka_bootstrap, unique_topic, count=50)
    start_smoke_query(
        spark, opts, unique_topic, redis_url, key_prefix, "r1", checkpoint_dir
    ).awaitTermination(180)

    deliveries = count_deliveries(redis_url, key_prefix, "r1")
    assert len(deliveries) == len(first) + len(second)
    assert set(deliveries.values()) == {1}

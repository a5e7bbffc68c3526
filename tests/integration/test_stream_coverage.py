"""The coverage guard against the real pipeline: readings that share no sensor with the
model stop the stream job before anything is written, naming both lists."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from ingest.config import KafkaConfig
from ingest.producer import ReadingProducer
from ingest.schema import Reading
from stream.config import StreamConfig
from stream.contract import Keys
from stream.errors import StreamError
from stream.job import StreamJob


def test_readings_without_the_models_sensors_stop_the_job_naming_both_lists(
    spark: Any,
    kafka_bootstrap: str,
    redis_url: str,
    unique_topic: str,
    dlq_topic: str,
    key_prefix: str,
    checkpoint_dir: Path,
) -> None:
    kafka = KafkaConfig.from_env(
        {"PROGNOS_KAFKA_BOOTSTRAP": kafka_bootstrap, "PROGNOS_TOPIC": unique_topic}
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Four industrial machines, hourly, for 20 days: more than the model's K windows.
    readings = [
        Reading(
            f"press-{m}",
            start + timedelta(hours=h),
            h,
            {"temperature": 60.0 + m, "vibration": 2.0 + 0.01 * h, "flow": 120.0},
        )
        for h in range(20 * 24)
        for m in range(4)
    ]
    with ReadingProducer(kafka, source="coverage-test") as producer:
        producer.send_many(readings)
    config = replace(
        StreamConfig.from_env(
            {},
            redis_url=redis_url,
            key_prefix=key_prefix,
            checkpoint=checkpoint_dir,
            available_now=True,
        ),
        kafka=kafka,
    )
    job = StreamJob(spark, config)
    job.start()
    with pytest.raises(StreamError) as info:
        job.run(install_signals=False)
    message = str(info.value)
    assert "CoverageError" in message and "share no sensor with the model" in message
    assert "the model reads s2, s3" in message
    assert "the readings carry flow, temperature, vibration" in message
    client = redis.Redis.from_url(redis_url)
    try:
        keys = Keys(key_prefix)
        assert client.hlen(keys.risk) == 0 and client.xlen(keys.alerts) == 0  # nothing written
    finally:
        client.close()

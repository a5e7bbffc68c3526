"""The stream job's check of the first records it reads, against the real pipeline: a
producer whose readings one rule refuses (here a sensor far outside its range, sent past
Prognos's own producers, which would have refused it first) is named once, with the rule,
the share, the dead-letter topic and the fix."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ingest.config import KafkaConfig
from stream.config import StreamConfig
from stream.job import StreamJob


def test_a_foreign_producer_whose_readings_one_rule_refuses_is_named_once(
    spark: Any,
    kafka_bootstrap: str,
    redis_url: str,
    unique_topic: str,
    dlq_topic: str,
    key_prefix: str,
    checkpoint_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(60):
        value = 642.0 if i % 6 == 0 else 5e10  # 50 of 60 outside s2's range, [450, 800]
        reading = {
            "v": 1,
            "d": f"engine-{i % 3}",
            "t": f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00.000Z",
            "s": i,
            "x": {"s2": value},
        }
        producer.send(
            unique_topic, key=f"engine-{i % 3}".encode(), value=json.dumps(reading).encode()
        )
    producer.flush()
    producer.close()
    kafka = KafkaConfig.from_env(
        {"PROGNOS_KAFKA_BOOTSTRAP": kafka_bootstrap, "PROGNOS_TOPIC": unique_topic}
    )
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
    caplog.set_level("WARNING", logger="stream.runner")
    job = StreamJob(spark, config)
    job.start()
    job.run(install_signals=False)
    said = [r.getMessage() for r in caplog.records if "broke the same rule" in r.getMessage()]
    assert len(said) == 1, said  # a run under 1,000 records: judged when it ended
    assert f"83% of the first 60 records read from {unique_topic} (50)" in said[0], said[0]
    assert "x.s2/range" in said[0] and dlq_topic in said[0] and "--catalogue" in said[0]
    assert job.metrics.dead_letters_total == 50

"""The smoke pipeline: Kafka -> Spark Structured Streaming (``format("kafka")``) -> Redis.

It proves the plumbing before any model is involved: every Kafka record is written to
Redis through ``foreachBatch`` with a delivery counter per record, so a lost record
(missing field) and a duplicated one (counter above 1) are both visible. The two hashes
are :meth:`stream.contract.Keys.smoke_values` (``partition:offset`` -> payload) and
:meth:`stream.contract.Keys.smoke_deliveries` (``partition:offset`` -> writes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke pipeline delivered."""

    sent: int
    delivered: int
    duplicated: int
    missing: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.delivered == self.sent and self.duplicated == 0 and self.missing == 0


def _write_partition(rows: Iterable[Any], redis_url: str, prefix: str, run: str) -> None:
    import redis

    from stream.contract import Keys

    keys = Keys(prefix)
    values, deliveries = keys.smoke_values(run), keys.smoke_deliveries(run)
    client = redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for n, row in enumerate(rows, 1):
            field = f"{row.partition}:{row.offset}"
            pipe.hset(values, field, row.value)
            pipe.hincrby(deliveries, field, 1)
            if n % 1000 == 0:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()


def start_smoke_query(
    spark: SparkSession,
    kafka_options: Mapping[str, str],
    topic: str,
    redis_url: str,
    prefix: str,
    run: str,
    checkpoint: Path,
    available_now: bool = True,
) -> StreamingQuery:
    """Start the smoke query: read ``topic`` from the earliest offset, write Redis.

    Args:
        spark: a session from :func:`deploy.spark.spark_session`.
        kafka_options: Spark Kafka source options, at least ``kafka.bootstrap.servers``.
        topic: the topic to read.
        redis_url: where to write.
        prefix: Redis key prefix.
        run: this run's name among the smoke keys (see the module docstring).
        checkpoint: the query's checkpoint folder.
        available_now: process what is in the topic now, then stop (else run on).
    """
    source = (
        spark.readStream.format("kafka")
        .options(**dict(kafka_options))
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
        .load()
        .selectExpr("CAST(value AS STRING) AS value", "partition", "offset")
    )

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        batch.foreachPartition(lambda rows: _write_partition(rows, redis_url, prefix, run))

    writer = source.writeStream.foreachBatch(write_batch).option(
        "checkpointLocation", str(checkpoint)
    )
    writer = (
        writer.trigger(availableNow=True)
        if available_now
        else writer.trigger(processingTime="1 second")
    )
    return writer.queryName(f"smoke-{topic}").start()


def count_deliveries(redis_url: str, prefix: str, run: str) -> dict[str, int]:
    """``PARTITION:OFFSET`` -> number of writes, as recorded by the smoke pipeline."""
    import redis

    from stream.contract import Keys

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        raw: dict[str, str] = client.hgetall(Keys(prefix).smoke_deliveries(run))  # type: ignore[assignment]
        return {k: int(v) for k, v in raw.items()}
    finally:
        client.close()


def produce_sample_readings(
    bootstrap: str, topic: str, count: int, devices: int = 5
) -> list[bytes]:
    """Send ``count`` readings (schema v1, keyed by device) and return their payloads."""
    from datetime import UTC, datetime, timedelta

    from ingest.codec import encode
    from ingest.config import KafkaConfig
    from ingest.producer import ReadingProducer
    from ingest.schema import Reading

    start = datetime.now(UTC).replace(microsecond=0)
    readings = [
        Reading(
            device_id=f"smoke-{i % devices:03d}",
            event_time=start + timedelta(seconds=i // devices),
            seq=i // devices,
            sensors={"vibration": float(i % 97) / 10.0},
        )
        for i in range(count)
    ]
    config = KafkaConfig.from_env({"PROGNOS_KAFKA_BOOTSTRAP": bootstrap, "PROGNOS_TOPIC": topic})
    with ReadingProducer(config, source="smoke") as producer:
        producer.send_many(readings)
    return [encode(r) for r in readings]


def run_smoke(
    spark: SparkSession,
    bootstrap: str,
    topic: str,
    redis_url: str,
    prefix: str,
    run: str,
    checkpoint: Path,
    count: int,
) -> SmokeResult:
    """Send ``count`` readings, run the smoke query over them, and count what arrived."""
    started = time.monotonic()
    produce_sample_readings(bootstrap, topic, count)
    query = start_smoke_query(
        spark, {"kafka.bootstrap.servers": bootstrap}, topic, redis_url, prefix, run, checkpoint
    )
    query.awaitTermination()
    deliveries = count_deliveries(redis_url, prefix, run)
    return SmokeResult(
        sent=count,
        delivered=len(deliveries),
        duplicated=sum(1 for n in deliveries.values() if n > 1),
        missing=max(0, count - len(deliveries)),
        seconds=time.monotonic() - started,
    )

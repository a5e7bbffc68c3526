"""The job's dead letters: published to the dead-letter topic and counted per reason.

Readings that break a rule travel through the query beside the scored windows (see
:func:`stream.sequence.route`); each batch's ``foreachBatch`` hands them here. They are
written to ``<topic>.dlq`` with Spark's Kafka writer, the original bytes as the value and
the reason in headers (:func:`stream.parse.dead_letter_records`), and counted per
``field/rule`` in the hash ``P:deadletters`` (:mod:`stream.contract`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stream.contract import dead_letter_reason
from stream.redis_config import RedisConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from ingest.config import KafkaConfig

logger = logging.getLogger(__name__)

__all__ = ["DeadLetterPublisher"]


class DeadLetterPublisher:
    """Publishes a batch's dead letters and counts them.

    Args:
        kafka: the job's Kafka settings (the dead-letter topic and security).
        redis: where the counters live.
    """

    def __init__(self, kafka: KafkaConfig, redis: RedisConfig) -> None:
        self.kafka = kafka
        self.redis = redis

    def publish(self, batch: DataFrame, dead: Sequence[Any], batch_id: int) -> int:
        """Write the dead letters of ``batch`` to the topic; count ``dead`` (their rows,
        without the bytes) per reason. Returns how many were published."""
        from stream.parse import dead_letter_records

        (
            dead_letter_records(batch)
            .write.format("kafka")
            .options(**self.kafka.spark_options())
            .option("topic", self.kafka.dead_letter_topic)
            .save()
        )
        counts = Counter(dead_letter_reason(r["dl_field"], r["dl_rule"]) for r in dead)
        client = self.redis.client()
        try:
            pipe = client.pipeline(transaction=False)
            for reason, n in counts.items():
                pipe.hincrby(self.redis.keys.deadletters, reason, n)
            pipe.execute()
        finally:
            client.close()
        logger.info(
            "batch %d: %d readings to %s (%s)",
            batch_id,
            len(dead),
            self.kafka.dead_letter_topic,
            ", ".join(f"{reason}: {n}" for reason, n in counts.most_common()),
        )
        return len(dead)

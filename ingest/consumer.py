"""Read readings (and dead letters) back from Kafka, for tools and tests.

Not a stream processor: it reads a topic from the beginning without a consumer group,
until it has seen every record that was in the topic when it started (and at least
``expected`` records, if given) or until ``timeout_s``. With a broker running::

    readings = read_readings("127.0.0.1:9092", "prognos.readings", expected=1000)
    letters = read_records("127.0.0.1:9092", "prognos.readings.dlq", decode=False)
    letters[0].headers["prognos.error.rule"]  # 'range'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ingest.admin import broker_unavailable
from ingest.codec import decode
from ingest.config import KafkaConfig
from ingest.errors import DecodeError, IngestError
from ingest.schema import Reading

logger = logging.getLogger(__name__)

__all__ = ["ConsumedRecord", "iter_records", "read_readings", "read_records"]


@dataclass(frozen=True)
class ConsumedRecord:
    """One Kafka record as read back.

    Attributes:
        topic: its topic.
        partition: its partition.
        offset: its offset.
        key: the message key.
        value: the message bytes.
        headers: header name -> value decoded as UTF-8 (dead-letter reasons).
        reading: the decoded reading (when decoding was asked and succeeded).
        error: the decoding error (when decoding was asked and failed).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    reading: Reading | None = None
    error: DecodeError | None = None


def _connection(bootstrap: str | KafkaConfig) -> KafkaConfig:
    return (
        bootstrap
        if isinstance(bootstrap, KafkaConfig)
        else KafkaConfig(bootstrap_servers=bootstrap)
    )


def iter_records(
    bootstrap: str | KafkaConfig,
    topic: str,
    *,
    expected: int | None = None,
    timeout_s: float = 30.0,
    decode_values: bool = True,
) -> Iterator[ConsumedRecord]:
    """Yield the records of ``topic`` from the beginning.

    Stops once every partition reached the end offset it had when reading started and
    at least ``expected`` records were yielded, or when ``timeout_s`` passes.

    Args:
        bootstrap: ``host:port`` or a :class:`KafkaConfig` (for security settings).
        topic: the topic to read.
        expected: keep reading (until the timeout) until this many records arrived.
        timeout_s: give up after this many seconds.
        decode_values: decode each value into ``ConsumedRecord.reading``.

    Raises:
        BrokerUnavailableError: no broker answered.
        IngestError: the topic does not appear within the timeout.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    config = _connection(bootstrap)
    deadline = time.monotonic() + timeout_s
    try:
        consumer = KafkaConsumer(
            **config.kafka_kwargs(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Committed records only: the stream job publishes dead letters in transactions.
            isolation_level="read_committed",
            bootstrap_timeout_ms=int(min(timeout_s, 10.0) * 1000),
        )
    except (KafkaError, OSError) as exc:
        raise broker_unavailable(config.bootstrap_servers, exc) from None
    try:
        partitions: set[int] | None = None
        while partitions is None:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                if time.monotonic() > deadline:
                    raise IngestError(
                        f"topic {topic!r} does not exist on {config.bootstrap_servers}"
                    )
                time.sleep(0.1)  # metadata refresh; nothing to poll on yet
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        end: dict[Any, int] = consumer.end_offsets(assigned)
        count = 0
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200, max_records=5000)
            for tp_records in batch.values():
                for rec in tp_records:
                    count += 1
                    yield _record(rec, decode_values)
            if (expected is None or count >= expected) and all(
                consumer.position(tp) >= end[tp] for tp in assigned
            ):
                return
        logger.warning("stopped reading %s after %.0fs with %d records", topic, timeout_s, count)
    finally:
        consumer.close()


def _record(rec: Any, decode_values: bool) -> ConsumedRecord:
    headers = {k: (v or b"").decode(errors="replace") for k, v in (rec.headers or [])}
    reading = error = None
    if decode_values:
        try:
            reading = decode(rec.value)
        except DecodeError as exc:
            error = exc
    return ConsumedRecord(
        rec.topic, rec.partition, rec.offset, rec.key, rec.value, headers, reading, error
    )


def read_records(
    bootstrap: str | KafkaConfig,
    topic: str,
    *,
    expected: int | None = None,
    timeout_s: float = 30.0,
    decode_values: bool = True,
) -> list[ConsumedRecord]:
    """Every record of ``topic`` (see :func:`iter_records`), as a list."""
    return list(
        iter_records(
            bootstrap, topic, expected=expected, timeout_s=timeout_s, decode_values=decode_values
        )
    )


def read_readings(
    bootstrap: str | KafkaConfig,
    topic: str,
    *,
    expected: int | None = None,
    timeout_s: float = 30.0,
) -> list[Reading]:
    """Every reading of ``topic``, decoded, in partition order.

    Raises:
        DecodeError: a record is not a valid reading.
    """
    out: list[Reading] = []
    for rec in iter_records(bootstrap, topic, expected=expected, timeout_s=timeout_s):
        if rec.error is not None:
            raise rec.error
        assert rec.reading is not None
        out.append(rec.reading)
    return out

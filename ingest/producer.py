"""Publish readings to Kafka: keyed by device, idempotent, ``acks=all``, batched, compressed.

:class:`ReadingProducer` validates each reading with the rules of the catalogue in force
(:mod:`ingest.validation`, :mod:`ingest.catalogue`) and sends the valid ones to the
readings topic keyed by device id, so a device's readings stay in one partition, in order.
A reading that breaks a rule goes to the dead-letter topic with the reason in headers
(:mod:`ingest.deadletter`); a valid reading is never dropped. When most of the first
readings break the same rule (a recording the catalogue does not fit), the producer says
so at once, at ERROR, with the fix (:mod:`ingest.watch`). Both topics are created when
missing before anything is sent (:func:`ingest.admin.ensure_topics`).

Delivery guarantees are not negotiable: the producer is idempotent (``enable_idempotence``)
with ``acks=all``, unlimited retries within ``delivery_timeout_ms`` and at most 5 requests
in flight, so retries neither reorder nor duplicate. Asking for anything that would turn
idempotence off raises :class:`~ingest.errors.IdempotenceDisabledError` instead of the
silent downgrade kafka-python would do. With a broker running::

    with ReadingProducer(KafkaConfig.from_env()) as producer:
        for reading in readings:
            producer.send(reading)
    # leaving the block flushes; a delivery failure raises DeliveryError
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from kafka.partitioner.default import DefaultPartitioner

from ingest.admin import broker_unavailable, ensure_topics
from ingest.catalogue import Catalogue
from ingest.codec import encode
from ingest.config import KafkaConfig
from ingest.deadletter import DeadLetterCounts, dead_letter_headers
from ingest.errors import (
    ConfigError,
    DeliveryError,
    EncodeError,
    IdempotenceDisabledError,
)
from ingest.schema import Reading
from ingest.validation import Violation, rules_for
from ingest.watch import RejectionWatch, rejection_message

logger = logging.getLogger(__name__)

__all__ = ["ProducerSettings", "ProducerStats", "ReadingProducer"]

_COMPRESSION: Final = (None, "gzip", "snappy", "lz4", "zstd")
# Settings this module owns; a caller may not pass them through ``extra``.
_GUARDED: Final = {
    "enable_idempotence": (True,),
    "acks": ("all", -1),
}


@dataclass(frozen=True)
class ProducerSettings:
    """Batching and delivery settings of a :class:`ReadingProducer`.

    Attributes:
        linger_ms: how long a batch may wait to fill before it is sent (100 ms: far below
            a streaming trigger, and fewer, larger requests cost the client less CPU).
        batch_size: the largest batch per partition, in bytes.
        compression_type: ``gzip`` (no extra package), ``lz4``, ``zstd``, ``snappy`` or None.
        delivery_timeout_ms: how long a record may be retried before it fails.
        max_in_flight: requests in flight per connection, at most 5 (idempotence).
        bootstrap_timeout_ms: how long to wait for the first broker to answer.
        validate: check readings against the catalogue's rules before sending.
        extra: further kafka-python producer settings; ones that would disable
            idempotence or ``acks=all`` are refused.
    """

    linger_ms: int = 100
    batch_size: int = 1024 * 1024
    compression_type: str | None = "gzip"
    delivery_timeout_ms: int = 120_000
    max_in_flight: int = 5
    bootstrap_timeout_ms: int = 10_000
    validate: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.compression_type not in _COMPRESSION:
            raise ConfigError(f"compression {self.compression_type!r} is not one of {_COMPRESSION}")
        if not 1 <= self.max_in_flight <= 5:
            raise IdempotenceDisabledError(
                f"max_in_flight={self.max_in_flight}: an idempotent producer allows 1 to 5 requests in flight"
            )
        for key, allowed in _GUARDED.items():
            if key in self.extra and self.extra[key] not in allowed:
                raise IdempotenceDisabledError(
                    f"{key}={self.extra[key]!r} would turn idempotent, acks=all delivery off; "
                    "Prognos producers always use enable_idempotence=True and acks='all'"
                )
        retries = self.extra.get("retries")
        if retries is not None and retries < 1:
            raise IdempotenceDisabledError(
                f"retries={retries!r}: idempotent delivery needs retries >= 1"
            )
        if self.extra.get("max_in_flight_requests_per_connection", 1) > 5:
            raise IdempotenceDisabledError(
                "max_in_flight_requests_per_connection above 5 disables idempotence"
            )
        if "transactional_id" in self.extra:
            raise ConfigError(
                "transactions are not supported by ReadingProducer; drop transactional_id"
            )

    def kafka_kwargs(self) -> dict[str, Any]:
        """kafka-python producer settings (no connection settings)."""
        kwargs: dict[str, Any] = {
            "linger_ms": self.linger_ms,
            "batch_size": self.batch_size,
            "compression_type": self.compression_type,
            "delivery_timeout_ms": self.delivery_timeout_ms,
            "max_in_flight_requests_per_connection": self.max_in_flight,
            "bootstrap_timeout_ms": self.bootstrap_timeout_ms,
            "max_request_size": max(1_048_576, self.batch_size + 65_536),
        }
        kwargs.update(self.extra)
        # Set explicitly: kafka-python then raises on a conflict instead of downgrading.
        kwargs["enable_idempotence"] = True
        kwargs["acks"] = "all"
        return kwargs


@dataclass(frozen=True)
class ProducerStats:
    """What a producer did.

    Attributes:
        sent: readings handed to the client for the readings topic.
        failed: records (readings or dead letters) the broker did not acknowledge.
        dead_letters: messages sent to the dead-letter topic, by reason ``field/rule``.
        first_error: the first delivery error, as text.
        rejection: when most of the first readings broke the same rule: which, the
            share, and the fix (see :mod:`ingest.watch`).
    """

    sent: int
    failed: int
    dead_letters: dict[str, int]
    first_error: str | None
    rejection: str | None = None

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())


class _CachingPartitioner(DefaultPartitioner):  # type: ignore[misc]
    """kafka-python's murmur2 partitioner (Java-compatible) with a per-key cache.

    Hashing is pure Python in kafka-python and a fleet has few device ids, so the cache
    removes a measurable share of the per-record cost. Entries are keyed by the partition
    count too, so adding partitions re-hashes.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bytes, int], int] = {}

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: Any,
        cluster: Any,
    ) -> int:
        if serialized_key is None:
            return int(
                super().partition(topic, key, serialized_key, value, serialized_value, cluster)
            )
        partitions = cluster.partitions_for_topic(topic)
        slot = (topic, serialized_key, len(partitions) if partitions else 0)
        chosen = self._cache.get(slot)
        if chosen is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            chosen = int(
                super().partition(topic, key, serialized_key, value, serialized_value, cluster)
            )
            self._cache[slot] = chosen
        return chosen


class ReadingProducer:
    """Sends readings to the readings topic and rule breakers to the dead-letter topic.

    A context manager: leaving the block flushes (also on Ctrl-C) and closes. Thread-safe
    for ``send`` as kafka-python's producer is.

    Args:
        config: where to connect and which topics to use.
        settings: batching, compression and validation settings.
        source: the ``prognos.source`` header for dead letters this producer makes itself.
        catalogue: the catalogue whose rules readings are validated with (None: the
            default catalogue, :func:`ingest.catalogue.default_catalogue`).

    Raises:
        BrokerUnavailableError: no broker answered within ``bootstrap_timeout_ms``.
        IdempotenceDisabledError: the settings would disable idempotence or acks=all.
        TopicError: a missing topic could not be created (see
            :func:`ingest.admin.ensure_topics`).
    """

    def __init__(
        self,
        config: KafkaConfig,
        settings: ProducerSettings | None = None,
        source: str = "producer",
        catalogue: Catalogue | None = None,
    ) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaConfigurationError, KafkaError

        self.config = config
        self.settings = settings or ProducerSettings()
        self.source = source
        self.rules = rules_for(catalogue)
        self.catalogue = self.rules.catalogue
        self._watch = RejectionWatch()
        self._rejection: str | None = None
        self.topic = config.topic
        self.dlq_topic = config.dead_letter_topic
        self._lock = threading.Lock()
        self._sent = 0
        self._failed = 0
        self._first_error: str | None = None
        self._dead = DeadLetterCounts()
        self._closed = False
        try:
            self._producer = KafkaProducer(
                **config.kafka_kwargs(),
                **self.settings.kafka_kwargs(),
                partitioner=_CachingPartitioner(),
            )
        except KafkaConfigurationError as exc:
            raise IdempotenceDisabledError(
                f"kafka-python refused the producer settings: {exc}"
            ) from None
        except (KafkaError, OSError) as exc:
            # kafka-python 3 reports an unreachable cluster as KafkaTimeoutError
            # ("Unable to bootstrap"), older versions as NoBrokersAvailable.
            raise broker_unavailable(config.bootstrap_servers, exc) from None
        try:
            # Before the first send: a topic left to the broker's auto-creation gets its
            # default shape, and kafka-python logs an ERROR until it exists.
            ensure_topics(config, timeout_s=self.settings.bootstrap_timeout_ms / 1000)
        except BaseException:
            self._producer.close(timeout=0)
            raise
        logger.info(
            "producer connected to %s: topic %s, dead letters %s, idempotent, acks=all, %s "
            "compression; catalogue %s",
            config.bootstrap_servers,
            self.topic,
            self.dlq_topic,
            self.settings.compression_type or "no",
            self.catalogue.origin,
        )

    # -- sending -----------------------------------------------------------------------
    def send(self, reading: Reading, source: str | None = None) -> bool:
        """Send ``reading``; a reading that breaks a rule goes to the dead-letter topic.

        Args:
            reading: the reading.
            source: the ``prognos.source`` header if it is dead-lettered (default: the
                producer's ``source``), e.g. ``file.csv:12``.

        Returns:
            True when it went to the readings topic, False when it was dead-lettered.
        """
        violations: list[Violation] = self.rules.validate(reading) if self.settings.validate else []
        if not violations:
            try:
                value = encode(reading)
            except EncodeError as exc:
                violations = [Violation(exc.field, exc.rule, exc.reason)]
            else:
                too_big = self.rules.check_size(value)
                if too_big is None:
                    self._producer.send(
                        self.topic, value=value, key=reading.device_id.encode()
                    ).add_errback(self._on_error)
                    self._sent += 1
                    if self._rejection is None:
                        self._watched(None)
                    return True
                violations = [too_big]
        self.dead_letter(
            encode(reading, allow_nan=True),
            reading.device_id.encode(),
            violations,
            source or self.source,
        )
        return False

    def send_many(self, readings: Iterable[Reading]) -> int:
        """Send each reading; returns how many went to the readings topic."""
        return sum(self.send(r) for r in readings)

    def send_raw(
        self,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        topic: str | None = None,
    ) -> None:
        """Send bytes as they are, to ``topic`` (default: the dead-letter topic)."""
        self._producer.send(
            topic or self.dlq_topic, value=value, key=key, headers=list(headers or [])
        ).add_errback(self._on_error)

    def dead_letter(
        self, value: bytes, key: bytes | None, violations: Sequence[Violation], source: str
    ) -> None:
        """Send ``value`` to the dead-letter topic with the headers for ``violations``."""
        self._dead.add(violations[0])
        logger.debug("dead letter from %s: %s", source, violations[0])
        self.send_raw(value, key, dead_letter_headers(violations, source))
        if self._rejection is None:
            self._watched(violations[0])

    def _watched(self, violation: Violation | None) -> None:
        """Tell the watch about one reading; say loudly, once, if one rule rejects most."""
        found = self._watch.observe(violation)
        if found is not None:
            self._rejection = rejection_message(found, self.catalogue.origin, self.source)
            logger.error("%s", self._rejection)

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self._failed += 1
            if self._first_error is None:
                self._first_error = f"{type(exc).__name__}: {exc}"
                logger.error("delivery failed: %s", self._first_error)

    # -- completion --------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> ProducerStats:
        """Wait until every record sent so far is acknowledged or failed.

        Raises:
            DeliveryError: some records failed (after the client's retries) or the flush
                timed out.
        """
        from kafka.errors import KafkaTimeoutError

        started = time.monotonic()
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError as exc:
            raise DeliveryError(
                f"records still unacknowledged after {time.monotonic() - started:.1f}s flushing to "
                f"{self.config.bootstrap_servers}: {exc}",
                failed=self._failed,
            ) from None
        if self._rejection is None:
            found = self._watch.finish()
            if found is not None:
                self._rejection = rejection_message(found, self.catalogue.origin, self.source)
                logger.error("%s", self._rejection)
        stats = self.stats()
        if stats.failed:
            raise DeliveryError(
                f"{stats.failed} records were not acknowledged by {self.config.bootstrap_servers}; "
                f"first error: {stats.first_error}",
                failed=stats.failed,
                first_error=stats.first_error,
            )
        return stats

    def stats(self) -> ProducerStats:
        """The counts so far (``sent`` includes records not yet acknowledged)."""
        with self._lock:
            return ProducerStats(
                self._sent,
                self._failed,
                dict(self._dead.by_reason),
                self._first_error,
                self._rejection,
            )

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush what is pending (up to ``timeout``) and close the connection."""
        if self._closed:
            return
        self._closed = True
        self._producer.close(timeout=timeout)

    def __enter__(self) -> ReadingProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
                # A clean exit, or Ctrl-C: deliver what was already handed over.
                self.flush()
        finally:
            self.close()

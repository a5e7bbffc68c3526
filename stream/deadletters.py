"""The job's dead letters, exactly once in effect: in the dead-letter topic and in the counts.

Readings that break a rule travel through the query beside the scored windows (see
:func:`stream.sequence.route`); each batch's ``foreachBatch`` hands them here. Spark runs
``foreachBatch`` at least once: after a crash between this write and the batch's commit, the
same batch comes again. Both outputs are written so that a replayed batch changes nothing:

* **The topic** (``<topic>.dlq``): the batch's dead letters are published in one Kafka
  transaction together with a marker, the offset ``batch_id + 1`` committed for partition 0
  of the dead-letter topic under the consumer group ``prognos-dlq-<query id>``
  (``send_offsets_to_transaction``). The marker commits if and only if the records do, so a
  replayed batch whose marker is already there is not published again, and a batch cut
  short is aborted (its records never become visible to a ``read_committed`` reader). Each
  record is the original key and bytes with the reason in headers (:mod:`ingest.deadletter`),
  and ``prognos.source`` names where it was read (``kafka:topic/partition@offset``).
* **The counts** (``P:deadletters``, per ``field/rule``): applied by one Lua script that first
  checks, in ``P:deadletters:counted``, that this query has not counted this batch yet.

Why a transaction rather than an idempotence key for consumers to deduplicate on: readers of
the topic (people, scripts, other systems) then need no state of their own; reading with
``isolation.level=read_committed`` is all they have to do. The query id (stable across
restarts on the same checkpoint, new with a new checkpoint) scopes both markers, so a new
checkpoint starts afresh instead of skipping batches it never published.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream.contract import dead_letter_reason
from stream.errors import SinkError
from stream.redis_config import RedisConfig, redact_url

if TYPE_CHECKING:
    from ingest.config import KafkaConfig

logger = logging.getLogger(__name__)

__all__ = ["DeadLetter", "DeadLetterPublisher"]

# KEYS: the counts hash, the counted-batches hash
# ARGV: query id, batch id, then pairs of reason and count
_COUNT = """
local done = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1')
if done >= tonumber(ARGV[2]) then return 0 end
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class DeadLetter:
    """One record that broke a rule, as the query carries it (the ``dl_*`` columns)."""

    key: bytes | None
    value: bytes
    field: str
    rule: str
    reason: str
    source: str

    def headers(self) -> list[tuple[str, bytes]]:
        """The dead-letter headers of :mod:`ingest.deadletter`."""
        from ingest.deadletter import HEADER_FIELD, HEADER_REASON, HEADER_RULE, HEADER_SOURCE

        return [
            (HEADER_FIELD, self.field.encode()),
            (HEADER_RULE, self.rule.encode()),
            (HEADER_REASON, f"{self.field}: {self.reason}".encode()),
            (HEADER_SOURCE, self.source.encode()),
        ]


class DeadLetterPublisher:
    """Publishes and counts a batch's dead letters, once per batch whatever the replays.

    Args:
        kafka: the job's Kafka settings (the dead-letter topic and security).
        redis: where the counts live.
        timeout_s: how long one transaction may take.
    """

    def __init__(self, kafka: KafkaConfig, redis: RedisConfig, timeout_s: float = 60.0) -> None:
        self.kafka = kafka
        self.redis = redis
        self.timeout_s = timeout_s
        self._producer: Any = None
        self._query_id: str | None = None
        self._next_batch = -1  # the first batch id not yet published (from the marker)

    @property
    def marker_group(self) -> str:
        """The consumer group whose committed offset marks the published batches."""
        return f"prognos-dlq-{self._query_id}"

    def publish(self, query_id: str, batch_id: int, dead: Sequence[DeadLetter]) -> int:
        """Publish and count ``dead``, the dead letters of batch ``batch_id``.

        Returns:
            How many were published now: 0 when a replay finds the batch already published.

        Raises:
            SinkError: Kafka or Redis failed; the batch is not committed and comes again.
        """
        if not dead:
            return 0
        published = self._publish(query_id, batch_id, dead)
        self._count(query_id, batch_id, dead)
        if published:
            counts = Counter(dead_letter_reason(d.field, d.rule) for d in dead)
            logger.info(
                "batch %d: %d readings to %s (%s)",
                batch_id,
                len(dead),
                self.kafka.dead_letter_topic,
                ", ".join(f"{reason}: {n}" for reason, n in counts.most_common()),
            )
        else:
            logger.info(
                "batch %d: its %d dead letters were published before (a replayed batch)",
                batch_id,
                len(dead),
            )
        return len(dead) if published else 0

    # -- Kafka ----------------------------------------------------------------------------
    def _publish(self, query_id: str, batch_id: int, dead: Sequence[DeadLetter]) -> bool:
        from kafka.errors import KafkaError

        try:
            producer = self._open(query_id)
            if batch_id < self._next_batch:
                return False
            producer.begin_transaction()
            for d in dead:
                producer.send(
                    self.kafka.dead_letter_topic, key=d.key, value=d.value, headers=d.headers()
                )
            _bounded(
                producer,
                "send_offsets_to_transaction",
                self.timeout_s,
                self._marker(batch_id + 1),
                self.marker_group,
            )
            _bounded(producer, "commit_transaction", self.timeout_s)
        except (KafkaError, OSError) as exc:
            self.close()  # a new producer fences and aborts what this one left open
            raise SinkError(
                f"publishing {len(dead)} dead letters to {self.kafka.dead_letter_topic} on "
                f"{self.kafka.bootstrap_servers} failed: {exc}. The batch is not committed; "
                "restart the job on its checkpoint once Kafka is back"
            ) from exc
        self._next_batch = batch_id + 1
        return True

    def _marker(self, offset: int) -> dict[Any, Any]:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        tp = TopicPartition(self.kafka.dead_letter_topic, 0)
        return {tp: OffsetAndMetadata(offset, "prognos dead-letter batch marker", -1)}

    def _open(self, query_id: str) -> Any:
        """The transactional producer of this query, and the marker it left before."""
        if self._producer is not None and self._query_id == query_id:
            return self._producer
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        self.close()
        self._query_id = query_id
        producer = KafkaProducer(
            **self.kafka.kafka_kwargs(),
            transactional_id=f"prognos-dlq-{query_id}",
            acks="all",
            transaction_timeout_ms=int(self.timeout_s * 1000),
        )
        producer.init_transactions()  # fences an earlier incarnation, aborting its transaction
        consumer = KafkaConsumer(
            **self.kafka.kafka_kwargs(),
            group_id=self.marker_group,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            committed = consumer.committed(TopicPartition(self.kafka.dead_letter_topic, 0))
        finally:
            consumer.close()
        self._next_batch = int(committed) if committed is not None else -1
        self._producer = producer
        return producer

    def close(self) -> None:
        """Close the producer (a later publish opens a new one)."""
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except Exception:  # closing a broken producer may fail too; it is gone anyway
                logger.debug("closing the dead-letter producer failed", exc_info=True)
            self._producer = None

    # -- Redis ----------------------------------------------------------------------------
    def _count(self, query_id: str, batch_id: int, dead: Sequence[DeadLetter]) -> None:
        import redis

        counts = Counter(dead_letter_reason(d.field, d.rule) for d in dead)
        args: list[Any] = [query_id, str(batch_id)]
        for reason, n in counts.items():
            args.extend([reason, n])
        keys = self.redis.keys
        client = self.redis.client(socket_timeout=30, socket_connect_timeout=10)
        try:
            client.eval(_COUNT, 2, keys.deadletters, keys.deadletters_counted, *args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise SinkError(
                f"counting dead letters in Redis at {redact_url(self.redis.url)} failed: {exc}. "
                "The batch is not committed; restart the job on its checkpoint once Redis is back"
            ) from exc
        finally:
            client.close()


def _bounded(producer: Any, step: str, timeout_s: float, *args: Any) -> None:
    """``producer.<step>(*args)``, waiting at most ``timeout_s`` for the broker's answer.

    kafka-python's ``send_offsets_to_transaction`` and ``commit_transaction`` wait for their
    result without a limit: a transaction coordinator that moves while a broker restarts
    can leave them waiting for ever (the job hung so in the cluster's broker-restart
    fault). Their result is awaited here with a limit instead; a timeout raises
    ``KafkaTimeoutError``, the batch is not committed, and the next producer fences and
    aborts the open transaction. A commit that did reach the broker committed the marker
    with the records, so the replayed batch is recognised and not published twice.
    """
    from kafka.errors import KafkaTimeoutError

    manager = getattr(producer, "_transaction_manager", None)
    sender = getattr(producer, "_sender", None)
    if manager is None or sender is None:  # another client (a test's double): as it is
        getattr(producer, step)(*args)
        return
    if step == "commit_transaction":
        result = manager.begin_commit()
    else:
        result = manager.send_offsets_to_transaction(*args)
    sender.wakeup()
    if not result.wait(timeout_ms=int(timeout_s * 1000)):
        raise KafkaTimeoutError(f"{step} had no answer from the broker within {timeout_s:.0f}s")

"""Dead letters exactly once in effect, against a real broker and Redis: a replayed batch
publishes and counts nothing again; a batch cut short mid-transaction is never seen."""

from __future__ import annotations

import uuid

import redis

from ingest.config import KafkaConfig
from ingest.consumer import read_records
from stream.deadletters import DeadLetter, DeadLetterPublisher
from stream.redis_config import RedisConfig


def _dead(n: int, first: int = 0) -> list[DeadLetter]:
    return [
        DeadLetter(
            key=b"pump-1",
            value=b'{"v":1,"d":"pump-1","x":{"vibration":1e12}}',
            field="x.vibration",
            rule="range",
            reason=f"value 1e+12 outside [0, 100] ({i})",
            source=f"kafka:t/0@{i}",
        )
        for i in range(first, first + n)
    ]


def test_a_replayed_or_interrupted_batch_leaves_each_dead_letter_once(
    kafka_bootstrap: str, redis_url: str, unique_topic: str, dlq_topic: str, key_prefix: str
) -> None:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(dlq_topic, 1, 1)])
    admin.close()
    kafka = KafkaConfig.from_env(
        {"PROGNOS_KAFKA_BOOTSTRAP": kafka_bootstrap, "PROGNOS_TOPIC": unique_topic}
    )
    store = RedisConfig(redis_url, key_prefix)
    query = uuid.uuid4().hex

    first = DeadLetterPublisher(kafka, store)
    assert first.publish(query, 0, _dead(3)) == 3
    assert first.publish(query, 0, _dead(3)) == 0  # the same batch again: nothing
    first.close()

    # A crash mid-batch: batch 1's records sent in an open transaction, never committed.
    crashed = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"prognos-dlq-{query}", acks="all"
    )
    crashed.init_transactions()
    crashed.begin_transaction()
    for d in _dead(2, first=3):
        crashed.send(dlq_topic, key=d.key, value=d.value, headers=d.headers())
    crashed.flush()  # written to the log, inside the open transaction

    restarted = DeadLetterPublisher(kafka, store)  # fences the crashed producer, aborting it
    assert restarted.publish(query, 0, _dead(3)) == 0  # batch 0 replayed after the restart
    assert restarted.publish(query, 1, _dead(2, first=3)) == 2
    restarted.close()

    records = read_records(kafka_bootstrap, dlq_topic, timeout_s=20)
    sources = [r.headers["prognos.source"] for r in records]
    assert sorted(sources) == [f"kafka:t/0@{i}" for i in range(5)]  # each once
    assert records[0].headers["prognos.error.rule"] == "range"
    assert records[0].headers["prognos.error.reason"].startswith("x.vibration: value 1e+12")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.hgetall(store.keys.deadletters) == {"x.vibration/range": "5"}
    finally:
        client.close()

    # A new checkpoint is a new query: its batch 0 is published, not taken for the old one's.
    other = DeadLetterPublisher(kafka, store)
    assert other.publish(uuid.uuid4().hex, 0, _dead(1, first=5)) == 1
    other.close()
    assert len(read_records(kafka_bootstrap, dlq_topic, timeout_s=20)) == 6

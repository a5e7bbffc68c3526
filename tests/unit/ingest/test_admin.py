"""Topic creation and the mapping of kafka-python's admin errors, without a broker."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from kafka import errors

from deploy.stack import free_port
from ingest.admin import ensure_topics, list_topics
from ingest.config import KafkaConfig
from ingest.errors import BrokerUnavailableError, TopicError

CONFIG = KafkaConfig(bootstrap_servers="k1:9092", topic="t", partitions=4, replication_factor=3)


class FakeAdmin:
    """What ensure_topics uses of kafka-python's KafkaAdminClient."""

    DEFAULT_CONFIG: ClassVar[dict[str, Any]] = {"bootstrap_timeout_ms": 30_000}
    existing: ClassVar[set[str]] = set()
    fail_create: ClassVar[dict[str, Exception]] = {}
    fail_list: ClassVar[Exception | None] = None
    made: ClassVar[list[Any]] = []

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.created: list[tuple[str, int, int]] = []
        self.waited: list[str] | None = None
        self.closed = False
        FakeAdmin.made.append(self)

    def list_topics(self) -> list[str]:
        if FakeAdmin.fail_list is not None:
            raise FakeAdmin.fail_list
        return sorted(FakeAdmin.existing)

    def create_topics(self, new_topics: list[Any], timeout_ms: int | None = None) -> None:
        for topic in new_topics:
            if topic.name in FakeAdmin.fail_create:
                raise FakeAdmin.fail_create[topic.name]
            self.created.append((topic.name, topic.num_partitions, topic.replication_factor))

    def wait_for_topics(self, names: list[str], timeout_ms: int = 10_000) -> None:
        self.waited = names

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    import kafka

    monkeypatch.setattr(kafka, "KafkaAdminClient", FakeAdmin)
    FakeAdmin.existing = set()
    FakeAdmin.fail_create = {}
    FakeAdmin.fail_list = None
    FakeAdmin.made = []
    return FakeAdmin


def test_missing_topics_are_created_with_the_configured_shape_and_awaited(
    admin: type[FakeAdmin],
) -> None:
    assert ensure_topics(CONFIG, timeout_s=2.0) == ("t", "t.dlq")
    [client] = admin.made
    assert client.created == [("t", 4, 3), ("t.dlq", 4, 3)]
    assert client.waited == ["t", "t.dlq"] and client.closed
    assert client.settings["bootstrap_servers"] == ["k1:9092"]
    assert client.settings["request_timeout_ms"] == client.settings["bootstrap_timeout_ms"] == 2000


def test_existing_topics_are_left_alone(admin: type[FakeAdmin]) -> None:
    admin.existing = {"t", "t.dlq", "other"}
    assert ensure_topics(CONFIG) == ()
    [client] = admin.made
    assert client.created == [] and client.waited is None and client.closed


def test_a_topic_created_meanwhile_by_another_client_is_fine(admin: type[FakeAdmin]) -> None:
    admin.existing = {"t"}
    admin.fail_create = {"t.dlq": errors.TopicAlreadyExistsError("t.dlq")}
    assert ensure_topics(CONFIG) == ()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.InvalidReplicationFactorError("3 > 1 broker"), "PROGNOS_TOPIC_REPLICATION"),
        (errors.InvalidPartitionsError("0"), "PROGNOS_TOPIC_PARTITIONS"),
        (errors.InvalidTopicError("bad"), "PROGNOS_DLQ_TOPIC"),
        (errors.TopicAuthorizationFailedError(), "grant CREATE"),
        (errors.ClusterAuthorizationFailedError(), "grant CREATE"),
        (errors.PolicyViolationError("no"), "beforehand"),
    ],
)
def test_a_refused_creation_names_the_topic_and_the_fix(
    admin: type[FakeAdmin], error: Exception, expected: str
) -> None:
    admin.existing = {"t"}
    admin.fail_create = {"t.dlq": error}
    with pytest.raises(TopicError) as info:
        ensure_topics(CONFIG)
    message = str(info.value)
    assert "'t.dlq'" in message and "k1:9092" in message and expected in message
    assert type(error).__name__ in message and not info.value.retriable
    assert admin.made[0].closed


def test_a_failed_request_is_a_retriable_broker_error(admin: type[FakeAdmin]) -> None:
    admin.fail_list = errors.KafkaConnectionError("reset by peer")
    with pytest.raises(BrokerUnavailableError) as info:
        ensure_topics(CONFIG)
    assert "k1:9092" in str(info.value) and "reset by peer" in str(info.value)
    assert info.value.retriable
    with pytest.raises(BrokerUnavailableError):
        list_topics(CONFIG)


def test_list_topics(admin: type[FakeAdmin]) -> None:
    admin.existing = {"a", "b"}
    assert list_topics(CONFIG) == {"a", "b"}
    assert admin.made[0].closed


def test_no_broker_names_the_address_and_the_fix() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailableError) as info:
        ensure_topics(KafkaConfig(bootstrap_servers=address), timeout_s=0.5)
    message = str(info.value)
    assert address in message and "prognos stack up" in message

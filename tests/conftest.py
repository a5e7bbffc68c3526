"""Shared fixtures.

Integration tests talk to a real Apache Kafka broker and a real redis-server. By default
the session starts its own, with state in a temporary folder and free ports, through the
same code as ``prognos stack up``; set ``PROGNOS_TEST_KAFKA_BOOTSTRAP`` and/or
``PROGNOS_TEST_REDIS_URL`` to use existing ones instead. Each test gets a unique topic,
Redis key prefix and checkpoint folder, cleaned up afterwards.

Tests under ``tests/unit`` are marked ``unit``, those under ``tests/integration``
``integration``, those under ``tests/reliability`` ``reliability`` and those under
``tests/cluster`` ``cluster`` automatically.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CMAPSS_DIR = ROOT.parent / "shared" / "data" / "cmapss"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "reliability" in parts:
            item.add_marker(pytest.mark.reliability)
        elif "cluster" in parts:
            item.add_marker(pytest.mark.cluster)
        elif "unit" in parts:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def stack_config(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A StackConfig for a stack of this test session's own (free ports, temp state)."""
    from deploy.config import StackConfig
    from deploy.stack import free_port

    state = tmp_path_factory.mktemp("stack")
    return StackConfig.from_env(
        state_dir=state,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
        external_kafka=os.environ.get("PROGNOS_TEST_KAFKA_BOOTSTRAP") or None,
        external_redis=os.environ.get("PROGNOS_TEST_REDIS_URL") or None,
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_config: Any) -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker (started for the session unless given)."""
    if stack_config.external_kafka:
        yield stack_config.external_kafka
        return
    from deploy.stack import KafkaBroker

    broker = KafkaBroker(stack_config)
    broker.start()
    try:
        yield stack_config.kafka_bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_url(stack_config: Any) -> Iterator[str]:
    """URL of a real Redis server (started for the session unless given)."""
    if stack_config.external_redis:
        yield stack_config.external_redis
        return
    from deploy.stack import RedisServer

    server = RedisServer(stack_config)
    server.start()
    try:
        yield f"redis://127.0.0.1:{stack_config.redis_port}/0"
    finally:
        server.stop()


def _slug(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh topic with 2 partitions, deleted after the test."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    topic = f"test-{_slug(request)}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="prognos-tests")
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    try:
        yield topic
    finally:
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()


@pytest.fixture
def dlq_topic(kafka_bootstrap: str, unique_topic: str) -> Iterator[str]:
    """The unique topic's dead-letter topic (``<topic>.dlq``), deleted afterwards if created."""
    from kafka import KafkaAdminClient

    name = f"{unique_topic}.dlq"
    yield name
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="prognos-tests")
    try:
        if name in admin.list_topics():
            admin.delete_topics([name])
    finally:
        admin.close()


@pytest.fixture
def key_prefix(redis_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A Redis key prefix unique to the test; its keys are deleted afterwards."""
    import redis

    prefix = f"test:{_slug(request)}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def checkpoint_dir(tmp_path: Path) -> Path:
    """A checkpoint folder unique to the test."""
    return tmp_path / "checkpoint"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A local Spark session with the Kafka connector, shared by the test session."""
    from deploy.spark import spark_session
    from stream.session import SparkConfig

    session = spark_session(SparkConfig.from_env(app_name="prognos-tests", ui=False))
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def cmapss_dir() -> Path:
    """The NASA C-MAPSS FD001 files in ../shared/data/cmapss (read in place, never copied)."""
    if not (CMAPSS_DIR / "train_FD001.txt").is_file():
        pytest.fail(f"C-MAPSS data not found at {CMAPSS_DIR}; the repo expects ../shared beside it")
    return CMAPSS_DIR

"""The SQL settings a Prognos session gets are defaults: what the user set with ``--conf``
(spark-submit) or ``PROGNOS_SPARK_CONF`` is kept, and a state store the window operator
cannot run on is refused by name (stream/session.py), with in-memory session doubles."""

from __future__ import annotations

import logging

import pytest

from stream.errors import ConfigError
from stream.session import (
    ROCKSDB_PROVIDER,
    STATE_STORE,
    STATE_STORE_PROVIDER,
    SparkConfig,
    apply_sql_settings,
    use_state_store,
)

CHANGELOG = "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled"


class _Conf:
    """The session's runtime conf: ``get(key, None)`` is None for a key never set."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


class _Session:
    """A session whose conf holds what the user set (a submission's ``--conf`` is in the
    session's conf from its start)."""

    def __init__(self, given: dict[str, str] | None = None) -> None:
        self.conf = _Conf(given or {})


def test_a_session_with_nothing_set_gets_rocksdb_with_changelogs() -> None:
    session = _Session()
    use_state_store(session)  # type: ignore[arg-type]
    assert session.conf.values == STATE_STORE


def test_the_users_changelog_choice_is_kept_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    session = _Session({CHANGELOG: "false"})
    with caplog.at_level(logging.INFO, logger="stream.session"):
        use_state_store(session)  # type: ignore[arg-type]
    assert session.conf.values[CHANGELOG] == "false"
    assert session.conf.values[STATE_STORE_PROVIDER] == ROCKSDB_PROVIDER
    assert f"{CHANGELOG}=false as set (the job's default: true)" in caplog.text


def test_another_state_store_provider_is_refused_with_the_fix() -> None:
    hdfs = "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider"
    session = _Session({STATE_STORE_PROVIDER: hdfs})
    with pytest.raises(ConfigError) as raised:
        use_state_store(session)  # type: ignore[arg-type]
    message = str(raised.value)
    assert f"{STATE_STORE_PROVIDER}={hdfs}" in message
    assert "RocksDB" in message and "remove the setting" in message
    assert session.conf.values[STATE_STORE_PROVIDER] == hdfs  # nothing set over it


def test_under_spark_submit_the_submitted_settings_win_and_the_rest_are_set() -> None:
    session = _Session({"spark.sql.shuffle.partitions": "8", CHANGELOG: "false"})
    apply_sql_settings(session, SparkConfig(shuffle_partitions=2))  # type: ignore[arg-type]
    values = session.conf.values
    assert values["spark.sql.shuffle.partitions"] == "8"
    assert values[CHANGELOG] == "false"
    assert values["spark.sql.session.timeZone"] == "UTC"
    assert values[STATE_STORE_PROVIDER] == ROCKSDB_PROVIDER


def test_under_spark_submit_the_jobs_partitions_apply_when_the_submission_set_none() -> None:
    session = _Session()
    apply_sql_settings(session, SparkConfig(shuffle_partitions=3))  # type: ignore[arg-type]
    assert session.conf.values["spark.sql.shuffle.partitions"] == "3"

"""Kafka settings (env, secrets, Spark options) and the producer's non-negotiable guarantees."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.stack import free_port
from ingest.config import KafkaConfig
from ingest.errors import BrokerUnavailableError, ConfigError, IdempotenceDisabledError
from ingest.producer import ProducerSettings, ReadingProducer


def test_defaults() -> None:
    config = KafkaConfig.from_env({})
    assert config.bootstrap_servers == "127.0.0.1:9092"
    assert config.topic == "prognos.readings"
    assert config.dead_letter_topic == "prognos.readings.dlq"
    assert config.kafka_kwargs()["bootstrap_servers"] == ["127.0.0.1:9092"]
    assert config.spark_options() == {
        "kafka.bootstrap.servers": "127.0.0.1:9092",
        "kafka.security.protocol": "PLAINTEXT",
    }


def test_environment_and_overrides() -> None:
    env = {"PROGNOS_KAFKA_BOOTSTRAP": "a:1,b:2", "PROGNOS_TOPIC": "t", "PROGNOS_DLQ_TOPIC": "bad"}
    config = KafkaConfig.from_env(env, topic=None)
    assert config.kafka_kwargs()["bootstrap_servers"] == ["a:1", "b:2"]
    assert (config.topic, config.dead_letter_topic) == ("t", "bad")
    assert KafkaConfig.from_env({}).with_topic("x").dead_letter_topic == "x.dlq"


def test_sasl_password_from_file_is_masked(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t\n")
    env = {
        "PROGNOS_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "PROGNOS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "PROGNOS_KAFKA_SASL_USERNAME": "prognos",
        "PROGNOS_KAFKA_SASL_PASSWORD_FILE": str(secret),
        "PROGNOS_KAFKA_SSL_CAFILE": "/etc/ca.pem",
    }
    config = KafkaConfig.from_env(env)
    assert config.sasl_password == "s3cr3t"
    assert "s3cr3t" not in repr(config) and "s3cr3t" not in str(config)
    kwargs = config.kafka_kwargs()
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512" and kwargs["sasl_plain_password"] == "s3cr3t"
    options = config.spark_options()
    assert options["kafka.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="prognos" password="s3cr3t";'
    )
    assert options["kafka.ssl.truststore.location"] == "/etc/ca.pem"
    security = config.security_kwargs()
    assert "bootstrap_servers" not in security and "client_id" not in security
    assert security["security_protocol"] == "SASL_SSL" and security["ssl_cafile"] == "/etc/ca.pem"
    said = config.describe_security()
    assert "SCRAM-SHA-512" in said and "'prognos'" in said and "/etc/ca.pem" in said
    assert "s3cr3t" not in said
    assert KafkaConfig.from_env({}).describe_security() == "PLAINTEXT"


def test_bad_security_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECURITY_PROTOCOL"):
        KafkaConfig.from_env({"PROGNOS_KAFKA_SECURITY_PROTOCOL": "TLS"})
    with pytest.raises(ConfigError, match="USERNAME"):
        KafkaConfig.from_env(
            {"PROGNOS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PROGNOS_KAFKA_SASL_MECHANISM": "PLAIN"}
        )
    with pytest.raises(ConfigError, match="PASSWORD_FILE"):
        KafkaConfig.from_env({"PROGNOS_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})


def test_topic_shape_from_the_environment() -> None:
    config = KafkaConfig.from_env({})
    assert (config.partitions, config.replication_factor) == (2, 1)
    config = KafkaConfig.from_env(
        {"PROGNOS_TOPIC_PARTITIONS": "6", "PROGNOS_TOPIC_REPLICATION": " 3 "}
    )
    assert (config.partitions, config.replication_factor) == (6, 3)
    assert "partitions=6, replication_factor=3" in repr(config)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PROGNOS_TOPIC_PARTITIONS", "two"),
        ("PROGNOS_TOPIC_PARTITIONS", "0"),
        ("PROGNOS_TOPIC_PARTITIONS", "1.5"),
        ("PROGNOS_TOPIC_REPLICATION", "-1"),
        ("PROGNOS_TOPIC_REPLICATION", "x"),
    ],
)
def test_a_bad_topic_shape_names_the_variable_and_the_fix(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        KafkaConfig.from_env({variable: value})
    message = str(info.value)
    assert message.startswith(f"{variable}=") and value.strip() in message
    assert "whole number of at least 1" in message and "unset it" in message


def test_a_bad_topic_shape_is_refused_when_built_in_code() -> None:
    with pytest.raises(ConfigError, match="PROGNOS_TOPIC_PARTITIONS"):
        KafkaConfig(partitions=0)
    with pytest.raises(ConfigError, match="PROGNOS_TOPIC_REPLICATION"):
        KafkaConfig(replication_factor=True)


@pytest.mark.parametrize(
    "extra",
    [
        {"enable_idempotence": False},
        {"acks": 1},
        {"acks": 0},
        {"retries": 0},
        {"max_in_flight_requests_per_connection": 6},
    ],
)
def test_settings_that_would_disable_idempotence_are_refused(extra: dict[str, object]) -> None:
    with pytest.raises(IdempotenceDisabledError):
        ProducerSettings(extra=extra)


def test_max_in_flight_above_five_is_refused() -> None:
    with pytest.raises(IdempotenceDisabledError):
        ProducerSettings(max_in_flight=6)


def test_idempotence_and_acks_all_are_always_set() -> None:
    kwargs = ProducerSettings(extra={"acks": -1, "linger_ms": 5}).kafka_kwargs()
    assert kwargs["enable_idempotence"] is True and kwargs["acks"] == "all"
    assert kwargs["linger_ms"] == 5
    assert ProducerSettings().kafka_kwargs()["compression_type"] == "gzip"


def test_unreachable_broker_names_the_address_and_the_fix() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailableError) as info:
        ReadingProducer(
            KafkaConfig(bootstrap_servers=address), ProducerSettings(bootstrap_timeout_ms=500)
        )
    message = str(info.value)
    assert (
        address in message
        and "prognos stack up" in message
        and "PROGNOS_KAFKA_BOOTSTRAP" in message
    )
    assert info.value.retriable

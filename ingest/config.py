"""Kafka connection settings for :mod:`ingest`, read from the environment in one place.

==================================  ========================================================
variable                            meaning (default)
==================================  ========================================================
``PROGNOS_KAFKA_BOOTSTRAP``         bootstrap servers, ``host:port[,host:port]``
                                    (``127.0.0.1:9092``)
``PROGNOS_TOPIC``                   readings topic (``prognos.readings``)
``PROGNOS_DLQ_TOPIC``               dead-letter topic (``<topic>.dlq``)
``PROGNOS_TOPIC_PARTITIONS``        partitions of each topic a producer creates (``2``)
``PROGNOS_TOPIC_REPLICATION``       replication factor of each topic a producer creates
                                    (``1``; at most the number of brokers)
``PROGNOS_KAFKA_SECURITY_PROTOCOL`` ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``
``PROGNOS_KAFKA_SASL_MECHANISM``    ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``
``PROGNOS_KAFKA_SASL_USERNAME``     SASL user name
``PROGNOS_KAFKA_SASL_PASSWORD``     SASL password (prefer the ``_FILE`` variant)
``PROGNOS_KAFKA_SASL_PASSWORD_FILE`` a file holding the SASL password
``PROGNOS_KAFKA_SSL_CAFILE``        PEM file of the CA that signed the broker's certificate
==================================  ========================================================

The password never appears in a repr, a log line or an argument list. A producer creates
the readings and dead-letter topics when they are missing
(:func:`ingest.admin.ensure_topics`), with ``PROGNOS_TOPIC_PARTITIONS`` and
``PROGNOS_TOPIC_REPLICATION``; it never changes a topic that exists.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from ingest.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_BOOTSTRAP", "DEFAULT_TOPIC", "KafkaConfig"]

DEFAULT_BOOTSTRAP: Final = "127.0.0.1:9092"
DEFAULT_TOPIC: Final = "prognos.readings"
_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Topic shape: the variable that sets each and its default (the local broker's num.partitions).
_PARTITIONS: Final = ("PROGNOS_TOPIC_PARTITIONS", 2)
_REPLICATION: Final = ("PROGNOS_TOPIC_REPLICATION", 1)


@dataclass(frozen=True)
class KafkaConfig:
    """Where the readings go and how to authenticate. Immutable; build with :meth:`from_env`.

    Attributes:
        bootstrap_servers: ``host:port[,host:port]``.
        topic: the readings topic.
        dlq_topic: the dead-letter topic; ``None`` means ``<topic>.dlq``.
        security_protocol: one of ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``.
        sasl_mechanism: ``PLAIN`` or ``SCRAM-SHA-256/512`` for the SASL protocols.
        sasl_username: SASL user.
        sasl_password: SASL password (masked in the repr).
        ssl_cafile: CA certificate (PEM) for the SSL protocols.
        client_id: the Kafka client id.
        partitions: partitions of a topic :func:`ingest.admin.ensure_topics` creates.
        replication_factor: replicas of each partition of such a topic.
    """

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    topic: str = DEFAULT_TOPIC
    dlq_topic: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    client_id: str = "prognos"
    partitions: int = _PARTITIONS[1]
    replication_factor: int = _REPLICATION[1]

    def __post_init__(self) -> None:
        for (variable, default), value in (
            (_PARTITIONS, self.partitions),
            (_REPLICATION, self.replication_factor),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _count_error(variable, default, value)
        if not self.bootstrap_servers.strip():
            raise ConfigError(
                "PROGNOS_KAFKA_BOOTSTRAP is empty; set it to host:port, e.g. 127.0.0.1:9092"
            )
        if not self.topic.strip():
            raise ConfigError("the topic name is empty; set PROGNOS_TOPIC or --topic")
        if self.security_protocol not in _PROTOCOLS:
            raise ConfigError(
                f"PROGNOS_KAFKA_SECURITY_PROTOCOL={self.security_protocol!r} is not one of {', '.join(_PROTOCOLS)}"
            )
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in _MECHANISMS:
                raise ConfigError(
                    f"PROGNOS_KAFKA_SASL_MECHANISM={self.sasl_mechanism!r} is not one of {', '.join(_MECHANISMS)}"
                )
            if not self.sasl_username or not self.sasl_password:
                raise ConfigError(
                    f"{self.security_protocol} needs PROGNOS_KAFKA_SASL_USERNAME and "
                    "PROGNOS_KAFKA_SASL_PASSWORD_FILE (or PROGNOS_KAFKA_SASL_PASSWORD)"
                )

    def __repr__(self) -> str:
        password = "'***'" if self.sasl_password else "None"
        return (
            f"KafkaConfig(bootstrap_servers={self.bootstrap_servers!r}, topic={self.topic!r}, "
            f"dlq_topic={self.dead_letter_topic!r}, security_protocol={self.security_protocol!r}, "
            f"sasl_mechanism={self.sasl_mechanism!r}, sasl_username={self.sasl_username!r}, "
            f"sasl_password={password}, ssl_cafile={self.ssl_cafile!r}, client_id={self.client_id!r}, "
            f"partitions={self.partitions!r}, replication_factor={self.replication_factor!r})"
        )

    __str__ = __repr__

    @property
    def dead_letter_topic(self) -> str:
        """The dead-letter topic: ``dlq_topic`` or ``<topic>.dlq``."""
        return self.dlq_topic or f"{self.topic}.dlq"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> KafkaConfig:
        """Read the settings from ``env`` (default ``os.environ``); non-None ``overrides`` win.

        Raises:
            ConfigError: a setting is malformed, or the password file cannot be read.
        """
        env = os.environ if env is None else env
        password = env.get("PROGNOS_KAFKA_SASL_PASSWORD") or None
        password_file = env.get("PROGNOS_KAFKA_SASL_PASSWORD_FILE")
        if password_file:
            try:
                password = Path(password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"PROGNOS_KAFKA_SASL_PASSWORD_FILE={password_file}: cannot read it ({exc.strerror})"
                ) from None
        values: dict[str, Any] = {
            # Without an explicit cluster, the local stack's broker (`prognos stack up`),
            # on its configured port.
            "bootstrap_servers": env.get("PROGNOS_KAFKA_BOOTSTRAP")
            or f"127.0.0.1:{env.get('PROGNOS_KAFKA_PORT') or 9092}",
            "topic": env.get("PROGNOS_TOPIC") or DEFAULT_TOPIC,
            "dlq_topic": env.get("PROGNOS_DLQ_TOPIC") or None,
            "security_protocol": (
                env.get("PROGNOS_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT"
            ).upper(),
            "sasl_mechanism": (env.get("PROGNOS_KAFKA_SASL_MECHANISM") or "").upper() or None,
            "sasl_username": env.get("PROGNOS_KAFKA_SASL_USERNAME") or None,
            "sasl_password": password,
            "ssl_cafile": env.get("PROGNOS_KAFKA_SSL_CAFILE") or None,
            "partitions": _count(env, *_PARTITIONS),
            "replication_factor": _count(env, *_REPLICATION),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_topic(self, topic: str | None) -> KafkaConfig:
        """A copy with another readings topic (and its default dead-letter topic), if given."""
        if not topic:
            return self
        return replace(self, topic=topic)

    def kafka_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for kafka-python's producer, consumer and admin."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": [
                s.strip() for s in self.bootstrap_servers.split(",") if s.strip()
            ],
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
        }
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        if self.ssl_cafile and self.security_protocol.endswith("SSL"):
            kwargs["ssl_cafile"] = self.ssl_cafile
        return kwargs

    def security_kwargs(self) -> dict[str, Any]:
        """kafka-python's security settings alone (for a client given its own address)."""
        return {
            k: v
            for k, v in self.kafka_kwargs().items()
            if k not in ("bootstrap_servers", "client_id")
        }

    def describe_security(self) -> str:
        """The security settings in words, for error messages (never the password)."""
        if self.security_protocol == "PLAINTEXT":
            return "PLAINTEXT"
        parts = [self.security_protocol]
        if self.security_protocol.startswith("SASL"):
            parts.append(f"{self.sasl_mechanism} as user {self.sasl_username!r}")
        if self.security_protocol.endswith("SSL"):
            parts.append(f"CA file {self.ssl_cafile or '(system default)'}")
        return ", ".join(parts)

    def spark_options(self) -> dict[str, str]:
        """Options for Spark's Kafka source and sink (``kafka.*``), without the topic.

        The SASL password is inside ``kafka.sasl.jaas.config``: never log the result.
        """
        options = {
            "kafka.bootstrap.servers": self.bootstrap_servers,
            "kafka.security.protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            module = (
                "org.apache.kafka.common.security.plain.PlainLoginModule"
                if self.sasl_mechanism == "PLAIN"
                else "org.apache.kafka.common.security.scram.ScramLoginModule"
            )
            user = (self.sasl_username or "").replace("\\", "\\\\").replace('"', '\\"')
            secret = (self.sasl_password or "").replace("\\", "\\\\").replace('"', '\\"')
            options["kafka.sasl.mechanism"] = self.sasl_mechanism or ""
            options["kafka.sasl.jaas.config"] = (
                f'{module} required username="{user}" password="{secret}";'
            )
        if self.ssl_cafile and self.security_protocol.endswith("SSL"):
            options["kafka.ssl.truststore.type"] = "PEM"
            options["kafka.ssl.truststore.location"] = self.ssl_cafile
        return options


def _count(env: Mapping[str, str], variable: str, default: int) -> int:
    """The whole number in ``env[variable]``, ``default`` when unset or empty."""
    text = (env.get(variable) or "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise _count_error(variable, default, text) from None


def _count_error(variable: str, default: int, value: object) -> ConfigError:
    return ConfigError(
        f"{variable}={value!r}: must be a whole number of at least 1; set it to one "
        f"(e.g. {default}) or unset it for the default ({default})"
    )

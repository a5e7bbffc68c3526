"""Kafka administration for ingest: does a broker answer, and do the topics exist.

This module is the boundary between kafka-python's admin client and Prognos: nothing
outside it catches a ``kafka.errors`` exception from an admin call. Each is turned into
an :mod:`ingest.errors` exception whose message names the broker or topic and the fix:

* no broker, a timeout, a connection or SASL failure:
  :class:`~ingest.errors.BrokerUnavailableError` (retriable);
* ``InvalidReplicationFactorError``, ``InvalidPartitionsError``, ``InvalidTopicError``,
  ``TopicAuthorizationFailedError``, ``ClusterAuthorizationFailedError``,
  ``PolicyViolationError``: :class:`~ingest.errors.TopicError`, naming
  ``PROGNOS_TOPIC_REPLICATION``, ``PROGNOS_TOPIC_PARTITIONS``, the topic name or the
  missing grant;
* ``TopicAlreadyExistsError``: none, another client created the topic first.

Producers call :func:`ensure_topics` before their first send, so a first run creates its
topics with the partition count and replication factor the stream job expects
(``PROGNOS_TOPIC_PARTITIONS``, ``PROGNOS_TOPIC_REPLICATION``) instead of leaving it to the
broker's auto-creation, which kafka-python reports with an ERROR log line.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from typing import Any

from ingest.config import KafkaConfig
from ingest.errors import BrokerUnavailableError, IngestError, TopicError

logger = logging.getLogger(__name__)

__all__ = ["broker_unavailable", "ensure_topics", "kafka_answers", "list_topics"]


def broker_unavailable(bootstrap: str, detail: object = None) -> BrokerUnavailableError:
    """The error for a broker that does not answer at ``bootstrap``, with the fix."""
    extra = f" ({detail})" if detail else ""
    return BrokerUnavailableError(
        f"no Kafka broker answered at {bootstrap}{extra}. Start the local stack with "
        "`prognos stack up`, or point PROGNOS_KAFKA_BOOTSTRAP at a running broker."
    )


def kafka_answers(
    bootstrap: str, timeout_s: float = 5.0, client: Mapping[str, Any] | None = None
) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request.

    ``client``: extra kafka-python settings (security protocol, SASL, CA file).
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    if port.isdigit():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            try:
                if sock.connect_ex((host or "127.0.0.1", int(port))) != 0:
                    return False  # not listening yet: answer now, not after a client timeout
            except OSError:  # unknown host
                return False
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            client_id="prognos-healthcheck",
            **(client or {}),
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def list_topics(config: KafkaConfig, *, timeout_s: float = 10.0) -> set[str]:
    """The names of the topics on the cluster ``config`` points at.

    Raises:
        BrokerUnavailableError: no broker answered, or it failed the request (retriable).
    """
    from kafka.errors import KafkaError

    admin = _admin(config, timeout_s)
    try:
        return set(admin.list_topics())
    except (KafkaError, OSError) as exc:
        raise broker_unavailable(config.bootstrap_servers, f"{type(exc).__name__}: {exc}") from None
    finally:
        admin.close()


def topic_replication(config: KafkaConfig, *, timeout_s: float = 10.0) -> int:
    """The fewest replicas any partition of ``config.topic`` has (0: no such topic).

    Raises:
        BrokerUnavailableError: no broker answered, or it failed the request (retriable).
    """
    from kafka.errors import KafkaError

    admin = _admin(config, timeout_s)
    try:
        described = admin.describe_topics([config.topic])
    except (KafkaError, OSError) as exc:
        raise broker_unavailable(config.bootstrap_servers, f"{type(exc).__name__}: {exc}") from None
    finally:
        admin.close()
    counts = [
        len(p.get("replica_nodes") or p.get("replicas") or [])
        for topic in described
        for p in topic.get("partitions") or []
    ]
    return min(counts, default=0)


def ensure_topics(config: KafkaConfig, *, timeout_s: float = 10.0) -> tuple[str, ...]:
    """Create the readings topic and its dead-letter topic when they are missing.

    Each is created with ``config.partitions`` partitions and
    ``config.replication_factor`` replicas, then awaited until every partition has a
    leader, so the first send finds it in the metadata. A topic that exists is left as
    it is (its partition count is not changed), and one that another client creates
    at the same moment counts as existing.

    Args:
        config: the broker, its security settings and the topics.
        timeout_s: how long to wait for the broker, for each request and for the new
            topics' leaders.

    Returns:
        The names of the topics this call created, in order (empty when both existed).

    Raises:
        BrokerUnavailableError: no broker answered, or it failed a request (retriable).
        TopicError: the cluster refused to create a topic; names the topic, the reason
            and the setting or grant that fixes it.
    """
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

    wanted = list(dict.fromkeys((config.topic, config.dead_letter_topic)))
    timeout_ms = int(timeout_s * 1000)
    admin = _admin(config, timeout_s)
    created: list[str] = []
    current = wanted[0]  # the topic an error is about
    try:
        existing = set(admin.list_topics())
        for name in wanted:
            if name in existing:
                continue
            current = name
            try:
                admin.create_topics(
                    [NewTopic(name, config.partitions, config.replication_factor)],
                    timeout_ms=timeout_ms,
                )
            except TopicAlreadyExistsError:
                logger.debug("topic %s was created by another client meanwhile", name)
            else:
                created.append(name)
                logger.info(
                    "created topic %s: %d partitions, replication factor %d",
                    name,
                    config.partitions,
                    config.replication_factor,
                )
        wait = getattr(admin, "wait_for_topics", None)  # kafka-python 3
        if wait is not None and not existing.issuperset(wanted):
            try:
                wait(wanted, timeout_ms=timeout_ms)
            except KafkaTimeoutError as exc:
                # Not fatal: the producer waits for metadata itself; say why it may log.
                logger.warning("topics %s not ready after %.0fs: %s", wanted, timeout_s, exc)
    except (KafkaError, OSError) as exc:
        raise _mapped(exc, config, current) from None
    finally:
        admin.close()
    return tuple(created)


def _admin(config: KafkaConfig, timeout_s: float) -> Any:
    """A connected kafka-python admin client; the caller closes it."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    settings: dict[str, Any] = {
        **config.kafka_kwargs(),
        "request_timeout_ms": int(timeout_s * 1000),
    }
    if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:  # kafka-python 3
        settings["bootstrap_timeout_ms"] = int(timeout_s * 1000)
    try:
        return KafkaAdminClient(**settings)
    except (KafkaError, OSError) as exc:
        # kafka-python 3 reports an unreachable cluster as KafkaTimeoutError, 2 as
        # NoBrokersAvailable; a SASL failure is a KafkaError too.
        raise broker_unavailable(config.bootstrap_servers, exc) from None


def _mapped(exc: BaseException, config: KafkaConfig, name: str) -> IngestError:
    """An ingest error for a kafka-python exception raised while creating ``name``."""
    from kafka import errors

    where = f"cannot create topic {name!r} on {config.bootstrap_servers}"
    reason = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, errors.InvalidReplicationFactorError):
        return TopicError(
            f"{where}: replication factor {config.replication_factor} refused ({reason}). "
            "Set PROGNOS_TOPIC_REPLICATION to at most the number of brokers."
        )
    if isinstance(exc, errors.InvalidPartitionsError):
        return TopicError(
            f"{where}: {config.partitions} partitions refused ({reason}). "
            "Set PROGNOS_TOPIC_PARTITIONS to a count the cluster allows."
        )
    if isinstance(exc, errors.InvalidTopicError):
        return TopicError(
            f"{where}: not a valid topic name ({reason}). Use letters, digits, '.', '_' "
            "and '-' in --topic / PROGNOS_TOPIC and PROGNOS_DLQ_TOPIC."
        )
    if isinstance(
        exc, (errors.TopicAuthorizationFailedError, errors.ClusterAuthorizationFailedError)
    ):
        return TopicError(
            f"{where}: user {config.sasl_username or '(anonymous)'} may not create topics "
            f"({reason}). Create {config.topic} and {config.dead_letter_topic} beforehand "
            f"({config.partitions} partitions each), or grant CREATE on them."
        )
    if isinstance(exc, errors.PolicyViolationError):
        return TopicError(
            f"{where}: the cluster's topic policy refused it ({reason}). Create "
            f"{config.topic} and {config.dead_letter_topic} beforehand, as the policy allows."
        )
    return broker_unavailable(config.bootstrap_servers, reason)

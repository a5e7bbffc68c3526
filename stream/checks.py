"""Start-up checks of the services the job needs: a clear error now instead of a hang later.

Before the query starts, Kafka must answer with the configured security settings and hold
the readings topic, and Redis must answer PING. Each failure names the address and the
fix. The dead-letter topic is created here when missing, with the readings topic's
partition count and replication (:func:`ingest.admin.ensure_topics`), so the first dead
letter is not what creates it.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from stream.errors import ConfigError, ServiceUnreachableError
from stream.redis_config import redact_url, redis_problem

if TYPE_CHECKING:
    from stream.config import StreamConfig

logger = logging.getLogger(__name__)

__all__ = ["check_executor_python", "check_services"]


def check_services(config: StreamConfig) -> None:
    """Check Kafka, the readings topic and Redis; create the dead-letter topic if missing.

    Raises:
        ServiceUnreachableError: Kafka or Redis does not answer (retriable).
        ConfigError: the readings topic does not exist, or (``PROGNOS_TOPIC_REPLICATION``
            above 1) has fewer replicas than that.
    """
    from ingest.admin import ensure_topics, kafka_answers, list_topics, topic_replication
    from ingest.errors import IngestError

    kafka = config.kafka
    if not kafka_answers(kafka.bootstrap_servers, timeout_s=10, client=kafka.security_kwargs()):
        fix = "run `prognos stack up`, or set PROGNOS_KAFKA_BOOTSTRAP to your cluster"
        if kafka.security_protocol != "PLAINTEXT":
            fix = (
                "check the address (PROGNOS_KAFKA_BOOTSTRAP), the credentials "
                "(PROGNOS_KAFKA_SASL_USERNAME, PROGNOS_KAFKA_SASL_PASSWORD_FILE) and the CA "
                "file (PROGNOS_KAFKA_SSL_CAFILE); for the local stack: "
                'eval "$(prognos stack env --secure)"'
            )
        raise ServiceUnreachableError(
            f"no Kafka broker answers at {kafka.bootstrap_servers} with "
            f"{kafka.describe_security()}: {fix}"
        )
    try:
        topics = list_topics(kafka)
        if kafka.topic not in topics:
            raise ConfigError(
                f"topic {kafka.topic!r} does not exist on {kafka.bootstrap_servers}: create it "
                "(kafka-topics.sh --create, or start a producer such as `prognos simulate` or "
                "`prognos replay` first), or name another with --topic / PROGNOS_TOPIC"
            )
        if kafka.replication_factor > 1:
            replicas = topic_replication(kafka)
            if replicas < kafka.replication_factor:
                raise ConfigError(
                    f"topic {kafka.topic!r} on {kafka.bootstrap_servers} has {replicas} "
                    f"replica(s) per partition, and the job requires "
                    f"{kafka.replication_factor} (PROGNOS_TOPIC_REPLICATION): one broker lost "
                    "could lose readings. Raise its replication (kafka-reassign-partitions.sh), "
                    "or recreate it with that many replicas, or lower PROGNOS_TOPIC_REPLICATION"
                )
        ensure_topics(kafka)
    except IngestError as exc:
        raise ServiceUnreachableError(
            f"cannot read or create topics on {kafka.bootstrap_servers}: {exc}. The job "
            "describes its topics and creates the dead-letter topic "
            f"{kafka.dead_letter_topic} when it is missing: where the broker authorizes, "
            "its principal needs DESCRIBE on both topics and CREATE on that one, or create "
            "it yourself with the readings topic's partitions (docs/security.md)"
        ) from exc
    problem = redis_problem(config.redis_url, timeout_s=5)
    if problem is not None:
        raise ServiceUnreachableError(f"Redis at {redact_url(config.redis_url)}: {problem}")


_LAUNCH_FAILED = re.compile(r'Cannot run program "([^"]+)"')


def _python_version(_: Any) -> str:
    import sys

    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def check_executor_python(spark: Any) -> None:
    """On a cluster, run one small Python task an executor core before the query starts.

    A worker that cannot start the job's Python (``prognos submit`` ships an environment
    whose ``python`` links to an interpreter path the workers may lack) would otherwise
    fail the first batch deep inside the window operator, under a shuffle error that does
    not say why. Local mode is not checked (its Python is this one).

    Raises:
        ConfigError: the executors cannot start their Python, naming the path and the fix.
    """
    context = spark.sparkContext
    if str(context.master or "").startswith("local"):
        return
    tasks = max(1, int(context.defaultParallelism))
    try:
        versions = set(context.parallelize(range(tasks), tasks).map(_python_version).collect())
    except Exception as exc:  # py4j's error carries the tasks' failure text
        found = _LAUNCH_FAILED.search(str(exc))
        if found is None:
            raise
        raise ConfigError(
            f"the executors cannot run the Python environment `prognos submit` shipped "
            f"({found.group(1)}): its python links to an interpreter path the workers lack. "
            "Install that Python (the same version) at the same path on every worker, or set "
            "PROGNOS_EXECUTOR_PYTHON to the workers' python3 and submit again"
        ) from None
    logger.info("the executors run Python %s", ", ".join(sorted(versions)))

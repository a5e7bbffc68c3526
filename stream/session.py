"""The one Spark session factory every Spark entry point uses.

Locally it builds a ``local[2]`` session with few shuffle partitions, Spark's Kafka
connector on the classpath (the jars are an argument: ``prognos`` resolves them with
``deploy.jars`` and checks Java first), the Python workers pinned to the running
interpreter, UTC as the session time zone, and a larger driver thread stack (``-Xss``) so
deep query plans do not end in a ``StackOverflowError`` when a streaming query is stopped.

Under ``spark-submit`` (a cluster, or ``--master local[*]``) the session submit built is
used as is: master, jars and memory come from ``spark-submit``'s own options, and only
the SQL settings the job relies on are applied, each where the submission did not set it.
See docs/design.md, "Running on a Spark cluster".
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from stream.errors import ConfigError, PreflightError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

DRIVER_STACK = "-Xss16m"

#: The HDFS client's settings for a checkpoint on HDFS. Closing a file it wrote, the client
#: asks the NameNode whether the file is complete and, when not yet (the DataNode's report
#: of the block is still on its way, the usual case on a small cluster), asks again after
#: 400 ms (``...initial.delay.ms``, doubling at each retry; HDFS-7835): the query's offset
#: and commit logs and the state store's files pay it. From 20 ms over 10 retries the
#: client waits about 20 s in all before it gives up (the default, 400 ms over 5: 12.4 s),
#: at least as long as before. ``--conf``/``PROGNOS_SPARK_CONF`` override; measured in
#: docs/cluster.md.
HDFS_CLIENT = {
    "spark.hadoop.dfs.client.block.write.locateFollowingBlock.initial.delay.ms": "20",
    "spark.hadoop.dfs.client.block.write.locateFollowingBlock.retries": "10",
}
_SERVLET = "spark.metrics.conf.*.sink.prometheusServlet"


@dataclass(frozen=True)
class SparkConfig:
    """How to build the Spark session. Build with :meth:`from_env`.

    Attributes:
        master: Spark master URL (``PROGNOS_SPARK_MASTER``, ``local[2]``).
        app_name: application name shown in the Spark UI and logs.
        shuffle_partitions: ``spark.sql.shuffle.partitions`` (``PROGNOS_SHUFFLE_PARTITIONS``, 2);
            also the number of state-store partitions, fixed once a checkpoint exists.
        driver_memory: driver JVM heap (``PROGNOS_DRIVER_MEMORY``, ``1g``).
        ui: whether to start the Spark UI on port 4040 (``PROGNOS_SPARK_UI``, on).
        log_level: Spark's log level (``PROGNOS_SPARK_LOG_LEVEL``, ``WARN``).
        extra: further Spark settings, ``key=value`` pairs (``PROGNOS_SPARK_CONF``,
            comma-separated).
        log_config: a log4j2 configuration file for the driver (None: Spark's own).
    """

    master: str = "local[2]"
    app_name: str = "prognos"
    shuffle_partitions: int = 2
    driver_memory: str = "1g"
    ui: bool = True
    log_level: str = "WARN"
    extra: Mapping[str, str] = field(default_factory=dict)
    log_config: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> SparkConfig:
        env = os.environ if env is None else env
        extra: dict[str, str] = {}
        for pair in filter(None, (env.get("PROGNOS_SPARK_CONF") or "").split(",")):
            key, sep, value = pair.partition("=")
            if not sep:
                raise PreflightError(f"PROGNOS_SPARK_CONF entry {pair!r} is not key=value")
            extra[key.strip()] = value.strip()
        values: dict[str, object] = {
            "master": env.get("PROGNOS_SPARK_MASTER") or "local[2]",
            "shuffle_partitions": _positive_int(env, "PROGNOS_SHUFFLE_PARTITIONS", 2),
            "driver_memory": env.get("PROGNOS_DRIVER_MEMORY") or "1g",
            "ui": (env.get("PROGNOS_SPARK_UI") or "1").lower() not in ("0", "false", "no", "off"),
            "log_level": env.get("PROGNOS_SPARK_LOG_LEVEL") or "WARN",
            "extra": extra,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or ""
    if not raw:
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r} is not a whole number >= 1; set it to e.g. {default}")
    return int(raw)


def under_spark_submit() -> bool:
    """True when this Python process was launched by ``spark-submit``."""
    return "PYSPARK_GATEWAY_PORT" in os.environ or "SPARK_ENV_LOADED" in os.environ


STATE_STORE_PROVIDER = "spark.sql.streaming.stateStore.providerClass"
ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"

#: The window operator's state: RocksDB (``transformWithState`` needs it), each commit
#: writing the batch's changed keys to a changelog file instead of flushing, zipping and
#: syncing a snapshot of the whole store (snapshots are made by background maintenance).
#: Spark reads a checkpoint written with or without changelogs either way. Defaults: a
#: setting the user gave (``--conf``, ``PROGNOS_SPARK_CONF``) is kept (:func:`use_state_store`).
STATE_STORE = {
    STATE_STORE_PROVIDER: ROCKSDB_PROVIDER,
    "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
}


def use_state_store(spark: SparkSession) -> None:
    """Put :data:`STATE_STORE` on ``spark``'s session where the user set nothing else.

    Raises:
        ConfigError: the user chose another state store provider, which the window
            operator cannot run on; the message names the setting and the fix.
    """
    provider = spark.conf.get(STATE_STORE_PROVIDER, None)
    if provider not in (None, ROCKSDB_PROVIDER):
        raise ConfigError(
            f"{STATE_STORE_PROVIDER}={provider}: the window operator keeps its state with "
            f"transformWithState, which runs only on RocksDB; remove the setting from --conf or "
            f"PROGNOS_SPARK_CONF (or set it to {ROCKSDB_PROVIDER})"
        )
    for key, given in _set_defaults(spark, STATE_STORE).items():
        logger.info(
            "state store: %s=%s as set (the job's default: %s)", key, given, STATE_STORE[key]
        )


def _set_defaults(spark: SparkSession, defaults: Mapping[str, str]) -> dict[str, str]:
    """Set each of ``defaults`` that ``spark``'s session has no value for (a value the user
    gave, by ``--conf``, spark-defaults.conf or ``PROGNOS_SPARK_CONF``, is kept); returns
    the user's values that differ from the defaults."""
    differing: dict[str, str] = {}
    for key, value in defaults.items():
        given = spark.conf.get(key, None)
        if given is None:
            spark.conf.set(key, value)
        elif given.strip().lower() != value.lower():
            differing[key] = given
    return differing


def _sql_settings(config: SparkConfig) -> dict[str, str]:
    return {
        **STATE_STORE,
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
        # Adaptive execution does not apply to streaming plans; off, Spark stops warning.
        "spark.sql.adaptive.enabled": "false",
        # Streaming queries report to Spark's metrics system (its Prometheus servlet below).
        "spark.sql.streaming.metricsEnabled": "true",
    }


def apply_sql_settings(session: SparkSession, config: SparkConfig) -> None:
    """The SQL settings the job relies on, on the session ``spark-submit`` built: each one
    the submission did not set itself (``--conf``, ``spark-defaults.conf``: the user's
    choice, kept). The stream job checks the state store's at its start
    (:func:`use_state_store`); a batch entry point (features) has none."""
    _set_defaults(session, _sql_settings(config))


def build_session(config: SparkConfig | None = None, jars: Sequence[Path] = ()) -> SparkSession:
    """Build (or join) the Spark session for a Prognos entry point.

    Args:
        config: session settings; defaults to :meth:`SparkConfig.from_env`.
        jars: Spark's Kafka connector and what it needs beside pyspark's own jars; unused
            under ``spark-submit``, whose ``--jars``/``--packages`` provide them.

    Returns:
        A session that can read Kafka with ``format("kafka")``.

    Raises:
        PreflightError: no Kafka connector jar among ``jars`` (local mode); the message
            says how to get one.
    """
    config = config or SparkConfig.from_env()
    from pyspark.sql import SparkSession

    if under_spark_submit():
        session = SparkSession.builder.appName(config.app_name).getOrCreate()
        apply_sql_settings(session, config)
        return session

    if not any(Path(j).name.startswith("spark-sql-kafka-0-10_") for j in jars):
        raise PreflightError(
            "Spark's Kafka connector (spark-sql-kafka-0-10_*.jar) is not among the session's "
            "jars: run `prognos stack setup` to resolve it, and start Spark through "
            "`prognos` (or pass the jars to build_session)"
        )
    if config.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    java_options = DRIVER_STACK
    if config.log_config is not None:
        java_options += f" -Dlog4j2.configurationFile={config.log_config}"
    builder = (
        SparkSession.builder.master(config.master)
        .appName(config.app_name)
        .config("spark.jars", ",".join(str(j) for j in jars))
        .config("spark.driver.memory", config.driver_memory)
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.executor.extraJavaOptions", DRIVER_STACK)
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.ui.enabled", "true" if config.ui else "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        # Spark's own metrics in the Prometheus format on its UI's port:
        # /metrics/prometheus (driver, streaming queries) and /metrics/executors/prometheus.
        .config("spark.ui.prometheus.enabled", "true")
        .config(f"{_SERVLET}.class", "org.apache.spark.metrics.sink.PrometheusServlet")
        .config(f"{_SERVLET}.path", "/metrics/prometheus")
        # Driver metric names carry the app name, not an application id new at each start.
        .config("spark.metrics.namespace", "${spark.app.name}")
    )
    for key, value in {**HDFS_CLIENT, **_sql_settings(config), **config.extra}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(config.log_level)
    logger.info(
        "Spark %s session %s on %s with %d connector jars",
        session.version,
        config.app_name,
        config.master,
        len(jars),
    )
    return session

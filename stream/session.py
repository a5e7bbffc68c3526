"""The one Spark session factory every Spark entry point uses.

Locally it builds a ``local[2]`` session with few shuffle partitions, Spark's Kafka
connector on the classpath (resolved by :mod:`deploy.jars`), the Python workers pinned to
the running interpreter, UTC as the session time zone, and a larger driver thread stack
(``-Xss``) so deep query plans do not end in a ``StackOverflowError`` when a streaming
query is stopped. A preflight check fails fast, with the fix in the message, when Java is
missing or older than 17 or the connector does not match pyspark's Spark/Scala version.

Under ``spark-submit`` (a cluster, or ``--master local[*]``) the session submit built is
used as is: master, jars and memory come from ``spark-submit``'s own options, and only the
SQL settings the job relies on are applied. See README's "Running on a cluster".
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from stream.errors import PreflightError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

DRIVER_STACK = "-Xss16m"


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
    """

    master: str = "local[2]"
    app_name: str = "prognos"
    shuffle_partitions: int = 2
    driver_memory: str = "1g"
    ui: bool = True
    log_level: str = "WARN"
    extra: Mapping[str, str] = field(default_factory=dict)

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
            "shuffle_partitions": int(env.get("PROGNOS_SHUFFLE_PARTITIONS") or 2),
            "driver_memory": env.get("PROGNOS_DRIVER_MEMORY") or "1g",
            "ui": (env.get("PROGNOS_SPARK_UI") or "1").lower() not in ("0", "false", "no", "off"),
            "log_level": env.get("PROGNOS_SPARK_LOG_LEVEL") or "WARN",
            "extra": extra,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def under_spark_submit() -> bool:
    """True when this Python process was launched by ``spark-submit``."""
    return "PYSPARK_GATEWAY_PORT" in os.environ or "SPARK_ENV_LOADED" in os.environ


def preflight() -> list[Path]:
    """Check Java and Spark's Kafka connector; return the connector's jars.

    Raises:
        PreflightError: with the problem and its fix.
    """
    from deploy.errors import DeployError
    from deploy.jars import connector_jars
    from deploy.java import find_java

    try:
        find_java()
        return connector_jars()
    except DeployError as exc:
        raise PreflightError(f"Spark cannot start: {exc}") from exc


def _sql_settings(config: SparkConfig) -> dict[str, str]:
    return {
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
        # Adaptive execution does not apply to streaming plans; off, Spark stops warning.
        "spark.sql.adaptive.enabled": "false",
    }


def build_session(config: SparkConfig | None = None) -> SparkSession:
    """Build (or join) the Spark session for a Prognos entry point.

    Args:
        config: session settings; defaults to :meth:`SparkConfig.from_env`.

    Returns:
        A session that can read Kafka with ``format("kafka")``.

    Raises:
        PreflightError: Java or the Kafka connector is not usable; the message says how
            to fix it.
    """
    config = config or SparkConfig.from_env()
    from pyspark.sql import SparkSession

    if under_spark_submit():
        session = SparkSession.builder.appName(config.app_name).getOrCreate()
        for key, value in _sql_settings(config).items():
            session.conf.set(key, value)
        return session

    jars = preflight()
    if config.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    log_config = resources.files("deploy").joinpath("conf", "spark-log4j2.properties")
    java_options = f"{DRIVER_STACK} -Dlog4j2.configurationFile={log_config}"
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
    )
    for key, value in {**_sql_settings(config), **config.extra}.items():
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

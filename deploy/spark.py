"""A Spark session for a ``prognos`` command: Java checked, the Kafka connector resolved.

:func:`stream.session.build_session` takes the connector jars as an argument; this is where
they come from. A preflight check fails fast, with the fix in the message, when Java is
missing or older than 17 or the connector does not match pyspark's Spark/Scala version.
Under ``spark-submit`` the session ``spark-submit`` built is joined as it is.
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy.errors import DeployError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["spark_log_config", "spark_session"]


def spark_log_config() -> Path:
    """The driver's log4j2 configuration: Spark's WARN lines, without its routine noise."""
    return Path(str(resources.files("deploy").joinpath("conf", "spark-log4j2.properties")))


def spark_session(config: Any = None) -> SparkSession:
    """Build (or join) the Spark session, with Java checked and the connector's jars.

    Args:
        config: a :class:`stream.session.SparkConfig` (default: from the environment).

    Raises:
        stream.errors.PreflightError: Java or the Kafka connector is not usable; the
            message says how to fix it.
    """
    from deploy.jars import connector_jars
    from deploy.java import find_java
    from stream.errors import PreflightError
    from stream.session import SparkConfig, build_session, under_spark_submit

    config = config or SparkConfig.from_env()
    if under_spark_submit():
        return build_session(config)
    try:
        find_java()
        jars = connector_jars()
    except DeployError as exc:
        raise PreflightError(f"Spark cannot start: {exc}") from exc
    if config.log_config is None:
        config = replace(config, log_config=spark_log_config())
    return build_session(config, jars)

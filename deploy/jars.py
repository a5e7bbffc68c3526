"""Resolve the jars the stack needs: the Kafka broker and Spark's Kafka connector.

Both are resolved from Maven Central at pinned versions with Apache Ivy, the same resolver
Spark's ``--packages`` uses. Ivy's jar ships inside pyspark, so no Maven installation is
needed. Jars land in a cache folder (``.prognos/cache``, never committed) and are resolved
once. Offline, point ``PROGNOS_KAFKA_HOME`` at an unpacked Kafka distribution, or
``PROGNOS_JARS_DIR`` at a folder holding the jars (see :func:`offline_help`).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from deploy.config import LOG4J_VERSION, SCALA_BINARY, StackConfig
from deploy.errors import ConnectorMismatchError, JarResolutionError
from deploy.java import find_java

logger = logging.getLogger(__name__)

_MARKER = ".resolved"
_RESOLVE_TIMEOUT_S = 900
_CONNECTOR_JAR = re.compile(r"spark-sql-kafka-0-10_(\d+\.\d+)-(.+)\.jar$")
_VERSIONED_JAR = re.compile(r"^(.+?)-(\d[\w.+-]*)\.jar$")


@dataclass(frozen=True)
class Coordinate:
    """A Maven coordinate ``group:artifact:version``."""

    group: str
    artifact: str
    version: str

    def __str__(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"


@dataclass(frozen=True)
class SparkBuild:
    """The Spark and Scala versions of the installed pyspark."""

    spark_version: str
    scala_binary: str
    jars_dir: Path


def kafka_coordinates(kafka_version: str) -> list[Coordinate]:
    """What the broker needs: Kafka itself plus a log4j2 binding so it writes logs."""
    return [
        Coordinate("org.apache.kafka", f"kafka_{SCALA_BINARY}", kafka_version),
        Coordinate("org.apache.logging.log4j", "log4j-slf4j2-impl", LOG4J_VERSION),
        Coordinate("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    ]


def connector_coordinate(build: SparkBuild) -> Coordinate:
    """Spark's Kafka connector for exactly this Spark and Scala version."""
    return Coordinate(
        "org.apache.spark", f"spark-sql-kafka-0-10_{build.scala_binary}", build.spark_version
    )


def spark_build() -> SparkBuild:
    """Read the Spark and Scala versions from the installed pyspark's own jars."""
    import pyspark

    jars_dir = Path(pyspark.__file__).resolve().parent / "jars"
    cores = sorted(jars_dir.glob("spark-core_*.jar"))
    if not cores:
        raise JarResolutionError(
            f"pyspark at {jars_dir.parent} has no spark-core jar; reinstall it with "
            "`pip install --force-reinstall pyspark`"
        )
    match = re.match(r"spark-core_(\d+\.\d+)-(.+)\.jar$", cores[0].name)
    if not match:
        raise JarResolutionError(f"cannot read Spark's version from {cores[0].name}")
    return SparkBuild(spark_version=match.group(2), scala_binary=match.group(1), jars_dir=jars_dir)


def offline_help(needed: list[Coordinate], what: str) -> str:
    """The message that says which jars are needed and how to supply them offline."""
    lines = "\n".join(f"    {c}" for c in needed)
    return (
        f"{what} needs these Maven artifacts and their runtime dependencies:\n{lines}\n"
        "To work offline, either\n"
        "  - set PROGNOS_KAFKA_HOME to an unpacked Apache Kafka distribution (its libs/ is used), or\n"
        "  - set PROGNOS_JARS_DIR to a folder holding the jars (for example copied from\n"
        "    .prognos/cache on a machine that has resolved them), or\n"
        "  - set PROGNOS_MAVEN_REPO to a reachable Maven mirror."
    )


def _ivy_jar(build: SparkBuild) -> Path:
    found = sorted(build.jars_dir.glob("ivy-*.jar"))
    if not found:
        raise JarResolutionError(f"pyspark at {build.jars_dir} ships no Ivy jar to resolve with")
    return found[-1]


def _ivy_files(config: StackConfig, coords: list[Coordinate], work: Path) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    settings = work / "ivysettings.xml"
    settings.write_text(
        "<ivysettings>\n"
        '  <settings defaultResolver="central"/>\n'
        f"  <caches defaultCacheDir={quoteattr(str(config.cache_dir / 'ivy'))}/>\n"
        "  <resolvers>\n"
        f'    <ibiblio name="central" m2compatible="true" root={quoteattr(config.maven_repo + "/")}/>\n'
        "  </resolvers>\n"
        "</ivysettings>\n"
    )
    deps = "\n".join(
        f"    <dependency org={quoteattr(c.group)} name={quoteattr(c.artifact)} "
        f'rev={quoteattr(c.version)} conf="default->default"/>'
        for c in coords
    )
    module = work / "ivy.xml"
    module.write_text(
        '<ivy-module version="2.0">\n'
        '  <info organisation="prognos" module="stack"/>\n'
        f"  <dependencies>\n{deps}\n  </dependencies>\n"
        "</ivy-module>\n"
    )
    return settings, module


def _resolve(config: StackConfig, coords: list[Coordinate], target: Path, what: str) -> list[Path]:
    """Resolve ``coords`` with their runtime dependencies into ``target`` (once)."""
    marker = target / _MARKER
    if marker.is_file():
        return sorted(target.glob("*.jar"))
    java = find_java()
    build = spark_build()
    staging = target.with_name(target.name + ".partial")
    settings, module = _ivy_files(config, coords, staging / "ivy")
    cmd = [
        str(java.executable),
        "-jar",
        str(_ivy_jar(build)),
        "-settings",
        str(settings),
        "-ivy",
        str(module),
        "-confs",
        "default",
        "-types",
        "jar",
        "bundle",
        "-retrieve",
        str(staging / "[artifact]-[revision](-[classifier]).[ext]"),
    ]
    logger.info("resolving %s from %s", ", ".join(map(str, coords)), config.maven_repo)
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_RESOLVE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise JarResolutionError(
            f"resolving jars from {config.maven_repo} took over {_RESOLVE_TIMEOUT_S}s.\n"
            + offline_help(coords, what)
        ) from None
    if result.returncode != 0 or "UNRESOLVED" in result.stdout:
        problems = [
            line.strip()
            for line in (result.stdout + result.stderr).splitlines()
            if "not found" in line or "UNRESOLVED" in line or "Exception" in line
        ]
        detail = "\n".join(f"  {p}" for p in problems[:10]) or result.stderr[-1000:]
        raise JarResolutionError(
            f"could not resolve jars from {config.maven_repo}:\n{detail}\n"
            + offline_help(coords, what)
        )
    for stale in target.glob("*.jar") if target.exists() else []:
        stale.unlink()
    target.mkdir(parents=True, exist_ok=True)
    for jar in staging.glob("*.jar"):
        jar.replace(target / jar.name)
    shutil.rmtree(staging, ignore_errors=True)
    marker.write_text("\n".join(map(str, coords)) + "\n")
    return sorted(target.glob("*.jar"))


def kafka_jars(config: StackConfig) -> list[Path]:
    """The broker's classpath: from PROGNOS_KAFKA_HOME, PROGNOS_JARS_DIR or Maven Central."""
    coords = kafka_coordinates(config.kafka_version)
    if config.kafka_home is not None:
        libs = config.kafka_home / "libs"
        jars = sorted(libs.glob("*.jar"))
        if not any(j.name.startswith(f"kafka_{SCALA_BINARY}-") for j in jars):
            raise JarResolutionError(
                f"PROGNOS_KAFKA_HOME={config.kafka_home} has no libs/kafka_{SCALA_BINARY}-*.jar; "
                "point it at an unpacked Apache Kafka 4.x distribution"
            )
        return jars
    if config.jars_dir is not None:
        core = config.jars_dir / f"kafka_{SCALA_BINARY}-{config.kafka_version}.jar"
        if core.is_file():
            return sorted(config.jars_dir.glob("*.jar"))
        raise JarResolutionError(
            f"PROGNOS_JARS_DIR={config.jars_dir} has no {core.name}.\n"
            + offline_help(coords, f"the Kafka {config.kafka_version} broker")
        )
    target = config.cache_dir / f"kafka-{config.kafka_version}"
    return _resolve(config, coords, target, f"the Kafka {config.kafka_version} broker")


def _artifact_name(jar: Path) -> str:
    match = _VERSIONED_JAR.match(jar.name)
    return match.group(1) if match else jar.stem


def connector_jars(config: StackConfig | None = None) -> list[Path]:
    """Spark's Kafka connector for the installed pyspark, plus what pyspark lacks.

    Jars pyspark already ships (Scala, Hadoop client, slf4j ...) are left out so the
    classpath holds one version of each.

    Raises:
        JarResolutionError: the connector cannot be resolved; the message lists the
            artifacts and how to supply them offline.
        ConnectorMismatchError: a supplied connector was built for another Spark.
    """
    config = config or StackConfig.from_env()
    build = spark_build()
    coord = connector_coordinate(build)
    if config.jars_dir is not None and any(config.jars_dir.glob("spark-sql-kafka-0-10_*.jar")):
        jars = sorted(config.jars_dir.glob("*.jar"))
    else:
        target = config.cache_dir / f"spark-kafka-{build.spark_version}_{build.scala_binary}"
        jars = _resolve(config, [coord], target, f"Spark {build.spark_version}'s Kafka connector")
    shipped = {_artifact_name(j) for j in build.jars_dir.glob("*.jar")}
    extra = [j for j in jars if _artifact_name(j) not in shipped]
    check_connector(extra, build)
    return extra


def check_connector(jars: list[Path], build: SparkBuild | None = None) -> Path:
    """Check the connector jar matches pyspark's Spark and Scala versions exactly."""
    build = build or spark_build()
    found = [(j, _CONNECTOR_JAR.search(j.name)) for j in jars]
    matches = [(j, m) for j, m in found if m]
    if not matches:
        raise ConnectorMismatchError(
            "no spark-sql-kafka-0-10 jar on the classpath; run `prognos stack setup` to resolve "
            f"spark-sql-kafka-0-10_{build.scala_binary}:{build.spark_version}"
        )
    for jar, match in matches:
        scala, version = match.group(1), match.group(2)
        if scala != build.scala_binary or version != build.spark_version:
            raise ConnectorMismatchError(
                f"{jar.name} is built for Spark {version} / Scala {scala}, but pyspark is Spark "
                f"{build.spark_version} / Scala {build.scala_binary}. Remove it and run "
                "`prognos stack setup`, or supply "
                f"spark-sql-kafka-0-10_{build.scala_binary}-{build.spark_version}.jar"
            )
    return matches[0][0]

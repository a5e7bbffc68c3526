from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from deploy.errors import ConnectorMismatchError, JavaError
from deploy.jars import (
    SparkBuild,
    check_connector,
    connector_coordinate,
    kafka_coordinates,
    offline_help,
)
from deploy.java import find_java, parse_java_version


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.2" 2019-01-15', 11),
    ],
)
def test_parse_java_version(text: str, version: int) -> None:
    assert parse_java_version(text) == version


def test_unreadable_java_version_names_the_fix() -> None:
    with pytest.raises(JavaError, match="Java 17"):
        parse_java_version("something else")


def _fake_java(tmp_path: Path, banner: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return home


def test_old_java_is_refused_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, 'openjdk version "11.0.2"')))
    with pytest.raises(JavaError, match=r"Java 11.*17 or newer.*JAVA_HOME"):
        find_java()


def test_missing_java_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(JavaError, match=r"not found.*openjdk-17"):
        find_java()


def test_java_17_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "JAVA_HOME", str(_fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15'))
    )
    assert find_java().version == 17


BUILD = SparkBuild(spark_version="4.2.0", scala_binary="2.13", jars_dir=Path("/nowhere"))


def test_connector_matching_pyspark_is_accepted() -> None:
    jar = Path("spark-sql-kafka-0-10_2.13-4.2.0.jar")
    assert check_connector([Path("kafka-clients-3.9.2.jar"), jar], BUILD) == jar


@pytest.mark.parametrize(
    "name", ["spark-sql-kafka-0-10_2.13-4.1.1.jar", "spark-sql-kafka-0-10_2.12-4.2.0.jar"]
)
def test_connector_for_another_spark_or_scala_is_refused(name: str) -> None:
    with pytest.raises(
        ConnectorMismatchError, match=r"pyspark is Spark 4.2.0 / Scala 2.13.*prognos stack setup"
    ):
        check_connector([Path(name)], BUILD)


def test_missing_connector_is_refused() -> None:
    with pytest.raises(ConnectorMismatchError, match="no spark-sql-kafka"):
        check_connector([Path("kafka-clients-3.9.2.jar")], BUILD)


def test_coordinates_follow_the_installed_versions() -> None:
    assert str(connector_coordinate(BUILD)) == "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0"
    assert str(kafka_coordinates("4.2.2")[0]) == "org.apache.kafka:kafka_2.13:4.2.2"


def test_offline_help_names_jars_and_variables() -> None:
    text = offline_help(kafka_coordinates("4.2.2"), "the broker")
    assert "org.apache.kafka:kafka_2.13:4.2.2" in text
    for variable in ("PROGNOS_KAFKA_HOME", "PROGNOS_JARS_DIR", "PROGNOS_MAVEN_REPO"):
        assert variable in text


def test_installed_pyspark_matches_the_resolved_connector() -> None:
    """The cached connector (resolved by `make setup`) is for the installed pyspark."""
    from deploy.config import StackConfig
    from deploy.jars import spark_build

    build = spark_build()
    cache = (
        StackConfig.from_env().cache_dir / f"spark-kafka-{build.spark_version}_{build.scala_binary}"
    )
    jars = sorted(cache.glob("*.jar"))
    assert jars, f"no connector resolved in {cache}: run `prognos stack setup`"
    check_connector(jars, build)
    assert os.path.basename(str(jars[0]))

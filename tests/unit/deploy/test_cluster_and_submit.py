"""The local cluster's layout and ``prognos submit``'s artefacts and command, without
starting anything (tests/cluster runs them for real)."""

from __future__ import annotations

import re
import tarfile
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest

from deploy.cluster import Cluster, ClusterConfig, write_hdfs_conf
from deploy.errors import ConfigError
from deploy.submit import (
    ENV_ALIAS,
    MODEL_ALIAS,
    Submission,
    SubmitError,
    _parse_conf,
    build_command,
    check_master,
    environment_archive,
    model_archive,
    runtime_distributions,
)
from stream.config import DEFAULT_MODEL
from stream.scoring import SHIPPED_MODEL_CONF


def _config(tmp_path: Path, base: str = "19000") -> ClusterConfig:
    return ClusterConfig.from_env(
        {"PROGNOS_CLUSTER_DIR": str(tmp_path), "PROGNOS_CLUSTER_PORT_BASE": base}
    )


def test_every_service_of_the_cluster_has_ports_of_its_own(tmp_path: Path) -> None:
    cluster = Cluster(_config(tmp_path))
    ports = [p for s in cluster.services for p in s.ports]
    assert len(ports) == len(set(ports)), sorted(ports)
    assert all(19000 < p < 19900 for p in ports)
    names = [s.name for s in cluster.services]
    assert names.count("spark-master") == 1 and sum(n.startswith("kafka-") for n in names) == 3
    assert sum(n.startswith("spark-worker-") for n in names) == 2
    # A second base moves every port: a test cluster and a user's run side by side.
    other = Cluster(_config(tmp_path, "29000"))
    assert not set(ports) & {p for s in other.services for p in s.ports}


def test_the_client_settings_point_at_the_cluster(tmp_path: Path) -> None:
    env = _config(tmp_path).client_env()
    assert env["PROGNOS_KAFKA_BOOTSTRAP"] == "127.0.0.1:19091,127.0.0.1:19092,127.0.0.1:19093"
    assert env["PROGNOS_SPARK_MASTER"] == "spark://127.0.0.1:19077"
    assert env["PROGNOS_CHECKPOINT"].startswith("hdfs://127.0.0.1:19820/")
    assert env["PROGNOS_TOPIC_REPLICATION"] == "3"


def test_a_port_base_out_of_range_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PROGNOS_CLUSTER_PORT_BASE=64900"):
        _config(tmp_path, "64900")


def test_hdfs_configuration_pins_every_port_to_the_loopback(tmp_path: Path) -> None:
    config = _config(tmp_path)
    write_hdfs_conf(config, tmp_path / "conf")
    site = (tmp_path / "conf" / "hdfs-site.xml").read_text()
    core = (tmp_path / "conf" / "core-site.xml").read_text()
    assert "<value>hdfs://127.0.0.1:19820</value>" in core
    for what in ("namenode_http", "datanode", "datanode_http", "datanode_ipc"):
        assert f"127.0.0.1:{config.port(what)}" in site
    assert f"<value>{config.port('datanode_proxy')}</value>" in site
    assert not re.search(r"0\.0\.0\.0", site + core)


def test_the_executors_environment_has_the_runtime_packages_and_not_spark() -> None:
    names = {d.metadata["Name"].lower() for d in runtime_distributions()}
    assert {"numpy", "onnxruntime", "redis", "pandas", "pyarrow", "kafka-python"} <= names
    assert not names & {"pyspark", "py4j", "prognos", "torch", "pytest"}


def test_the_environment_archive_is_a_relocatable_virtual_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deploy.submit as submit

    monkeypatch.setattr(submit, "runtime_distributions", lambda: [metadata.distribution("redis")])
    archive = environment_archive(tmp_path, "/opt/python/bin/python3.11")
    assert environment_archive(tmp_path, "/opt/python/bin/python3.11") == archive  # reused
    with tarfile.open(archive) as tar:
        python = tar.getmember("bin/python")
        cfg = tar.extractfile("pyvenv.cfg").read().decode()  # type: ignore[union-attr]
        names = tar.getnames()
    assert python.issym() and python.linkname == "/opt/python/bin/python3.11"
    assert "home = /opt/python/bin" in cfg
    assert any(re.fullmatch(r"lib/python3\.\d+/site-packages/redis/__init__\.py", n) for n in names)
    # Another interpreter path is another archive; the old one is kept (a running job
    # submitted with it still serves it to executors that start later).
    other = environment_archive(tmp_path, "/usr/bin/python3.11")
    assert other != archive and archive.exists()


def test_the_model_archive_is_named_by_its_content(tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    first = model_archive(model, tmp_path / "out")
    with tarfile.open(first) as tar:
        assert "model.onnx" in tar.getnames()
    (model / "report.md").write_text((model / "report.md").read_text() + " ")
    assert model_archive(model, tmp_path / "out") != first
    with pytest.raises(SubmitError, match="not a model folder"):
        model_archive(tmp_path, tmp_path / "out")


def test_the_command_ships_everything_an_executor_needs(tmp_path: Path) -> None:
    wheel = tmp_path / "prognos-0.1.0-py3-none-any.whl"
    submission = Submission(
        master="spark://m:7077",
        wheel=wheel,
        environment=tmp_path / "pyenv-1.tar.gz",
        model_archive=tmp_path / "model-2.tar.gz",
        model_dir=tmp_path / "model",
        jars=(tmp_path / "a.jar", tmp_path / "b.jar"),
        job_args=("--checkpoint", "hdfs://nn:8020/cp"),
        conf={"spark.cores.max": "2"},
        executor_python="/usr/bin/python3",
    )
    cmd = build_command(submission)
    text = " ".join(cmd)
    assert cmd[cmd.index("--master") + 1] == "spark://m:7077"
    assert f"--py-files {wheel}" in text
    archives = cmd[cmd.index("--archives") + 1]
    assert (
        archives == f"{tmp_path}/pyenv-1.tar.gz#{ENV_ALIAS},{tmp_path}/model-2.tar.gz#{MODEL_ALIAS}"
    )
    assert f"spark.pyspark.python=./{ENV_ALIAS}/bin/python" in cmd
    assert f"spark.executorEnv.PYTHONPATH={wheel.name}" in cmd
    assert f"{SHIPPED_MODEL_CONF}={MODEL_ALIAS}" in cmd
    assert "spark.cores.max=2" in cmd
    features = build_command(replace(submission, command="features", job_args=("x", "--out", "y")))
    assert features[-6:] == ["features", "--model", str(tmp_path / "model"), "x", "--out", "y"]
    tail = cmd[cmd.index("stream") :]
    assert tail == [
        "stream",
        "--model",
        str(tmp_path / "model"),
        "--checkpoint",
        "hdfs://nn:8020/cp",
    ]


def test_a_master_that_does_not_answer_is_named_with_the_fix() -> None:
    from deploy.stack import free_port

    with pytest.raises(SubmitError, match=r"spark://127\.0\.0\.1:\d+ does not answer.*cluster up"):
        check_master(f"spark://127.0.0.1:{free_port()}", timeout_s=1)


def test_a_malformed_conf_is_refused() -> None:
    assert _parse_conf(["a.b=1", "c=x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(SubmitError, match="KEY=VALUE"):
        _parse_conf(["spark.cores.max"])


def test_submit_refuses_spark_local_mode_naming_the_command_for_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from deploy.cli import main

    assert main(["submit", "--master", "local[2]", "--", "--available-now"]) == 1
    err = capsys.readouterr().err
    assert "--master local[2]" in err and "prognos stream" in err


def test_a_master_url_without_a_valid_port_is_named() -> None:
    with pytest.raises(SubmitError, match="no valid port"):
        check_master("spark://host:abc")


def test_the_drivers_folder_gets_a_link_that_runs_this_python(tmp_path: Path) -> None:
    import subprocess
    import sys

    from deploy.submit import ENV_ALIAS, SubmitError, driver_environment_link

    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    link = driver_environment_link(cwd, out)
    assert link == cwd / ENV_ALIAS and link.is_symlink()
    printed = subprocess.run(
        [
            str(cwd / ENV_ALIAS / "bin" / "python"),
            "-c",
            "import sys, stream.sequence; print(sys.version)",  # the job's modules import
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert printed == sys.version
    assert driver_environment_link(cwd, out) == link  # reused
    link.unlink()
    (cwd / ENV_ALIAS).mkdir()  # someone else's folder: not replaced
    with pytest.raises(SubmitError, match="is not Prognos's link"):
        driver_environment_link(cwd, out)


def test_a_submitted_job_gets_the_hdfs_client_settings() -> None:
    from deploy.submit import DEFAULT_CONF
    from stream.session import HDFS_CLIENT

    assert HDFS_CLIENT and HDFS_CLIENT.items() <= DEFAULT_CONF.items()

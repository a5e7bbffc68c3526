"""Recorded data on HDFS (replay, features on the cluster, training from the table), and the
cluster's bad inputs: each a clear message naming the thing and the fix, never a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.remote import fs_shell
from tests.cluster.harness import create_replicated_topic
from tests.reliability.harness import job_env, make_recording, topic_readings


def _prognos(
    *args: str, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _hdfs(*args: str) -> None:
    """Hadoop's own file-system shell (what `hdfs dfs ARGS` runs)."""
    result = fs_shell(*args, timeout_s=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def on_hdfs(
    cluster: Any, cmapss_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, str]:
    recording = make_recording(cmapss_dir, 12, tmp_path_factory.mktemp("hdfs-rec"))
    folder = f"{cluster.config.hdfs}/recordings/{uuid.uuid4().hex[:6]}"
    uri = f"{folder}/train_FD001.txt"
    _hdfs("-mkdir", "-p", folder)
    _hdfs("-put", "-f", str(recording.path), uri)
    return recording, uri


def _env(cluster: Any) -> dict[str, str]:
    env = job_env(cluster.config.kafka_bootstrap, cluster.config.redis_url)
    env["PROGNOS_SPARK_MASTER"] = cluster.config.spark_master
    return env


def test_a_recording_on_hdfs_is_replayed(cluster: Any, on_hdfs: tuple[Any, str]) -> None:
    recording, uri = on_hdfs
    topic = create_replicated_topic(
        cluster.config.kafka_bootstrap, f"hdfs-replay-{uuid.uuid4().hex[:6]}"
    )
    result = _prognos(
        "replay", uri, "--topic", topic, "--as-fast-as-possible", "--no-progress", env=_env(cluster)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"from {uri}" in result.stdout
    counts = topic_readings(cluster.config.kafka_bootstrap, topic, expected=recording.readings)
    assert sum(counts.values()) == recording.readings and set(counts.values()) == {1}
    devices = Counter(device for device, _ in counts)
    assert len(devices) == recording.engines


def test_features_of_a_recording_on_hdfs_are_computed_on_the_cluster_and_trained_from(
    cluster: Any, on_hdfs: tuple[Any, str], spark: Any, tmp_path: Path
) -> None:
    """`prognos submit features` on the cluster writes the same windows as the training
    code computes locally, and `prognos train --features` trains a model from them."""
    from deploy.features import read_table
    from models.data import load_cmapss, window_features
    from models.scorer import Scorer
    from stream.config import DEFAULT_MODEL

    recording, uri = on_hdfs
    table = uri.rsplit("/", 1)[0] + "/features.parquet"
    result = _prognos("submit", "features", uri, "--out", table, env=_env(cluster))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "running: " in result.stdout and "spark-submit" in result.stdout
    windows, metadata = read_table(table)
    spec = Scorer.load(DEFAULT_MODEL).metadata.spec
    expected = window_features(load_cmapss(recording.path.parent, "FD001", "train"), spec)
    assert metadata["devices"] == recording.engines and len(metadata["failure_times"]) == 12
    assert windows.device.tolist() == expected.device.tolist()
    assert windows.index.tolist() == expected.index.tolist()
    np.testing.assert_allclose(windows.features, expected.features, rtol=1e-12, equal_nan=True)

    out = tmp_path / "model"
    trained = _prognos(
        "train",
        "--features",
        table,
        "--out",
        str(out),
        "--folds",
        "1",
        "--ensemble",
        "none",
        "--epochs",
        "2",
        "--arch",
        "gru",
        env={**_env(cluster), "PROGNOS_SPARK_MASTER": "local[2]"},
    )
    assert trained.returncode == 0, (trained.stdout + trained.stderr)[-3000:]
    assert (out / "model.onnx").is_file()
    assert Scorer.load(out).metadata.spec.feature_names == spec.feature_names


def test_a_worker_without_the_python_environment_is_named_with_the_fix(
    cluster: Any, cmapss_dir: Path, tmp_path: Path
) -> None:
    from tests.reliability.harness import produce

    topic = create_replicated_topic(
        cluster.config.kafka_bootstrap, f"nopython-{uuid.uuid4().hex[:6]}"
    )
    recording = make_recording(cmapss_dir, 1, tmp_path)
    produce(recording, cluster.config.kafka_bootstrap, topic, bad_every=None)
    env = {**_env(cluster), "PROGNOS_EXECUTOR_PYTHON": "/opt/nowhere/bin/python3"}
    result = _prognos(
        "submit",
        "--",
        "--topic",
        topic,
        "--available-now",
        "--checkpoint",
        f"{cluster.config.hdfs}/prognos/nopython-{uuid.uuid4().hex[:6]}",
        env=env,
        timeout=300,
    )
    # spark-submit passes the driver's stderr on its stdout.
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # Named before the query starts (one small Python task an executor core), not as the
    # window operator's shuffle error in the first batch.
    assert (
        "prognos stream: error: the executors cannot run the Python environment `prognos "
        "submit` shipped (./prognos-env/bin/python)" in output
    ), output[-3000:]
    assert "PROGNOS_EXECUTOR_PYTHON" in output
    assert "query prognos-main failed" not in output


def test_an_unreachable_hdfs_checkpoint_is_named_with_the_fix(cluster: Any) -> None:
    from deploy.stack import free_port

    wrong = f"hdfs://127.0.0.1:{free_port()}/prognos/cp"
    result = _prognos(
        "submit", "--", "--available-now", "--checkpoint", wrong, env=_env(cluster), timeout=240
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"error: cannot read {wrong}/job.json" in output
    assert "Connection refused" in output and "prognos cluster status" in output


def test_a_submitted_state_store_the_job_cannot_run_on_is_named_with_the_fix(
    cluster: Any,
) -> None:
    # A setting the submission gives is the user's and is kept (the job no longer sets its
    # defaults over it): one the window operator cannot run on is refused by name at start.
    provider = "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider"
    result = _prognos(
        "submit",
        "--conf",
        f"spark.sql.streaming.stateStore.providerClass={provider}",
        "--",
        "--available-now",
        "--checkpoint",
        f"{cluster.config.hdfs}/prognos/provider-{uuid.uuid4().hex[:6]}",
        env=_env(cluster),
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        f"prognos stream: error: spark.sql.streaming.stateStore.providerClass={provider}: "
        "the window operator keeps its state with transformWithState, which runs only on RocksDB"
        in output
    ), output[-3000:]
    assert "remove the setting from --conf" in output


def test_a_submitted_sql_setting_reaches_the_job(
    cluster: Any, cmapss_dir: Path, tmp_path: Path
) -> None:
    # The job's SQL defaults apply only where the submission set nothing: its --conf
    # shuffle partitions are what the query runs with (recorded in the checkpoint's
    # fingerprint), not PROGNOS_SHUFFLE_PARTITIONS' default of 2.
    from tests.reliability.harness import produce

    tag = uuid.uuid4().hex[:6]
    topic = create_replicated_topic(cluster.config.kafka_bootstrap, f"conf-{tag}")
    recording = make_recording(cmapss_dir, 1, tmp_path, cycles=(1, 5))
    produce(recording, cluster.config.kafka_bootstrap, topic, bad_every=None)
    checkpoint = f"{cluster.config.hdfs}/prognos/conf-{tag}"
    env = {**_env(cluster), "PROGNOS_KEY_PREFIX": f"conf-{tag}"}
    env.pop("PROGNOS_SHUFFLE_PARTITIONS", None)
    result = _prognos(
        "submit",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        "--",
        "--topic",
        topic,
        "--available-now",
        "--checkpoint",
        checkpoint,
        env=env,
        timeout=420,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    shown = fs_shell("-cat", f"{checkpoint}/job.json", timeout_s=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert json.loads(shown.stdout)["shuffle_partitions"] == 4


def test_a_master_that_does_not_answer_is_named_before_anything_is_built(cluster: Any) -> None:
    from deploy.stack import free_port

    env = {**_env(cluster), "PROGNOS_SPARK_MASTER": f"spark://127.0.0.1:{free_port()}"}
    result = _prognos("submit", "--", "--available-now", env=env, timeout=60)
    assert result.returncode == 1
    assert "does not answer" in result.stderr and "prognos cluster up" in result.stderr


def test_a_topic_with_fewer_replicas_than_required_is_refused(
    cluster: Any, spark: Any, tmp_path: Path
) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from ingest.config import KafkaConfig
    from stream.config import StreamConfig
    from stream.errors import ConfigError
    from stream.job import StreamJob

    bootstrap = cluster.config.kafka_bootstrap
    name = f"one-replica-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, 2, 1)])
    finally:
        admin.close()
    kafka = KafkaConfig.from_env(
        {
            "PROGNOS_KAFKA_BOOTSTRAP": bootstrap,
            "PROGNOS_TOPIC": name,
            "PROGNOS_TOPIC_REPLICATION": "3",
        }
    )
    config = StreamConfig.from_env(
        {}, redis_url=cluster.config.redis_url, checkpoint=tmp_path / "cp", available_now=True
    )
    job = StreamJob(spark, replace(config, kafka=kafka))
    with pytest.raises(
        ConfigError, match=rf"{name}.*1 replica\(s\).*requires 3.*PROGNOS_TOPIC_REPLICATION"
    ):
        job.start()
    assert os.path.exists(tmp_path) and not (tmp_path / "cp" / "main").exists()


def test_a_recording_missing_from_hdfs_is_named_with_the_fix(cluster: Any) -> None:
    missing = f"{cluster.config.hdfs}/recordings/nowhere/fleet.csv"
    result = _prognos("replay", missing, "--no-progress", env=_env(cluster), timeout=120)
    assert result.returncode == 1
    assert f"cannot read {missing}" in result.stderr
    assert "No such file" in result.stderr and "hdfs dfs -ls" in result.stderr

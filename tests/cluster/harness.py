"""The golden-run harness (``tests/reliability/harness.py``) on the local cluster.

A cluster run submits the stream job with ``prognos submit`` (the driver here, executors on
the two Spark workers), its checkpoint on the cluster's HDFS; the topics have three replicas
with two in sync required. What the harness reads from a local checkpoint (commits, offsets)
is read here from HDFS over WebHDFS, the NameNode's REST interface.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tests.reliability.harness import (
    RESULTS,
    ChaosSettings,
    JobProcess,
    Report,
    end_offsets,
    job_env,
    process_tree,
)

SUBMIT = ("submit", "--")
#: The cluster faults' rows, printed and saved (bench-results/cluster-faults.json) at the end.
REPORT = Report(ChaosSettings.from_env())
REPORT_PATH = RESULTS / "cluster-faults.json"


def create_replicated_topic(bootstrap: str, name: str, partitions: int = 2) -> str:
    """``name`` and its dead-letter topic, three replicas each, two in sync for a write."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    configs = {"min.insync.replicas": "2"}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="prognos-cluster-test")
    try:
        admin.create_topics(
            [
                NewTopic(name, partitions, 3, topic_configs=configs),
                NewTopic(f"{name}.dlq", 1, 3, topic_configs=configs),
            ]
        )
    finally:
        admin.close()
    return name


def partition_leader(bootstrap: str, topic: str, partition: int = 0) -> int:
    """The broker id leading ``topic``'s ``partition``."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="prognos-cluster-test")
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    for p in described["partitions"]:
        if p["partition_index"] == partition:
            return int(p["leader_id"])
    raise AssertionError(f"{topic} has no partition {partition}")


class WebHdfs:
    """Listing and reading files on the cluster's HDFS through the NameNode's WebHDFS."""

    def __init__(self, config: Any) -> None:
        self.base = f"http://127.0.0.1:{config.port('namenode_http')}/webhdfs/v1"

    def _call(self, path: str, op: str) -> Any:
        with urllib.request.urlopen(f"{self.base}{path}?op={op}", timeout=10) as response:
            return response.read()

    def listing(self, path: str) -> dict[str, float]:
        """Name -> modification time (s) of the entries of folder ``path``; {} if missing."""
        try:
            data = json.loads(self._call(path, "LISTSTATUS"))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return {}
            raise
        return {
            s["pathSuffix"]: s["modificationTime"] / 1000.0
            for s in data["FileStatuses"]["FileStatus"]
        }

    def read(self, path: str) -> str:
        return self._call(path, "OPEN").decode()


@dataclass
class ClusterRun:
    """One fault run on the cluster: its topic, HDFS checkpoint, key prefix and segments."""

    name: str
    topic: str
    cluster: Any
    prefix: str
    workdir: Path
    settings: ChaosSettings
    segments: list[JobProcess] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return str(self.cluster.config.kafka_bootstrap)

    @property
    def redis_url(self) -> str:
        return str(self.cluster.config.redis_url)

    @property
    def checkpoint(self) -> str:
        return f"{self.cluster.config.hdfs}/prognos/cluster-test/{self.name}"

    @property
    def _hdfs_path(self) -> str:
        return urlparse(self.checkpoint).path

    def args(self) -> list[str]:
        args = [
            "--topic",
            self.topic,
            "--checkpoint",
            self.checkpoint,
            "--key-prefix",
            self.prefix,
            "--available-now",
            "--max-offsets-per-trigger",
            str(self.settings.max_offsets),
        ]
        if self.settings.watermark_s is not None:
            args += ["--watermark", str(self.settings.watermark_s)]
        return args

    def start(self) -> JobProcess:
        env = job_env(self.bootstrap, self.redis_url)
        env.update(PROGNOS_SPARK_MASTER=self.cluster.config.spark_master)
        job = JobProcess(
            self.args(),
            env,
            self.workdir / f"job-{len(self.segments)}.log",
            self.workdir / "cwd",
            command=SUBMIT,
        )
        self.segments.append(job)
        return job

    def finish(self, job: JobProcess, restarts_allowed: int = 0) -> None:
        """Wait for ``job`` to exit 0; a failed segment is resubmitted (at most
        ``restarts_allowed`` times) on the same checkpoint, and noted."""
        while True:
            code = job.wait(self.settings.job_timeout_s)
            if code == 0:
                return
            if restarts_allowed <= 0:
                raise AssertionError(
                    f"the submitted job exited with {code}; last lines of {job.log_path}:\n"
                    f"{job.log_tail(60)}"
                )
            restarts_allowed -= 1
            self.notes.append(f"segment {len(self.segments) - 1} exited {code}; resubmitted")
            job = self.start()

    # -- the checkpoint on HDFS ----------------------------------------------------------
    def commit_times(self) -> dict[int, float]:
        entries = WebHdfs(self.cluster.config).listing(f"{self._hdfs_path}/main/commits")
        return {int(name): t for name, t in entries.items() if name.isdigit()}

    def last_commit(self) -> int:
        return max(self.commit_times(), default=-1)

    def committed_offsets(self) -> dict[int, int]:
        batch = self.last_commit()
        text = WebHdfs(self.cluster.config).read(f"{self._hdfs_path}/main/offsets/{batch}")
        (offsets,) = json.loads(text.splitlines()[2]).values()
        return {int(p): int(o) for p, o in offsets.items()}

    def check_consumed(self) -> None:
        ends = end_offsets(self.bootstrap, self.topic)
        got = self.committed_offsets()
        assert got == ends, f"the job stopped at offsets {got}, the topic ends at {ends}"

    def wait_for_commit(self, job: JobProcess, after: int, timeout_s: float) -> int | None:
        """Wait until a batch with id > ``after`` is committed; None if the job exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = self.last_commit()
            if batch > after:
                return batch
            if job.poll() is not None:
                return None
            time.sleep(0.5)
        raise TimeoutError(
            f"no batch after {after} committed within {timeout_s:.0f}s:\n{job.log_tail()}"
        )

    def recovery_s(self, injected_at: float, back_at: float | None = None) -> float | None:
        after = injected_at if back_at is None else back_at
        later = [t for t in self.commit_times().values() if t > after]
        return round(min(later) - injected_at, 1) if later else None


def kill_tree(pid: int) -> float:
    """SIGKILL ``pid`` and every process under it at once (a machine lost); returns the time."""
    tree = process_tree(pid)
    at = time.time()
    for each in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)
    for each in tree:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(each, 0)
    return at

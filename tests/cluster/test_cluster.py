"""The stream job on the local cluster, and faults of the cluster, judged by the golden run.

The golden run processes the reliability suite's recording (C-MAPSS FD001 engines, an
invalid record after about one reading in 97) once in local mode, in this process. Each
fault run replays it into a fresh topic of three replicas (two in sync), submits the job
with ``prognos submit`` to the Spark master (executors on the two workers, checkpoint on
HDFS), injects its fault, and compares what reached Redis and the dead-letter topic with
the golden run: 0 lost, 0 duplicated, 0 differing is required of every row.

``make cluster-test`` runs every fault, ``make test`` the worker's and the driver's
(``TEST_CLUSTER_FAULTS``); ``PROGNOS_CLUSTER_FAULTS``
(``worker,leader,driver,namenode,broker``; default ``all``) chooses. The table is printed at the end of the session
and saved in ``bench-results/cluster-faults.json``.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import (
    REPORT,
    ClusterRun,
    WebHdfs,
    create_replicated_topic,
    kill_tree,
    partition_leader,
)
from tests.reliability.harness import (
    BAD_EVERY,
    Comparison,
    FaultRow,
    Recording,
    Snapshot,
    compare,
    kill_service,
    make_recording,
    produce,
    run_in_process,
    snapshot,
    topic_readings,
)

pytestmark = pytest.mark.timeout(REPORT.settings.test_timeout_s)


LEFT_OUT = "PROGNOS_CLUSTER_FAULTS leaves it out (make test runs two faults; make cluster-test all)"


def _selected(fault: str) -> bool:
    chosen = os.environ.get("PROGNOS_CLUSTER_FAULTS") or "all"
    return chosen == "all" or fault in chosen.split(",")


@pytest.fixture(scope="module")
def recording(cmapss_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return make_recording(cmapss_dir, REPORT.settings.engines, tmp_path_factory.mktemp("rec"))


@pytest.fixture(scope="module")
def golden(
    cluster: Any, recording: Recording, spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Snapshot]:
    """The recording processed once, in local mode, with no fault."""
    bootstrap, redis_url = cluster.config.kafka_bootstrap, cluster.config.redis_url
    run_id = uuid.uuid4().hex[:8]
    topic = create_replicated_topic(bootstrap, f"cluster-golden-{run_id}")
    prefix = f"cluster:golden:{run_id}"
    started = time.monotonic()
    produced = produce(recording, bootstrap, topic)
    job = run_in_process(
        spark,
        topic,
        bootstrap,
        redis_url,
        prefix,
        tmp_path_factory.mktemp("golden") / "checkpoint",
        REPORT.settings,
    )
    snap = snapshot(redis_url, prefix, bootstrap, topic)
    ids = [event_id for event_id, _ in snap.events]
    REPORT.add(
        FaultRow(
            fault="none (golden run, local mode)",
            readings_sent=produced.sent,
            alerts_expected=len(ids),
            lost=0,
            duplicated=len(ids) - len(set(ids)),
            differing=0,
            state_differs=0,
            dead_letters_expected=len(snap.dead_letters),
            job_starts=1,
            seconds=round(time.monotonic() - started, 1),
            passed=True,
            notes=f"{len(snap.devices)} devices; {job.metrics.dropped_by_watermark_total} late",
        )
    )
    assert produced.failed == 0 and len(ids) >= 3 and len(ids) == len(set(ids))
    assert produced.bad_acked and set(snap.dead_letters) == produced.bad_acked
    yield snap


def _run(cluster: Any, name: str, tmp_path: Path) -> ClusterRun:
    topic = create_replicated_topic(
        cluster.config.kafka_bootstrap, f"cluster-{name}-{uuid.uuid4().hex[:6]}"
    )
    prefix = f"cluster:{name}:{uuid.uuid4().hex[:6]}"
    return ClusterRun(name, topic, cluster, prefix, tmp_path, REPORT.settings)


def _judge(golden: Snapshot, run: ClusterRun, fault: str, sent: int, **details: Any) -> Comparison:
    comparison = compare(golden, snapshot(run.redis_url, run.prefix, run.bootstrap, run.topic))
    notes = details.pop("notes", "")
    row = FaultRow.from_comparison(
        fault,
        sent,
        comparison,
        job_starts=len(run.segments),
        notes="; ".join([notes, *run.notes]).strip("; "),
        **details,
    )
    row.passed = comparison.ok
    REPORT.add(row)
    return comparison


def _inject_mid_run(run: ClusterRun, inject: Any, after_batch: int = 1) -> tuple[float, float]:
    """Submit, wait for batch ``after_batch`` to commit, inject; returns (injected, back)."""
    job = run.start()
    reached = run.wait_for_commit(job, after_batch - 1, REPORT.settings.job_timeout_s)
    assert reached is not None, f"the job ended before the fault:\n{job.log_tail()}"
    assert job.poll() is None, "the job had finished before the fault: it tested nothing"
    injected, back = inject()
    run.finish(job, restarts_allowed=2)
    run.check_consumed()
    later = [t for t in run.commit_times().values() if t > injected]
    assert later, "no batch was committed after the fault: it tested nothing"
    return injected, back


def test_the_topics_are_replicated_and_hdfs_answers(cluster: Any) -> None:
    """What `cluster up` promises: RF 3 with min ISR 2 on the readings topic, HDFS writable."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    bootstrap = cluster.config.kafka_bootstrap
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (described,) = admin.describe_topics(["prognos.readings"])
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "prognos.readings")], config_filter="all"
        )
    finally:
        admin.close()
    assert {len(p["replica_nodes"]) for p in described["partitions"]} == {3}
    assert configs["topic"]["prognos.readings"]["min.insync.replicas"]["value"] == "2"
    # HDFS takes a file and gives it back (what the checkpoints rely on).
    from ingest.remote import fs_shell

    uri = f"{cluster.config.hdfs}/prognos/probe-{uuid.uuid4().hex[:6]}.txt"
    local = Path(tempfile.mkdtemp()) / "probe.txt"
    local.write_text("written to HDFS\n")
    assert fs_shell("-mkdir", "-p", f"{cluster.config.hdfs}/prognos", timeout_s=120).returncode == 0
    put = fs_shell("-put", str(local), uri, timeout_s=120)
    assert put.returncode == 0, put.stderr[-1000:]
    cat = fs_shell("-cat", uri, timeout_s=120)
    assert cat.returncode == 0 and cat.stdout == "written to HDFS\n", cat.stderr[-1000:]
    name = uri.rsplit("/", 1)[-1]
    assert name in WebHdfs(cluster.config).listing("/prognos")
    statuses = cluster.status()
    assert all(s.healthy for s in statuses), statuses


def test_the_workers_remove_a_finished_applications_folder(cluster: Any) -> None:
    """Each executor unpacks what `prognos submit` ships (the Python environment, ~360 MB)
    into its application's folder under the worker's work/; Spark keeps a finished one for
    7 days unless told otherwise. The local cluster's workers remove it WORK_RETENTION_S
    after its last write, and leave a recent one alone."""
    from deploy.cluster import WORK_CLEANUP_INTERVAL_S, WORK_RETENTION_S

    work = cluster.workers[0].dir / "work"
    tag = uuid.uuid4().hex[:6]
    old, recent = work / f"app-finished-{tag}", work / f"app-recent-{tag}"
    for folder in (old, recent):
        (folder / "0").mkdir(parents=True)
        (folder / "0" / "stderr").write_text("an executor's log\n")
    past = time.time() - WORK_RETENTION_S - 60
    for path in (old / "0" / "stderr", old / "0", old):
        os.utime(path, (past, past))
    deadline = time.monotonic() + 2 * WORK_CLEANUP_INTERVAL_S + 15
    while old.exists() and time.monotonic() < deadline:
        time.sleep(2)
    assert not old.exists(), f"{old} outlived {WORK_RETENTION_S} s: the worker cleanup is off"
    assert (recent / "0" / "stderr").exists(), "a folder newer than the retention was removed"


@pytest.mark.skipif(not _selected("worker"), reason=LEFT_OUT)
def test_a_spark_worker_killed_mid_run(
    cluster: Any, golden: Snapshot, recording: Recording, tmp_path: Path
) -> None:
    """The worker and its executor are SIGKILLed (a machine lost); Spark reruns their tasks
    on the other worker's executor, and the worker is started again a few seconds later."""
    run = _run(cluster, "worker", tmp_path)
    produced = produce(recording, run.bootstrap, run.topic)
    worker = cluster.workers[0]

    def inject() -> tuple[float, float]:
        pid = worker.running_pid()
        assert pid is not None
        at = kill_tree(pid)
        worker.pid_file.unlink(missing_ok=True)
        time.sleep(5)
        worker.start()
        return at, time.time()

    injected, _ = _inject_mid_run(run, inject)
    comparison = _judge(
        golden,
        run,
        "Spark worker SIGKILLed with its executor mid-run, restarted 5 s later",
        produced.sent,
        recovery_s=[run.recovery_s(injected)],
        injections=1,
    )
    assert comparison.ok, comparison.describe()


@pytest.mark.skipif(not _selected("leader"), reason=LEFT_OUT)
def test_the_readings_leader_killed_mid_produce_and_mid_consume(
    cluster: Any, golden: Snapshot, recording: Recording, tmp_path: Path
) -> None:
    """SIGKILL the broker leading partition 0 while the producer sends (paced), and again
    while the job reads; each restarted with its log. With three replicas and two in sync
    required, writes go on to the new leader: no acknowledged reading is lost."""
    settings = REPORT.settings
    run = _run(cluster, "leader", tmp_path)
    outages: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def kill_leader() -> tuple[float, float]:
        leader = partition_leader(run.bootstrap, run.topic)
        broker = cluster.service(f"kafka-{leader}")
        at = kill_service(broker)
        time.sleep(3)
        broker.start()
        return at, time.time()

    def monkey() -> None:
        try:
            time.sleep(settings.produce_seconds * 0.4)
            outages.append(kill_leader())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=monkey, daemon=True)
    thread.start()
    speed = recording.event_span_s / settings.produce_seconds
    produced = produce(recording, run.bootstrap, run.topic, speed=speed)
    thread.join()
    assert not errors, errors
    in_topic = topic_readings(run.bootstrap, run.topic, expected=len(produced.acked))
    lost_acked = [k for k in produced.acked if in_topic[k] == 0]
    injected, back = _inject_mid_run(run, kill_leader)
    comparison = _judge(
        golden,
        run,
        "readings partition leader SIGKILLed mid-produce and mid-consume, restarted",
        produced.sent,
        recovery_s=[run.recovery_s(injected, back)],
        injections=2,
        notes=f"{len(lost_acked)} acknowledged readings missing from the topic",
    )
    assert not lost_acked, f"{len(lost_acked)} acknowledged readings lost: {lost_acked[:5]}"
    assert comparison.ok, comparison.describe()


@pytest.mark.skipif(not _selected("driver"), reason=LEFT_OUT)
def test_the_driver_killed_and_the_job_resubmitted_on_its_hdfs_checkpoint(
    cluster: Any, golden: Snapshot, recording: Recording, tmp_path: Path
) -> None:
    """SIGKILL `prognos submit` and its driver mid-run; `prognos submit` again on the same
    HDFS checkpoint finishes the work: nothing lost, nothing written twice."""
    run = _run(cluster, "driver", tmp_path)
    produced = produce(recording, run.bootstrap, run.topic)
    job = run.start()
    reached = run.wait_for_commit(job, 0, REPORT.settings.job_timeout_s)
    assert reached is not None, job.log_tail()
    injected = job.kill()
    run.notes.append(f"driver killed after batch {reached}")
    run.finish(run.start())
    run.check_consumed()
    comparison = _judge(
        golden,
        run,
        "driver SIGKILLed mid-run, job resubmitted on the same HDFS checkpoint",
        produced.sent,
        recovery_s=[run.recovery_s(injected)],
        injections=1,
    )
    assert comparison.ok, comparison.describe()


@pytest.mark.skipif(not _selected("namenode"), reason=LEFT_OUT)
def test_the_namenode_stopped_for_seconds_mid_run(
    cluster: Any, golden: Snapshot, recording: Recording, tmp_path: Path
) -> None:
    """Stop the NameNode for 5 s while the job runs. The checkpoint cannot be written
    meanwhile: the job either waits it out or stops with an error and is resubmitted."""
    run = _run(cluster, "namenode", tmp_path)
    produced = produce(recording, run.bootstrap, run.topic)

    def inject() -> tuple[float, float]:
        at = time.time()
        cluster.namenode.stop()
        time.sleep(5)
        cluster.namenode.start()
        back = time.monotonic() + 120
        while not cluster.datanode.healthy():  # the DataNode re-registered, safe mode left
            assert time.monotonic() < back, "HDFS did not leave safe mode within 120 s"
            time.sleep(0.5)
        return at, time.time()

    injected, back = _inject_mid_run(run, inject)
    comparison = _judge(
        golden,
        run,
        "HDFS NameNode stopped for 5 s mid-run, started again",
        produced.sent,
        recovery_s=[run.recovery_s(injected, back)],
        injections=1,
    )
    assert comparison.ok, comparison.describe()


@pytest.mark.skipif(not _selected("broker"), reason=LEFT_OUT)
def test_a_broker_restarted_with_its_log_mid_run(
    cluster: Any, golden: Snapshot, recording: Recording, tmp_path: Path
) -> None:
    """Stop a broker cleanly (a rolling restart) while the job reads, start it again on its
    log folder: it rejoins as a follower and catches up."""
    run = _run(cluster, "broker", tmp_path)
    produced = produce(recording, run.bootstrap, run.topic)

    def inject() -> tuple[float, float]:
        broker = cluster.service(f"kafka-{partition_leader(run.bootstrap, run.topic, 1)}")
        at = time.time()
        broker.stop()
        broker.start()
        return at, time.time()

    injected, back = _inject_mid_run(run, inject)
    comparison = _judge(
        golden,
        run,
        "broker leading partition 1 restarted (clean stop, same log) mid-run",
        produced.sent,
        recovery_s=[run.recovery_s(injected, back)],
        injections=1,
        notes=f"invalid record after ~1 in {BAD_EVERY} readings",
    )
    assert comparison.ok, comparison.describe()

"""Wide fleets: the stream job's cost per reading against the number of devices.

Run::

    .venv/bin/python tests/benchmarks/bench_fleet.py [--fleets 400,20000,100000]

Uses the broker and Redis named by ``PROGNOS_KAFKA_BOOTSTRAP``/``PROGNOS_REDIS_URL``, else
starts private ones. Saves ``bench-results/fleet.json``.

Each fleet is C-MAPSS FD001's 100 engines replicated (``devices / 100`` copies), every
engine reporting in every cycle, in event-time order, pre-loaded into a 2-partition topic;
the job reads it in micro-batches of 50,000 readings (its default), so a batch holds 125
readings per device at 400 devices, 2.5 at 20,000 and 0.5 at 100,000:

* ``400`` devices: every cycle of the engines (the narrow shape of ``make bench``);
* ``20000`` devices: the first ``--cycles`` cycles of each engine (24), a cycle 1,500 s of
  event time, so the model's 3,000 s windows hold two readings and each device scores its
  first K-window sequences at the end (every reading of the window and sequence logic runs);
* ``100000`` devices: the first ``--wide-cycles`` cycles (6): windows close, but no device
  reaches K windows in the run (scoring 100,000 devices' sequences would take longer than a
  benchmark may), so the runs are checked to have read every reading, none dropped as
  late;
* ``backblaze``: Backblaze's whole fleet of disks (``../shared/data/backblaze``, "Hard drive
  data and stats, Backblaze, Inc."), its first ``--backblaze-days`` days (10: about
  21,800 drives, one reading a day each), replayed by ``prognos replay --sort-by-time``
  and scored by a model trained on the disks first (``prognos catalogue infer`` on the replayed days,
  ``prognos train`` on the 3,000-drive sample, under a minute): one-day windows, K = 6.

Each Prognos run is a fresh process (``spark-submit``-free, the job as shipped: local mode,
1 s trigger) timed from its first trigger, as ``bench_stream`` does; ``rate`` counts every
batch, ``steady_rate`` the batches after the first (the first holds code generation and
the Python workers' start). At the fleet of ``--scale-fleet`` devices the job also runs at
``local[1]`` (one core) for the scale-out figure. The hand-batched process and (at
``--naive-fleet`` and Backblaze's only: it reads 3,000 records a second) the naive consumer
drain the same topic; at fleets that score windows, the program fails unless every run
scored the same windows and raised the same alert events.

With ``--cluster`` (``make bench-cluster``), the job also drains the scale fleet's topic on
the local cluster of ``prognos cluster up``: a Spark master and two workers of one core
each, its checkpoint on the cluster's HDFS, submitted as ``prognos submit`` ships it (the
project's wheel, the Python environment and the model as archives). Only the cluster's
Spark and HDFS processes are started, on ports from ``PROGNOS_BENCH_CLUSTER_PORT_BASE``
(39000); the job reads the same broker and writes the same Redis as the local runs.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks import baselines
from tests.benchmarks.bench_stream import (
    _baseline_run,
    check_same_work,
    run_prognos,
    spark_session,
)
from tests.benchmarks.common import (
    BATCHED,
    NAIVE,
    RESULTS,
    ROOT,
    MemorySampler,
    expected_scored,
    machine,
    new_topic,
    proc_cmdline,
    proc_stat,
    publish,
    save,
    stack,
    workload,
)

if TYPE_CHECKING:
    from deploy.cluster import Cluster

JOB = "prognos stream job"
#: The master name of a run on the local cluster (:func:`local_cluster`).
CLUSTER = "cluster"


def _shape(devices: int, args: argparse.Namespace) -> tuple[int | None, float]:
    """(cycles per engine, event seconds per cycle) of a fleet's workload."""
    if devices <= 400:
        return None, 600.0
    if devices <= args.scoring_limit:
        return args.cycles, 1500.0
    return args.wide_cycles, 1500.0


def prognos_child(args: argparse.Namespace) -> int:
    """One drain by the job in this process (started by :func:`run_job`): a JSON row."""
    spark = spark_session()
    try:
        row = run_prognos(
            spark,
            args.bootstrap,
            args.redis_url,
            args.topic,
            args.expected,
            args.total,
            args.name,
            Path(args.model) if args.model else None,
            checkpoint=args.checkpoint,
        )
        row["scored"] = sorted(row["scored"])
        row["master"] = spark.sparkContext.master
        Path(args.child_out).write_text(json.dumps(row, default=str))
    finally:
        spark.stop()
    return 0


def run_job(
    bootstrap: str,
    redis_url: str,
    topic: str,
    expected: int,
    total: int,
    name: str,
    master: str,
    model: Path | None = None,
    cluster: Cluster | None = None,
    cluster_conf: list[str] | None = None,
) -> dict[str, Any]:
    """The job's drain in a fresh process at ``master`` (with ``model``, else the default
    one), or, with ``master`` :data:`CLUSTER`, submitted to ``cluster`` (a
    :class:`deploy.cluster.Cluster` whose Spark and HDFS run); its row, ``scored`` a
    set again."""
    where = cluster.config.spark_master if master == CLUSTER and cluster else master
    print(f"running the {name} ({where}) ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="prognos-bench-fleet-") as tmp:
        out = Path(tmp) / "row.json"
        env = {**os.environ, "PROGNOS_SPARK_MASTER": where, "PROGNOS_SPARK_UI": "0"}
        child = [
            "--child",
            "--bootstrap",
            bootstrap,
            "--redis-url",
            redis_url,
            "--topic",
            topic,
            "--expected",
            str(expected),
            "--total",
            str(total),
            "--name",
            name,
            "--child-out",
            str(out),
            *(["--model", str(model)] if model else []),
        ]
        if master == CLUSTER:
            assert cluster is not None
            sampler = submit_to_cluster(cluster, child, model, Path(tmp), env, cluster_conf or [])
        else:
            subprocess.run([sys.executable, __file__, *child], env=env, check=True, cwd=ROOT)
            sampler = None
        row: dict[str, Any] = json.loads(out.read_text())
    row["scored"] = {tuple(w) for w in row["scored"]}
    if sampler is not None:
        # Under spark-submit the driver's Python is the JVM's child, and the executors
        # are the workers': the child's own sample saw only the Python driver.
        row["memory"] = sampler.as_dict()
        row["cpu_s_in_drain"] = sampler.cpu_between(*row["drain_epoch"])
        if row.get("steady_epoch"):
            row["cpu_s_steady"] = sampler.cpu_between(*row["steady_epoch"])
    return row


def submit_to_cluster(
    cluster: Cluster,
    child: list[str],
    model: Path | None,
    tmp: Path,
    env: dict[str, str],
    conf: list[str],
) -> ClusterSampler:
    """Run this program's ``child`` drain as ``prognos submit`` runs the job (the same
    ``spark-submit`` line, this file in place of the job's entry point), its checkpoint
    on the cluster's HDFS; returns the sample of the driver's, the executors' and the
    workers' memory and CPU time."""
    import deploy.cli
    from deploy.submit import build_command, driver_environment_link, prepare

    model_dir = model or ROOT / "models" / "default"
    submission = prepare(
        cluster.config.spark_master,
        model_dir,
        job_args=(),
        # As the local runs: the progress of every batch, kept for the steady rate.
        conf=["spark.sql.streaming.numRecentProgressUpdates=1000", *conf],
        env=env,
    )
    command = build_command(submission)
    entry = command.index(str(Path(deploy.cli.__file__).resolve()))
    checkpoint = f"{cluster.config.hdfs}/prognos/bench/{uuid.uuid4().hex[:8]}"
    command = [*command[:entry], str(Path(__file__).resolve()), *child]
    command += ["--checkpoint", checkpoint]
    driver_environment_link(tmp, submission.environment.parent)
    from deploy.jars import spark_build

    env = {**env, "SPARK_HOME": str(spark_build().jars_dir.parent), "SPARK_LOCAL_IP": "127.0.0.1"}
    daemons = cluster_daemon_pids(cluster)
    process = subprocess.Popen(command, env=env, cwd=tmp)
    try:
        with ClusterSampler(process.pid, others=daemons) as memory:
            code = process.wait()
    finally:
        if process.poll() is None:  # the sampler failed: the driver goes with the cluster
            process.terminate()
            process.wait(timeout=60)
    if code:
        raise SystemExit(f"the job on the cluster exited with {code}")
    return memory


class ClusterSampler(MemorySampler):
    """:class:`MemorySampler` over spark-submit's tree and the cluster's daemons' (the
    workers with their executors, the master, HDFS), each process named by its command
    line, an executor's JVM and Python processes by executor."""

    ROLES = (
        ("SparkSubmit", "driver JVM"),
        ("CoarseGrainedExecutorBackend", "executor JVMs"),
        ("deploy.worker.Worker", "worker daemons"),
        ("deploy.master.Master", "spark master"),
        ("namenode.NameNode", "HDFS"),
        ("datanode.DataNode", "HDFS"),
        ("bench_fleet.py", "python driver"),
        ("pyspark.daemon", "python workers"),
        ("pyspark.worker", "python workers"),
    )

    def role(self, pid: int) -> str | None:
        """The process's role; an executor's JVM and its Python processes by executor."""
        cmd = proc_cmdline(pid)
        if cmd is None:
            return None
        role = next((role for mark, role in self.ROLES if mark in cmd), "other")
        if role in ("python workers", "other"):  # an executor's JVM forked it, or its daemon
            parent = pid
            for _ in range(3):
                fields = proc_stat(parent)
                parent = int(fields[1]) if fields else 0
                executor = _executor_id(proc_cmdline(parent) or "")
                if executor:
                    return f"executor {executor} python"
        executor = _executor_id(cmd)
        return f"executor {executor} JVM" if executor else role


def _executor_id(cmd: str) -> str | None:
    """The ``--executor-id`` of an executor JVM's command line."""
    if "CoarseGrainedExecutorBackend" not in cmd:
        return None
    words = cmd.split()
    return words[words.index("--executor-id") + 1] if "--executor-id" in words else "?"


def spark_and_hdfs(cluster: Cluster) -> list[Any]:
    """The services of ``cluster`` the benchmark starts, in start order."""
    return [cluster.namenode, cluster.datanode, cluster.master, *cluster.workers]


def cluster_daemon_pids(cluster: Cluster) -> list[int]:
    """The pids of the cluster's Spark workers and master and its HDFS daemons."""
    pids = []
    for service in spark_and_hdfs(cluster):
        pid = service.running_pid()
        if pid is None:
            raise SystemExit(f"the cluster's {service.name} is not running")
        pids.append(pid)
    return pids


@contextlib.contextmanager
def local_cluster(tmp: Path) -> Iterator[Cluster]:
    """The Spark master, two one-core workers and HDFS of ``prognos cluster up`` (its
    brokers and Redis are not needed: the runs use the benchmark's), stopped at the end."""
    from deploy.cluster import Cluster, ClusterConfig
    from deploy.stack import port_is_free

    base = os.environ.get("PROGNOS_BENCH_CLUSTER_PORT_BASE") or "39000"
    config = ClusterConfig.from_env(
        {**os.environ, "PROGNOS_CLUSTER_DIR": str(tmp), "PROGNOS_CLUSTER_PORT_BASE": base}
    )
    cluster = Cluster(config)
    services = spark_and_hdfs(cluster)
    taken = [p for s in services for p in s.ports if not port_is_free(p)]
    if taken:
        raise SystemExit(
            f"ports {taken} of the benchmark's cluster (base {base}) are in use: stop what "
            "holds them, or set PROGNOS_BENCH_CLUSTER_PORT_BASE to another base"
        )
    print(
        f"starting the local cluster (Spark master, 2 workers, HDFS; base {base}) ...",
        file=sys.stderr,
    )
    cluster.setup()
    started = []
    try:
        for service in services:
            service.start()
            started.append(service)
        yield cluster
    finally:
        _, failures = cluster._stop(list(reversed(started)))
        for failure in failures:
            print(f"the benchmark's cluster did not stop cleanly: {failure}", file=sys.stderr)


def fleet(which: str, args: argparse.Namespace, bootstrap: str, redis_url: str) -> dict[str, Any]:
    """One simulated fleet of ``which`` devices (C-MAPSS engines replicated), every run."""
    from models.scorer import Scorer

    spec = Scorer.load(ROOT / "models" / "default", providers="cpu").metadata.spec
    k = spec.sequence_length
    watermark = spec.window_seconds
    print(f"building the workload ({which}) ...", file=sys.stderr)
    cycles, cycle_s = _shape(int(which), args)
    work = workload(int(which) // 100, max_cycle=cycles, cycle_s=cycle_s)
    topic = new_topic(bootstrap, f"fleet-{which}")
    pub = publish(bootstrap, topic, work)
    expected = expected_scored(work, spec.window_seconds, k, watermark)
    print(
        f"{len(work):,} readings of {len(work.device_names):,} devices in {topic} "
        f"({pub:.1f}s); {expected:,} windows can close and be scored",
        file=sys.stderr,
    )
    result = fleet_runs(
        which,
        args,
        bootstrap,
        redis_url,
        topic,
        devices=len(work.device_names),
        total=len(work),
        expected=expected,
        watermark=watermark,
    )
    return {**result, "cycle_s": cycle_s}


def fleet_runs(
    which: str,
    args: argparse.Namespace,
    bootstrap: str,
    redis_url: str,
    topic: str,
    *,
    devices: int,
    total: int,
    expected: int,
    watermark: float,
    model: Path | None = None,
) -> dict[str, Any]:
    """The job and the baselines on the fleet ``which`` pre-loaded in ``topic``: each must
    read every reading, drop none as late and (where windows are scored) score the same
    windows and raise the same alert events as the others."""
    rows = [run_job(bootstrap, redis_url, topic, expected, total, JOB, "local[2]", model)]
    if which == str(args.scale_fleet):
        rows.append(
            run_job(
                bootstrap, redis_url, topic, expected, total, f"{JOB}, local[1]", "local[1]", model
            )
        )
        if args.cluster:
            with (
                tempfile.TemporaryDirectory(prefix="prognos-bench-cluster-") as tmp,
                local_cluster(Path(tmp)) as cluster,
            ):
                rows.append(
                    run_job(
                        bootstrap,
                        redis_url,
                        topic,
                        expected,
                        total,
                        f"{JOB}, cluster",
                        CLUSTER,
                        model,
                        cluster,
                        args.cluster_conf,
                    )
                )
    kw = {"model": model} if model else {}
    rows.append(
        _baseline_run(
            partial(baselines.batched, **kw),
            BATCHED,
            1,
            bootstrap,
            topic,
            redis_url,
            total,
            watermark,
        )
    )
    if which in (str(args.naive_fleet), "backblaze"):
        rows.append(
            _baseline_run(
                partial(baselines.naive, **kw),
                NAIVE,
                1,
                bootstrap,
                topic,
                redis_url,
                total,
                watermark,
            )
        )
    for row in rows:
        read = row["read"] if "read" in row else row["readings"]
        if read != total:
            raise SystemExit(f"{row['name']} read {read} readings of {total:,}")
        if row.get("dropped_by_watermark"):
            raise SystemExit(f"{row['name']} dropped {row['dropped_by_watermark']} as late")
    same = check_same_work(rows, redis_url) if expected else None
    if not expected:
        for row in rows:
            del row["scored"], row["prefix"]
    return {
        "fleet": which,
        "devices": devices,
        "scale_out": scale_out(rows),
        "readings": total,
        "readings_per_device_per_batch": round(50_000 / devices, 2),
        "expected_windows": expected,
        "same_work": same,
        "rows": rows,
    }


# -- Backblaze's disks ---------------------------------------------------------------------------
BACKBLAZE = ROOT.parent / "shared" / "data" / "backblaze"
BB_COLUMNS = ["--device-column", "serial_number", "--time-column", "date"]
BB_FIELDS = ["--metadata", "model,capacity_bytes", "--ignore", "failure"]
BB_SENSORS = "smart_1_raw,smart_5_raw,smart_9_raw,smart_194_raw,smart_197_raw"


def _prognos(*args: str, env: dict[str, str] | None = None) -> str:
    """``prognos ARGS`` in a child process, as a user runs it; its stdout."""
    command = [sys.executable, "-m", "deploy.cli", "--log-level", "WARNING", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode:
        raise SystemExit(
            f"prognos {args[0]} exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return result.stdout


def backblaze_model(folder: Path, recording: Path) -> Path:
    """A model of Backblaze's disks, made as a new user makes one: a catalogue inferred from
    the recording to replay (the whole fleet holds a few implausible values the sample does
    not, and every reading must reach every run), then trained on the 3,000-drive sample
    with its failure log (one network, 3 epochs, seed 7: about half a minute). Throughput
    does not depend on how good the model is."""
    sample = BACKBLAZE / "drives_sample3000.csv"
    catalogue = folder / "disks.toml"
    _prognos("catalogue", "infer", str(recording), *BB_COLUMNS, *BB_FIELDS, "--out", str(catalogue))
    model = folder / "model"
    _prognos(
        "train", "--data", str(sample), *BB_COLUMNS, "--sensors", BB_SENSORS,
        "--failures", str(BACKBLAZE / "failures.csv"), "--events-time-column", "failure_date",
        "--catalogue", str(catalogue), "--out", str(model), "--lead", "1d", "--ensemble", "none",
        "--folds", "1", "--epochs", "3", "--no-plots", "--seed", "7",
    )  # fmt: skip
    return model


def backblaze_days(days: int, out: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The whole fleet's first ``days`` days (every drive, one reading a day) written to
    ``out`` as CSV; (device index, event time in s, device names) of its readings."""
    if not (BACKBLAZE / "drives_all.csv.gz").is_file():
        raise SystemExit(
            f"the Backblaze recording is not in {BACKBLAZE}: ../shared must be beside the repo"
        )
    with gzip.open(BACKBLAZE / "drives_all.csv.gz", "rt", newline="") as src:
        reader = csv.reader(src)
        header = next(reader)
        rows = list(reader)
    at, serial = header.index("date"), header.index("serial_number")
    first = date.fromisoformat(min(r[at] for r in rows))
    cutoff = (first + timedelta(days=days)).isoformat()
    kept = [r for r in rows if r[at] < cutoff]
    with out.open("w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(header)
        writer.writerows(kept)
    ids: dict[str, int] = {}
    devices = np.array([ids.setdefault(r[serial], len(ids)) for r in kept], dtype=np.int64)
    day_s = {
        d: datetime.fromisoformat(d).replace(tzinfo=UTC).timestamp() for d in {r[at] for r in kept}
    }
    times = np.array([day_s[r[at]] for r in kept])
    return devices, times, list(ids)


def fleet_backblaze(args: argparse.Namespace, bootstrap: str, redis_url: str) -> dict[str, Any]:
    """Backblaze's whole fleet (about 22,000 drives, "Hard drive data and stats, Backblaze,
    Inc."), its first ``--backblaze-days`` days replayed with ``prognos replay`` in event-time
    order, scored by a model trained on its disks: the job and both baselines."""
    from models.scorer import Scorer

    with tempfile.TemporaryDirectory(prefix="prognos-bench-backblaze-") as tmp:
        folder = Path(tmp)
        recording = folder / "drives.csv"
        devices, times, names = backblaze_days(args.backblaze_days, recording)
        print("backblaze: training a model of the disks ...", file=sys.stderr)
        model = backblaze_model(folder, recording)
        spec = Scorer.load(model, providers="cpu").metadata.spec
        total = len(times)
        topic = new_topic(bootstrap, "fleet-backblaze")
        t0 = time.perf_counter()
        out = _prognos(
            "replay", str(recording), *BB_COLUMNS, *BB_FIELDS,
            "--catalogue", str(model / "catalogue.toml"), "--topic", topic,
            "--as-fast-as-possible", "--sort-by-time", "--no-progress",
            env={**os.environ, "PROGNOS_KAFKA_BOOTSTRAP": bootstrap},
        )  # fmt: skip
        if f"{total:,} readings to" not in out or " 0 dead letters" not in out:
            raise SystemExit(f"the Backblaze replay did not send every reading:\n{out}")
        work = SimpleNamespace(devices=devices, times_s=times, device_names=names)
        watermark = spec.window_seconds
        expected = expected_scored(work, spec.window_seconds, spec.sequence_length, watermark)  # type: ignore[arg-type]
        print(
            f"backblaze: {total:,} readings of {len(names):,} drives over "
            f"{args.backblaze_days} days in {topic} ({time.perf_counter() - t0:.1f}s); "
            f"{expected:,} windows can close and be scored",
            file=sys.stderr,
        )
        result = fleet_runs(
            "backblaze",
            args,
            bootstrap,
            redis_url,
            topic,
            devices=len(names),
            total=total,
            expected=expected,
            watermark=watermark,
            model=model,
        )
    return {
        **result,
        "days": args.backblaze_days,
        "model": {
            "window_s": spec.window_seconds,
            "sequence_length": spec.sequence_length,
            "sensors": len(spec.sensors),
        },
        "source": "Hard drive data and stats, Backblaze, Inc. (drives_all.csv.gz)",
    }


def fleet_latency(args: argparse.Namespace, bootstrap: str, redis_url: str) -> dict[str, Any]:
    """p99 event-to-alert latency at ``--latency-devices`` devices and ``--latency-rate``
    readings/s offered, beside the engine floor, as ``bench_stream``'s latency part: each
    device first gets ``--latency-preload`` cycles of history (so it has K windows), a
    cycle 1,500 s of event time; only windows closed by the offered load count."""
    from tests.benchmarks.bench_stream import latency_floor, latency_prognos

    lat = argparse.Namespace(
        latency_devices=args.latency_devices,
        latency_rate=args.latency_rate,
        latency_seconds=args.latency_seconds,
        latency_warmup=10.0,
        latency_cycle_s=1500.0,
        latency_preload_cycles=args.latency_preload,
    )
    spark = spark_session()
    try:
        print("latency: the engine floor ...", file=sys.stderr)
        floor = latency_floor(spark, bootstrap, redis_url, lat)
        print("latency: the job ...", file=sys.stderr)
        job = latency_prognos(spark, bootstrap, redis_url, lat)
    finally:
        spark.stop()
    return {
        "devices": args.latency_devices,
        "rate": args.latency_rate,
        "seconds": args.latency_seconds,
        "floor": floor,
        "job": job,
        "p99_ratio": round(job["p99_ms"] / floor["p99_ms"], 2) if floor.get("p99_ms") else None,
    }


def scale_out(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """Each two-core run's steady readings/s over the ``local[1]`` run's, where there is
    one: ``local[2]`` and, when measured, the two one-core workers of the cluster."""
    by = {r["name"]: r for r in rows}
    one = by.get(f"{JOB}, local[1]")
    if one is None:
        return None

    def rate(r: dict[str, Any]) -> float:
        return float(r.get("steady_rate") or r["rate"])

    ratios = {"local[2]": round(rate(by[JOB]) / rate(one), 2)}
    if f"{JOB}, cluster" in by:
        ratios["cluster"] = round(rate(by[f"{JOB}, cluster"]) / rate(one), 2)
    return ratios


def print_table(result: dict[str, Any]) -> None:
    print(
        "\n| fleet | devices | run | readings | readings/s | steady readings/s | windows | peak GiB |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for f in result["fleets"]:
        for r in f["rows"]:
            peak = (r.get("memory") or {}).get("peak_total_gib")
            print(
                f"| {f['fleet']} | {f['devices']:,} | {r['name']} | {f['readings']:,} | {r['rate']:,.0f} | "
                f"{r.get('steady_rate') or '-'} | {r.get('windows_scored', '-')} | "
                f"{peak if peak is not None else '-'} |"
            )
    for f in result["fleets"]:
        for r in f["rows"]:
            drain, steady = r.get("cpu_s_in_drain"), r.get("cpu_s_steady")
            if drain:
                total = sum(drain.values())
                print(
                    f"\n{f['fleet']}, {r['name']}: {total:.1f} CPU-s from the first trigger to "
                    f"the last write ({total * 1e6 / f['readings']:.0f} CPU-us a reading)"
                )
            if steady and r.get("steady_rate"):
                total = sum(steady.values())
                seconds = r["steady_epoch"][1] - r["steady_epoch"][0]
                readings = r["steady_rate"] * seconds
                parts = ", ".join(f"{k} {v:.1f}" for k, v in steady.items() if v >= 0.1)
                print(
                    f"  steady batches: {total:.1f} CPU-s in {seconds:.1f} s, "
                    f"{total * 1e6 / readings:.0f} CPU-us a reading: {parts}"
                )
        if f.get("scale_out"):
            ratios = ", ".join(f"{k} {v:.2f}x" for k, v in f["scale_out"].items())
            print(f"\nscale-out at {f['devices']:,} devices vs local[1] (target >= 1.7x): {ratios}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Cost per reading (core-microseconds: 2 cores x wall time / readings, the steady
    batches) against the number of devices, the job beside the hand-batched process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = {}
    for f in result["fleets"]:
        for r in f["rows"]:
            cores = 1 if r["name"].endswith("local[1]") or not r["name"].startswith(JOB) else 2
            rate = r.get("steady_rate") or r["rate"]
            name = f"{r['name']}, Backblaze" if f["fleet"] == "backblaze" else r["name"]
            series.setdefault(name, []).append((f["devices"], cores * 1e6 / rate))
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    for name, points in series.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("devices in the fleet (one topic, batches of 50,000 readings)")
    ax.set_ylabel("core-µs per reading")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Cost per reading against fleet size (2 cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fleets", default="400,20000,100000,backblaze")
    ap.add_argument(
        "--backblaze-days", type=int, default=10, help="days of Backblaze's fleet to replay"
    )
    ap.add_argument("--cycles", type=int, default=24, help="cycles per engine, scoring fleets")
    ap.add_argument("--wide-cycles", type=int, default=6, help="cycles per engine, widest")
    ap.add_argument("--scoring-limit", type=int, default=20_000)
    ap.add_argument("--scale-fleet", type=int, default=20_000)
    ap.add_argument("--naive-fleet", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=RESULTS / "fleet.json")
    ap.add_argument("--latency-devices", type=int, default=20_000)
    ap.add_argument("--latency-rate", type=float, default=2_000.0)
    ap.add_argument("--latency-seconds", type=float, default=45.0)
    ap.add_argument("--latency-preload", type=int, default=22, help="cycles of history")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument(
        "--cluster",
        action="store_true",
        help="also run the scale fleet on the local cluster (2 one-core workers, HDFS)",
    )
    ap.add_argument(
        "--cluster-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting for the cluster's run (as prognos submit --conf; repeatable)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("bootstrap", "redis-url", "topic", "name", "child-out", "model", "checkpoint"):
        ap.add_argument(f"--{name}", help=argparse.SUPPRESS)
    ap.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--total", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return prognos_child(args)
    fleets = [f for f in args.fleets.split(",") if f]
    with stack() as (bootstrap, redis_url):
        result = {
            "machine": machine(),
            "fleets": [],
        }
        for n in fleets:  # saved after each fleet: a later failure keeps the earlier ones
            part = fleet_backblaze if n == "backblaze" else partial(fleet, n)
            started = time.perf_counter()
            result["fleets"].append(part(args, bootstrap, redis_url))
            # the part's whole time (workloads, every run, the checks): what make bench pays
            result["fleets"][-1]["part_s"] = round(time.perf_counter() - started, 1)
            print(f"(fleet {n}: {result['fleets'][-1]['part_s']:.0f}s)", file=sys.stderr)
            save("fleet", result, args.out)
        if not args.no_latency:
            started = time.perf_counter()
            result["latency"] = fleet_latency(args, bootstrap, redis_url)
            lat = result["latency"]
            lat["part_s"] = round(time.perf_counter() - started, 1)
            print(
                f"latency at {lat['devices']:,} devices, {lat['rate']:,.0f} readings/s: job p99 "
                f"{lat['job'].get('p99_ms')} ms, floor p99 {lat['floor'].get('p99_ms')} ms "
                f"(ratio {lat['p99_ratio']}; kept up: {lat['job'].get('kept_up')})"
            )
    print_table(result)
    save("fleet", result, args.out)
    plot(result, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

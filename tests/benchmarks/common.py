"""Shared helpers of the benchmark programs: a private stack, the workload, the machine.

Not a test module (pytest collects ``test_*.py`` only). The programs under
``tests/benchmarks`` import it after putting the repository root on ``sys.path``.

Workload: NASA C-MAPSS FD001 (``train_FD001.txt``), each of its 100 engines replicated as
``copies`` devices (``FD001-rNN-UUU``), readings in event-time order (cycle by cycle across
devices, 600 s per cycle like ``prognos replay``), encoded with :func:`ingest.codec.encode`,
so alerts really happen and every system reads the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CMAPSS = ROOT.parent / "shared" / "data" / "cmapss" / "train_FD001.txt"
CYCLE_S = 600.0
RESULTS = ROOT / "bench-results"

# The throughput part's runs (rows of bench_stream's results, read by run_all's summary).
# JOB_WARM and BATCHED_WARM are copies of the median run among the later ones (see
# bench_stream.part_throughput); each run is a row of its own as well.
JOB_COLD = "prognos stream job"
JOB_WARM = "prognos stream job, warm"
BATCHED = "hand-batched process"
BATCHED_WARM = "hand-batched process, warm"
NAIVE = "naive per-record consumer"


def run_name(base: str, n: int) -> str:
    """The row of the ``n``-th run (from 1) of ``base`` in the throughput part."""
    return f"{base}, run {n}"


# -- the stack -------------------------------------------------------------------------------
@contextlib.contextmanager
def stack() -> Iterator[tuple[str, str]]:
    """(bootstrap, redis_url): the services named by PROGNOS_KAFKA_BOOTSTRAP and
    PROGNOS_REDIS_URL, else a private broker and redis-server (free ports, temp state)."""
    from deploy.config import StackConfig
    from deploy.stack import KafkaBroker, RedisServer, free_port

    given_kafka = os.environ.get("PROGNOS_KAFKA_BOOTSTRAP")
    given_redis = os.environ.get("PROGNOS_REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="prognos-bench-") as state:
        config = StackConfig.from_env(
            state_dir=Path(state),
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
            redis_port=free_port(),
        )
        started: list[Any] = []
        try:
            if not given_kafka:
                print(f"starting a broker on {config.kafka_bootstrap} ...", file=sys.stderr)
                started.append(KafkaBroker(config))
                started[-1].start()
            if not given_redis:
                print(f"starting redis-server on port {config.redis_port} ...", file=sys.stderr)
                started.append(RedisServer(config))
                started[-1].start()
            yield (
                given_kafka or f"127.0.0.1:{config.kafka_port}",
                given_redis or f"redis://127.0.0.1:{config.redis_port}/0",
            )
        finally:
            for service in reversed(started):
                service.stop()


def new_topic(bootstrap: str, label: str, partitions: int = 2) -> str:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    name = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="prognos-bench")
    try:
        admin.create_topics(
            [
                NewTopic(name, num_partitions=partitions, replication_factor=1),
                NewTopic(f"{name}.dlq", num_partitions=1, replication_factor=1),
            ]
        )
    finally:
        admin.close()
    return name


def end_offsets(bootstrap: str, topic: str) -> int:
    """Sum of the topic's end offsets (records in it, for a fresh topic)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return int(sum(consumer.end_offsets(parts).values()))
    finally:
        consumer.close()


# -- the workload ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """Readings of the benchmark, ready to publish: keys, values and what they hold."""

    keys: list[bytes]
    values: list[bytes]
    devices: np.ndarray  # device index per reading
    times_s: np.ndarray  # event time per reading, Unix seconds
    device_names: list[str]

    def __len__(self) -> int:
        return len(self.values)


def cmapss_table() -> np.ndarray:
    return np.loadtxt(CMAPSS)


def workload(
    copies: int,
    base: datetime | None = None,
    max_cycle: int | None = None,
    cycle_s: float = CYCLE_S,
) -> Workload:
    """FD001's engines replicated ``copies`` times (100 devices each), in event-time order;
    with ``max_cycle``, each engine's first cycles only (every device reports in every
    cycle); a cycle is ``cycle_s`` of event time."""
    from ingest.codec import encode
    from ingest.schema import Reading

    table = cmapss_table()
    if max_cycle is not None:
        table = table[table[:, 1] <= max_cycle]
    base = base or datetime(2026, 1, 1, tzinfo=UTC)
    units = table[:, 0].astype(int)
    cycles = table[:, 1].astype(int)
    n = len(table)
    rep = np.repeat(np.arange(copies), n)
    tab = np.tile(np.arange(n), copies)
    order = np.lexsort((units[tab], rep, cycles[tab]))  # by cycle, then copy, then unit
    rep, tab = rep[order], tab[order]
    names: dict[tuple[int, int], int] = {}
    device_names: list[str] = []
    keys, values = [], []
    devices = np.empty(len(tab), dtype=np.int64)
    times = np.empty(len(tab), dtype=np.float64)
    meta = {"source": "cmapss", "subset": "FD001"}
    base_s = base.timestamp()
    for i, (r, row) in enumerate(zip(rep.tolist(), tab.tolist(), strict=True)):
        u, c = int(units[row]), int(cycles[row])
        idx = names.get((r, u))
        if idx is None:
            idx = names[(r, u)] = len(device_names)
            device_names.append(f"FD001-r{r:02d}-{u:03d}")
        device = device_names[idx]
        values_row = table[row]
        reading = Reading(
            device,
            base + timedelta(seconds=c * cycle_s),
            c,
            # As the replay publishes them: s1..s21 and the engine's age in cycles.
            {
                **{f"s{k}": float(values_row[4 + k]) for k in range(1, 22)},
                "cycle": float(values_row[1]),
            },
            {f"setting{k}": float(values_row[1 + k]) for k in range(1, 4)},
            meta,
        )
        keys.append(device.encode())
        values.append(encode(reading))
        devices[i] = idx
        times[i] = base_s + c * cycle_s
    return Workload(keys, values, devices, times, device_names)


def publish(bootstrap: str, topic: str, work: Workload) -> float:
    """Pre-load the topic as fast as kafka-python can (not measured); returns seconds."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=1 << 20, acks=1)
    started = time.perf_counter()
    for key, value in zip(work.keys, work.values, strict=True):
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def expected_scored(work: Workload, window_s: float, k: int, watermark_s: float) -> int:
    """Windows that an event-time engine can close and score once every reading is read:
    window end <= (greatest event time - watermark), and the device has k windows by then."""
    wm = work.times_s.max() - watermark_s
    win = np.floor(work.times_s / window_s).astype(np.int64)
    pairs = np.unique(np.stack([work.devices, win], axis=1), axis=0)
    closed = pairs[(pairs[:, 1] + 1) * window_s <= wm]
    counts = np.bincount(closed[:, 0], minlength=len(work.device_names))
    return int(np.maximum(counts - (k - 1), 0).sum())


# -- memory ------------------------------------------------------------------------------------
def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (``[0]`` the state, ``[1]``
    the parent's pid), None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def proc_cmdline(pid: int) -> str | None:
    """``pid``'s command line, words joined by spaces; None when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def _cpu_s(pid: int) -> tuple[int, float] | None:
    """``pid``'s start time (clock ticks after boot) and the user + system CPU seconds it
    has used; None when it is gone."""
    fields = proc_stat(pid)
    if fields is None:
        return None
    return int(fields[19]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids.extend(int(x) for x in (task / "children").read_text().split())
    return kids


def _role(pid: int) -> str | None:
    """What a descendant is; None for the stack's own broker and redis-server."""
    cmd = proc_cmdline(pid)
    if cmd is None:
        return None
    if "kafka.Kafka" in cmd or "kafka.tools" in cmd or "redis-server" in cmd:
        return None
    if "SparkSubmit" in cmd:
        return "driver JVM"
    if "pyspark" in cmd and ("daemon" in cmd or "worker" in cmd):
        return "python workers"
    return "other"


class MemorySampler:
    """Samples the resident memory of a process and its descendants (the Python driver, the
    driver JVM, Spark's Python daemon and workers) every ``interval_s``; keeps the peak of
    the sum and each role's peak, and the CPU seconds each role used while sampled (a
    process's last sample: a Python worker that ends between two samples loses at most
    ``interval_s`` of its time).

    Args:
        root: the process whose tree is sampled (the "python driver"); this process by
            default (the benchmarks run the job in-process, the reliability suite does not).
        interval_s: time between samples.
        others: the roots of more trees to sample with it (a cluster's daemons).
    """

    def __init__(
        self, root: int | None = None, interval_s: float = 0.25, others: Sequence[int] = ()
    ) -> None:
        self.root = os.getpid() if root is None else root
        self.roots = [self.root, *others]
        self.interval_s = interval_s
        self.peak_total = 0
        self.peak_by_role: dict[str, int] = {}
        self.samples = 0
        # by (pid, its start time): a pid the kernel reuses is another process
        self._cpu_first: dict[tuple[int, int], float] = {}
        self._cpu_last: dict[tuple[int, int], tuple[str, float]] = {}
        #: (time.time(), each role's CPU seconds so far) at every sample
        self.timeline: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list[int]:
        seen, todo = [], list(self.roots)
        while todo:
            pid = todo.pop()
            seen.append(pid)
            todo.extend(_children(pid))
        return seen

    def role(self, pid: int) -> str | None:
        """What ``pid`` of the tree is, its memory summed under that name; None: not counted."""
        return "python driver" if pid == self.root else _role(pid)

    def sample(self) -> None:
        by_role: dict[str, int] = {}
        for pid in self._tree():
            rss = _status(pid).get("VmRSS", 0)
            role = self.role(pid)
            if role is None:
                continue
            by_role[role] = by_role.get(role, 0) + rss
            used = _cpu_s(pid)
            if used is not None:
                key, cpu = (pid, used[0]), used[1]
                if not self.samples:  # what it had used before the sampling began
                    self._cpu_first[key] = cpu
                self._cpu_last[key] = (role, cpu)
        self.samples += 1
        self.timeline.append((time.time(), self.cpu_by_role()))
        self.peak_total = max(self.peak_total, sum(by_role.values()))
        for role, rss in by_role.items():
            self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def as_dict(self) -> dict[str, Any]:
        gib = 1 << 30
        return {
            "peak_total_gib": round(self.peak_total / gib, 3),
            "peak_by_role_gib": {
                k: round(v / gib, 3) for k, v in sorted(self.peak_by_role.items())
            },
            "samples": self.samples,
            "cpu_s_by_role": self.cpu_by_role(),
        }

    def cpu_between(self, start: float, end: float) -> dict[str, float] | None:
        """Each role's CPU seconds between the samples nearest the epoch times ``start`` and
        ``end`` (a role's processes started after ``start`` count from zero); None when
        either falls outside the sampled time."""
        if not self.timeline or not (
            self.timeline[0][0] - self.interval_s <= start <= end
            and end <= self.timeline[-1][0] + self.interval_s
        ):
            return None
        first = min(self.timeline, key=lambda t: abs(t[0] - start))[1]
        last = min(self.timeline, key=lambda t: abs(t[0] - end))[1]
        return {k: round(v - first.get(k, 0.0), 1) for k, v in last.items()}

    def cpu_by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, (role, cpu) in self._cpu_last.items():
            out[role] = out.get(role, 0.0) + cpu - self._cpu_first.get(key, 0.0)
        return {k: round(v, 1) for k, v in sorted(out.items())}


# -- the machine and results --------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """Cores, memory, load and versions, recorded with every result."""
    versions: dict[str, str] = {"python": platform.python_version()}
    for module in ("pyspark", "onnxruntime", "numpy", "kafka", "redis"):
        with contextlib.suppress(Exception):
            versions[module] = __import__(module).__version__
    with contextlib.suppress(Exception):
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
        versions["java"] = (java.stderr or java.stdout).splitlines()[0]
    # The code measured, quoted with its figures ("-dirty": uncommitted changes beside it).
    commit = "unknown"
    with contextlib.suppress(Exception):
        git = ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=7"]
        commit = subprocess.run(git, capture_output=True, text=True, check=True).stdout.strip()
    mem_kib = 0
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "commit": commit,
        "platform": platform.platform(),
        "cpu": cpu,
        "cores_allowed": len(os.sched_getaffinity(0)),
        "cores_online": os.cpu_count(),
        "memory_gib": round(mem_kib / (1 << 20), 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


def save(name: str, payload: dict[str, Any], out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"saved {path}", file=sys.stderr)
    return path


def percentile(values: list[float] | np.ndarray, q: float) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.percentile(arr, q)) if arr.size else float("nan")

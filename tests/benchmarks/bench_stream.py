"""The stream job against its baselines, on a real broker and Redis, in one run.

Run::

    .venv/bin/python tests/benchmarks/bench_stream.py [--copies 10] [--parts throughput,latency,scoring]

Uses the broker and Redis named by ``PROGNOS_KAFKA_BOOTSTRAP``/``PROGNOS_REDIS_URL``, else
starts private ones (free ports, temporary state). Saves ``bench-results/stream.json``.

Parts (each prints its table):

``throughput``
    C-MAPSS FD001 replicated ``--copies`` times (see :mod:`tests.benchmarks.common`) is
    pre-loaded into a 2-partition topic; then the stream job (``StreamJob`` as shipped:
    local[2], 1 s processing-time trigger, one query), the hand-batched process and the
    naive consumer each drain it into a fresh key prefix. Throughput = readings / (time
    from the first read to the write of the last window that can close): the processes
    are timed from their first poll (after loading the model and connecting), the job
    from its first trigger (its checks, plan and query start before it are recorded as
    ``startup_s``, and the rate with them as ``rate_with_startup``). "Can close" is the same
    for all three: window end <= greatest event time - watermark (one window). Every run
    does the same work, and the program fails if one did not: the same scored windows
    (device and window end; the expected count only ends the wait for the job) and the
    same alert events (ids read back from Redis; the baselines write through the job's
    sink and alert policy). The job drains the topic 2 +
    ``--warm-runs`` times in one session, each time with a fresh checkpoint and key
    prefix: cold is run 1 (the session's first query, with code generation, JIT
    compilation, the Python workers' start-up and the model load); run 2 (the JVM still
    compiling) is shown and left out; warm, what a long-running job sustains, is the run
    of median rate among the rest. The hand-batched process runs 1 + ``--warm-runs``
    times, alternating with the job's (cold: run 1, warm: the median of the rest), the
    naive consumer once after them. During each job run the resident memory of the
    driver JVM, the Python driver and Spark's Python workers is sampled, and each
    micro-batch's time in Redis round trips (``redis_ms``; and the whole sink's,
    with the alert policy, ``sink_ms``) is set against its ``triggerExecution`` time.
``latency``
    a producer thread offers ``--latency-rate`` readings/s for ``--latency-devices``
    devices, event time advancing 600 s per cycle (so a 3000 s window closes every few
    wall seconds). Only what is sent from ``--latency-warmup`` seconds after the job is
    caught up (a result is readable and the last batch read at most 2 s of offered load)
    counts (start-up is the throughput part's business). Latency of a window = when its ``P:device:<id>`` ``window_end`` is
    readable in Redis (polled every 5 ms, a wide fleet's 500 watched devices every 100 ms)
    minus when the device's reading that closed it (the first with event time >= window
    end + watermark) was sent; a window the watermark closed before that reading was read
    counts from its cycle's first reading. The engine floor, in the same
    run and with the same trigger: a query that only reads the topic and sets one Redis
    key per batch; its latency = key readable - each record's Kafka timestamp.
``scoring``
    the scoring stage (``mapInArrow`` with :func:`stream.scoring.score_partitions`) alone
    over a cached DataFrame of sequences in one partition (one Python worker, one ONNX
    thread, Arrow batches of 10,000), next to a bare onnxruntime session (one thread) over
    the same normalised batches (in parts of ``CPU_CHUNK_ROWS`` rows, as the scorer runs
    them), and ``score_batch`` in-process (the stage's Python work without Spark).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from stream.storage import Location

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from stream.contract import Keys
from tests.benchmarks import baselines
from tests.benchmarks.common import (
    BATCHED,
    BATCHED_WARM,
    CYCLE_S,
    JOB_COLD,
    JOB_WARM,
    NAIVE,
    ROOT,
    MemorySampler,
    cmapss_table,
    expected_scored,
    new_topic,
    percentile,
    publish,
    run_name,
    save,
    stack,
    workload,
)


def spark_session() -> Any:
    from dataclasses import replace

    from deploy.spark import spark_session as session_with_jars
    from stream.session import SparkConfig

    # PROGNOS_SPARK_CONF's settings apply (an event log for a profile, say), with the
    # benchmark's own on top.
    config = SparkConfig.from_env(app_name="prognos-bench", ui=False)
    extra = {**config.extra, "spark.sql.streaming.numRecentProgressUpdates": "1000"}
    return session_with_jars(replace(config, extra=extra))


def stream_config(
    bootstrap: str, redis_url: str, topic: str, prefix: str, ckpt: Location, **kw: Any
):
    from dataclasses import replace

    from ingest.config import KafkaConfig
    from stream.config import StreamConfig

    kafka = KafkaConfig.from_env({"PROGNOS_KAFKA_BOOTSTRAP": bootstrap, "PROGNOS_TOPIC": topic})
    base = StreamConfig.from_env({}, redis_url=redis_url, key_prefix=prefix, checkpoint=ckpt, **kw)
    return replace(base, kafka=kafka)


def measured_job(spark: Any, config: Any) -> Any:
    """A StreamJob that also keeps each micro-batch's sink and scoring times."""
    from stream.job import StreamJob

    class MeasuredJob(StreamJob):
        def __init__(self, *a: Any) -> None:
            super().__init__(*a)
            self.batches: list[dict[str, Any]] = []
            self.windows: set[tuple[str, int]] = set()
            write = self.sink.write

            def recorded(windows: Any) -> Any:
                windows = list(windows)
                self.windows.update((w.device_id, w.window_end_ms) for w in windows)
                return write(windows)

            self.sink.write = recorded  # type: ignore[method-assign]

        def write_batch(self, batch: Any, batch_id: int) -> None:
            started = time.perf_counter()
            super().write_batch(batch, batch_id)
            done = time.perf_counter()
            with self.progress.lock:
                m = self.metrics
                self.batches.append(
                    {
                        "batch_id": batch_id,
                        "windows": m.windows_scored,
                        "sink_ms": m.sink_ms,
                        "redis_ms": m.redis_ms,
                        "scoring_ms": m.scoring_ms,
                        "foreach_ms": (done - started) * 1000.0,
                        "done": done,
                    }
                )

    return MeasuredJob(spark, config)


# -- throughput -----------------------------------------------------------------------------------
def _epoch(progress: dict[str, Any]) -> float:
    """When a progress report's trigger started, Unix seconds."""
    return datetime.fromisoformat(progress["timestamp"].replace("Z", "+00:00")).timestamp()


def run_prognos(
    spark: Any,
    bootstrap: str,
    redis_url: str,
    topic: str,
    expected: int,
    total: int,
    name: str = JOB_COLD,
    model: Path | None = None,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """One drain of ``topic`` by the job (its model ``model``, else the default one), its
    checkpoint in ``checkpoint`` (a URI: on a cluster's HDFS), else a temporary folder."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    # RocksDB maintenance may still write into a stopped query's checkpoint: cleanup is
    # best effort.
    with tempfile.TemporaryDirectory(
        prefix="prognos-bench-ckpt-", ignore_cleanup_errors=True
    ) as ckpt:
        where = checkpoint or Path(ckpt)
        config = stream_config(bootstrap, redis_url, topic, prefix, where, model_path=model)
        job = measured_job(spark, config)
        with MemorySampler() as memory:
            started_epoch, started = time.time(), time.perf_counter()
            job.start()
            last_count, last_change = 0, time.perf_counter()
            shown = started
            while True:
                time.sleep(0.2)
                for q in job.queries:
                    if q.exception() is not None:
                        raise RuntimeError(str(q.exception()))
                count = job.metrics.windows_scored_total
                if time.perf_counter() - shown > 10:
                    shown = time.perf_counter()
                    lp = job.queries[0].lastProgress or {}
                    print(
                        f"  {shown - started:5.0f}s: batch {lp.get('batchId')}, "
                        f"{count:,}/{expected:,} windows",
                        file=sys.stderr,
                    )
                if count != last_count:
                    last_count, last_change = count, time.perf_counter()
                if expected and count >= expected:
                    break
                if not expected and _read(job) >= total:
                    break  # nothing to score (a run too short for K windows): all read
                idle = time.perf_counter() - last_change
                lp = job.queries[0].lastProgress or {}
                drained = lp and int(lp.get("numInputRows", 1)) == 0 and count
                if (drained and idle > 20) or idle > 600:
                    print(
                        f"prognos: stopped waiting at {count}/{expected} windows", file=sys.stderr
                    )
                    break
            # The batch that wrote the last window reports its progress after its sink.
            deadline = time.perf_counter() + 30
            while _read(job) < total and time.perf_counter() < deadline:
                time.sleep(0.2)
            job.record_progress()
            progress = list(job.queries[0].recentProgress)
            job.stop()
        last_write = max(
            (b["done"] for b in job.batches if b["windows"] or not expected),
            default=time.perf_counter(),
        )
        # Timed from the first trigger, as the processes are from their first poll (after
        # their model load and connection): the job's checks, plan and query start before
        # it are its start-up, kept beside the figure.
        first_trigger = started + (_epoch(progress[0]) - started_epoch) if progress else started
        seconds = last_write - first_trigger
    batches = [b for b in job.batches]
    timed = [
        p for p in progress if int(p.get("numInputRows", 0)) > 0 or p["durationMs"].get("addBatch")
    ]
    trigger_ms = [p["durationMs"].get("triggerExecution", 0) for p in timed]
    durations: dict[str, int] = {}
    for p in timed:
        for key, value in p["durationMs"].items():
            durations[key] = durations.get(key, 0) + int(value)
    sink_ms = sum(b["sink_ms"] for b in batches)
    redis_ms = sum(b["redis_ms"] for b in batches)
    score_ms_total = sum(b["scoring_ms"] for b in batches)
    per_batch_share = [
        b["redis_ms"] / t
        for b, t in zip(batches[-len(trigger_ms) :], trigger_ms, strict=False)
        if t
    ]
    rows_scored = job.metrics.windows_scored_total
    # Steady state: from the end of the first batch that read data (start-up, planning
    # and code generation are in it) to the last write, over the readings read after it.
    first = next((i for i, p in enumerate(progress) if int(p.get("numInputRows", 0)) > 0), None)
    steady = None
    t_first = first_trigger
    if first is not None and first + 1 < len(progress):
        after = sum(int(p.get("numInputRows", 0)) for p in progress[first + 1 :])
        t_first = job.batches[0]["done"] if job.batches else started
        if after and last_write > t_first:
            steady = round(after / (last_write - t_first), 1)
    steady_epoch = [round(started_epoch + t - started, 3) for t in (t_first, last_write)]
    drain_epoch = [round(started_epoch + t - started, 3) for t in (first_trigger, last_write)]
    return {
        "name": name,
        "prefix": prefix,
        "scored": job.windows,
        "read": sum(int(p.get("numInputRows", 0)) for p in progress),
        "steady_rate": steady,
        "progress": [
            {
                "batch": p["batchId"],
                "rows": p.get("numInputRows"),
                "ms": p["durationMs"],
            }
            for p in progress
        ],
        "readings": total,
        "windows_scored": rows_scored,
        "alerts": job.metrics.alerts_total,
        "seconds": round(seconds, 3),
        "rate": round(total / seconds, 1),
        "startup_s": round(first_trigger - started, 3),
        "rate_with_startup": round(total / (last_write - started), 1),
        "dropped_by_watermark": job.metrics.dropped_by_watermark_total,
        "batches": len(timed),
        "duration_ms_sum": durations,
        "sink_ms_sum": round(sink_ms, 1),
        "redis_ms_sum": round(redis_ms, 1),
        # The Redis round trips' share (figure 5), and the whole sink's: the alert policy
        # and building the commands as well.
        "sink_share": round(sink_ms / max(1, sum(trigger_ms)), 4),
        "trigger_ms_sum": int(sum(trigger_ms)),
        "redis_share": round(redis_ms / max(1, sum(trigger_ms)), 4),
        "redis_share_median_batch": round(float(np.median(per_batch_share)), 4)
        if per_batch_share
        else None,
        "alerts_per_s_in_sink": round(job.metrics.alerts_total / max(sink_ms / 1000, 1e-9), 1),
        "windows_per_s_in_sink": round(rows_scored / max(sink_ms / 1000, 1e-9), 1),
        "scoring_ms_sum": round(score_ms_total, 1),
        "memory": memory.as_dict(),
        # The CPU seconds each process used from the first trigger to the last write, and
        # in the steady batches (from the end of the first batch, as steady_rate).
        "cpu_s_in_drain": memory.cpu_between(*drain_epoch),
        "drain_epoch": drain_epoch,
        "cpu_s_steady": memory.cpu_between(*steady_epoch) if steady else None,
        "steady_epoch": steady_epoch if steady else None,
        "provider": job.metrics.provider,
    }


def _read(job: Any) -> int:
    """Readings the job's query has read so far (its progress reports)."""
    return sum(int(p.get("numInputRows", 0)) for p in job.queries[0].recentProgress)


def _median_run(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """A copy of the run of median rate among ``rows`` (an odd count), renamed ``name``,
    with the numbers of the runs it is the median of (``median_of``)."""
    ranked = sorted(rows, key=lambda r: r["rate"])
    median = ranked[len(ranked) // 2]
    return {**median, "name": name, "median_of": [r["run"] for r in rows]}


def _baseline_run(
    fn: Any,
    name: str,
    n: int,
    bootstrap: str,
    topic: str,
    redis_url: str,
    total: int,
    watermark: float,
) -> dict[str, Any]:
    """One run of a baseline process (:mod:`tests.benchmarks.baselines`) as a row."""
    print(f"running the {name} ...", file=sys.stderr)
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    r = fn(bootstrap, topic, redis_url, prefix, total, watermark)
    row = {k: v for k, v in asdict(r).items() if k != "windows"}
    return {
        "name": name,
        "run": n,
        "prefix": prefix,
        "scored": r.windows,
        **row,
        # Nothing scored (a run too short for K windows): timed to its last reading.
        "seconds": round(r.last_write_s or r.seconds, 3),
        "rate": round(r.readings / (r.last_write_s or r.seconds), 1),
    }


def check_same_work(rows: list[dict[str, Any]], redis_url: str) -> dict[str, Any]:
    """Fail loudly unless every run scored the same windows and raised the same alert events.

    Each row's ``scored`` (a set of (device, window end ms)) and ``prefix`` (where its alert
    events are in Redis) are compared with the first row's; both are then dropped from the
    rows (they are not figures), leaving ``windows_digest`` and ``alert_events``.
    """
    import hashlib

    import redis

    from stream.contract import Keys

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        events = {
            r["name"]: {f["event_id"] for _, f in client.xrange(Keys(r["prefix"]).alerts)}
            for r in rows
        }
    finally:
        client.close()
    reference = rows[0]
    problems = []
    for r in rows[1:]:
        missing = reference["scored"] - r["scored"]
        extra = r["scored"] - reference["scored"]
        if missing or extra:
            problems.append(
                f"{r['name']} scored {len(r['scored']):,} windows, {reference['name']} "
                f"{len(reference['scored']):,}: {len(missing)} missing, {len(extra)} extra "
                f"(e.g. {sorted(missing or extra)[:3]})"
            )
        if events[r["name"]] != events[reference["name"]]:
            problems.append(
                f"{r['name']} raised {len(events[r['name']])} alert events, "
                f"{reference['name']} {len(events[reference['name']])}: they differ"
            )
    if problems:
        raise SystemExit("the runs did not do the same work:\n  " + "\n  ".join(problems))
    same = {"windows": len(reference["scored"]), "alert_events": len(events[reference["name"]])}
    digest = hashlib.sha256(repr(sorted(reference["scored"])).encode()).hexdigest()[:16]
    for r in rows:
        r["alert_events"] = len(events[r["name"]])
        r["windows_digest"] = digest
        del r["scored"], r["prefix"]
    print(
        f"every run scored the same {same['windows']:,} windows and raised the same "
        f"{same['alert_events']:,} alert events",
        file=sys.stderr,
    )
    return same


def part_throughput(
    spark: Any,
    bootstrap: str,
    redis_url: str,
    copies: int,
    skip_naive: bool,
    warm_runs: int = 3,
) -> dict[str, Any]:
    from models.scorer import Scorer

    scorer = Scorer.load(ROOT / "models" / "default", providers="cpu")
    spec = scorer.metadata.spec
    k, _ = scorer.input_shape
    watermark = spec.window_seconds  # the job's default
    print(f"building the workload ({copies} x FD001) ...", file=sys.stderr)
    work = workload(copies)
    topic = new_topic(bootstrap, "e2e")
    pub = publish(bootstrap, topic, work)
    expected = expected_scored(work, spec.window_seconds, k, watermark)
    print(
        f"{len(work):,} readings of {len(work.device_names)} devices in {topic} "
        f"({pub:.1f}s); {expected:,} windows can close and be scored",
        file=sys.stderr,
    )
    # The job drains the topic 2 + warm_runs times in one session, a fresh checkpoint and
    # key prefix each time. Run 1 is cold (the session's first query: code generation, JIT
    # compilation, Python workers' start-up and model load). The JVM goes on compiling
    # after it: in one session the same drain took 12.4, 9.8, 9.3, 8.0 and 7.8 s. Run 2 is
    # shown and left out; warm, what a long-running job sustains, is the median of the
    # runs after it. The hand-batched process runs 1 + warm_runs times, run 1 cold
    # (imports, model file) and warm the median of the others, so warm is set against
    # warm. The two alternate (job, process, job, ...), so what else the machine does
    # meanwhile (the idle JVM's maintenance of its state stores, say) falls on both.
    job_runs: list[dict[str, Any]] = []
    batched_runs: list[dict[str, Any]] = []
    for n in range(1, warm_runs + 3):
        name = run_name(JOB_COLD, n) if n > 1 else JOB_COLD
        print(f"running the {name} ...", file=sys.stderr)
        run = run_prognos(spark, bootstrap, redis_url, topic, expected, len(work), name)
        job_runs.append({**run, "run": n})
        if n > warm_runs + 1:
            break
        name = run_name(BATCHED, n) if n > 1 else BATCHED
        batched_runs.append(
            _baseline_run(
                baselines.batched, name, n, bootstrap, topic, redis_url, len(work), watermark
            )
        )
    runs = [*job_runs, *batched_runs]
    if not skip_naive:
        runs.append(
            _baseline_run(
                baselines.naive, NAIVE, 1, bootstrap, topic, redis_url, len(work), watermark
            )
        )
    same = check_same_work(runs, redis_url)
    rows = [
        *job_runs,
        _median_run(job_runs[2:], JOB_WARM),
        *batched_runs,
        _median_run(batched_runs[1:], BATCHED_WARM),
        *runs[len(job_runs) + len(batched_runs) :],
    ]
    return {
        "topic": topic,
        "readings": len(work),
        "expected_windows": expected,
        "same_work": same,
        "rows": rows,
    }


# -- latency -------------------------------------------------------------------------------------
def name_of_device(u: int, devices: int) -> str:
    """The latency part's device names: ``LAT-001`` .. (wider fleets, wider numbers)."""
    return f"LAT-{u:03d}" if devices < 1000 else f"LAT-{u:06d}"


class _Fleet:
    """The offered load's readings: device ``u`` of ``devices`` replays FD001's engine
    ``(u - 1) % 100 + 1``, event time ``cycle_s`` per cycle from ``base``."""

    def __init__(self, devices: int, base: datetime, cycle_s: float) -> None:
        from ingest.codec import encode
        from ingest.schema import Reading

        table = cmapss_table()
        units = [table[table[:, 0] == u] for u in range(1, 101)]
        self.rows = [units[(u - 1) % 100] for u in range(1, devices + 1)]
        self.names = [name_of_device(u, devices) for u in range(1, devices + 1)]
        self.base = base
        self.cycle_s = cycle_s
        self._encode = encode
        self._reading = Reading

    def send_cycle(
        self, cycle: int, producer: Any, topic: str, watched: set[str]
    ) -> dict[str, float]:
        """Hand every device's reading of ``cycle`` to ``producer``; when each of the
        ``watched`` devices' was handed over (just after its ``send`` call)."""
        t = self.base + timedelta(seconds=cycle * self.cycle_s)
        sent_at: dict[str, float] = {}
        for name, rows in zip(self.names, self.rows, strict=True):
            row = rows[cycle % len(rows)]
            reading = self._reading(
                name,
                t,
                cycle,
                {**{f"s{i}": float(row[4 + i]) for i in range(1, 22)}, "cycle": float(row[1])},
                {f"setting{i}": float(row[1 + i]) for i in range(1, 4)},
            )
            producer.send(topic, key=name.encode(), value=self._encode(reading))
            if name in watched:
                sent_at[name] = time.time()
        return sent_at


def _offer(
    bootstrap: str,
    topic: str,
    devices: int,
    period: float,
    base: datetime,
    cycle_s: float,
    first_cycle: int,
    watched: set[str],
    sent: Any,
    results: Any,
    stop: Any,
) -> None:
    """The offered load's process: a cycle every ``period`` seconds until ``stop`` is set,
    each cycle's send times put on ``results`` (None last), ``sent`` counting readings."""
    from kafka import KafkaProducer

    producer = None
    try:
        fleet = _Fleet(devices, base, cycle_s)
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
        cycle = first_cycle - 1
        next_at = time.perf_counter()
        while not stop.is_set():
            cycle += 1
            started = time.time()
            own = fleet.send_cycle(cycle, producer, topic, watched)
            results.put((cycle, started, time.time() - started, own))
            with sent.get_lock():
                sent.value += devices
            next_at += period
            delay = next_at - time.perf_counter()
            if delay > 0:
                stop.wait(delay)
        producer.flush()
    finally:
        try:
            if producer is not None:
                producer.close()
        finally:
            results.put(None)  # the parent reads until this, whatever happened


class Offered:
    """The offered load: ``rate`` readings/s over ``devices`` devices (:class:`_Fleet`),
    from cycle ``first_cycle`` on, sent by a process of its own, as a fleet's readings come
    from outside the job (a thread of this process, which is also the Spark driver's
    Python process, held the interpreter lock for the second or two it takes to send a
    cycle, and the job's driver and the floor's waited for it). Remembers when each
    cycle's first reading was sent, how long the cycle took to send, and when each of the
    ``watched`` devices' readings was handed to the producer (just after its ``send``
    call). :meth:`preload` publishes the cycles before ``first_cycle`` at once (a history,
    so the devices have K windows before the offered load starts)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        devices: int,
        rate: float,
        base: datetime,
        cycle_s: float = CYCLE_S,
        first_cycle: int = 1,
        watched: Iterable[str] = (),
    ):
        import multiprocessing

        self.topic = topic
        self.devices = devices
        self.period = devices / rate
        self.base = base
        self.cycle_s = cycle_s
        self.first_cycle = first_cycle
        self.sent_at: dict[int, float] = {}
        self.send_s: dict[int, float] = {}
        self.preloaded = 0  # readings of the history (not in ``sent``)
        self.watched = set(watched)
        self.device_sent_at: dict[tuple[str, int], float] = {}
        context = multiprocessing.get_context("spawn")  # not a fork of the Spark driver
        self._sent = context.Value("q", 0)
        self._results = context.Queue()
        self._stop = context.Event()
        self._process = context.Process(
            target=_offer,
            args=(
                bootstrap,
                topic,
                devices,
                self.period,
                base,
                cycle_s,
                first_cycle,
                self.watched,
                self._sent,
                self._results,
                self._stop,
            ),
            daemon=True,
        )

    @property
    def sent(self) -> int:
        """Readings of the offered load sent so far."""
        return int(self._sent.value)

    def preload(self, bootstrap: str) -> None:
        """Cycles 1 .. first_cycle - 1 of every device, as fast as the broker takes them."""
        from kafka import KafkaProducer

        fleet = _Fleet(self.devices, self.base, self.cycle_s)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=50, batch_size=1 << 20, acks=1
        )
        for cycle in range(1, self.first_cycle):
            fleet.send_cycle(cycle, producer, self.topic, set())
            self.preloaded += self.devices
        producer.flush()
        producer.close()

    def start(self) -> Offered:
        self._process.start()
        return self

    def stop(self, timeout_s: float = 120.0) -> None:
        """Stop sending; take in every cycle's send times. Returns within ``timeout_s``
        whatever the process did (its failure is for :meth:`check`, after the callers have
        stopped their queries)."""
        import queue

        self._stop.set()
        if self._process.pid is None:  # never started
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                done = self._results.get(timeout=1)
            except queue.Empty:
                if not self._process.is_alive():
                    break  # died before its last message
                continue
            if done is None:
                break
            cycle, started, took, own = done
            self.sent_at[cycle] = started
            self.send_s[cycle] = took
            self.device_sent_at.update({(d, cycle): at for d, at in own.items()})
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)

    def check(self) -> None:
        """Fail the benchmark if the offered load's process failed (its error is on
        stderr): its figures would not be of the offered load."""
        if self._process.exitcode not in (0, None):
            raise SystemExit(
                f"the offered load's process exited with code {self._process.exitcode} "
                f"after {self.sent:,} readings: see its error above (is the broker up?)"
            )


def _warm(ready: Any, settle_s: float, timeout_s: float = 300.0) -> float:
    """Wait until ``ready()`` (the query's start-up, planning, code generation and the
    backlog they left are behind it), then ``settle_s`` more; returns when measuring starts."""
    deadline = time.monotonic() + timeout_s
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    if time.monotonic() >= deadline:
        print(f"  still not caught up after {timeout_s:.0f}s; measuring anyway", file=sys.stderr)
    time.sleep(settle_s)
    return time.time()


def _wait_first_batch(query: Any, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while query.lastProgress is None and time.monotonic() < deadline:
        time.sleep(0.1)


def latency_floor(spark: Any, bootstrap: str, redis_url: str, args: Any) -> dict[str, Any]:
    import redis

    topic = new_topic(bootstrap, "floor")
    key = f"bench-floor-{uuid.uuid4().hex[:6]}"
    stamps: dict[int, list[int]] = {}
    client = redis.Redis.from_url(redis_url)

    def write(batch: Any, batch_id: int) -> None:
        stamps[batch_id] = [
            int(r[0].timestamp() * 1000) for r in batch.select("timestamp").collect()
        ]
        client.set(key, batch_id)

    seen: dict[int, float] = {}
    stop = threading.Event()

    def watch() -> None:
        watcher = redis.Redis.from_url(redis_url)
        while not stop.is_set():
            value = watcher.get(key)
            if value is not None:
                seen.setdefault(int(value), time.time())
            time.sleep(0.002)

    with tempfile.TemporaryDirectory(
        prefix="prognos-bench-floor-", ignore_cleanup_errors=True
    ) as ckpt:
        query = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", topic)
            .option("startingOffsets", "latest")
            .load()
            .writeStream.foreachBatch(write)
            .trigger(processingTime="1000 milliseconds")
            .option("checkpointLocation", ckpt)
            .start()
        )
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        # event time runs 600 s a cycle, 6,000 s a second at 200 readings/s: start far enough
        # back that it stays behind the clock-skew limit (now + 1 day) for the whole run
        base = datetime.now(UTC) - timedelta(days=30)
        offered = Offered(bootstrap, topic, args.latency_devices, args.latency_rate, base).start()
        measure_from = _warm(lambda: bool(seen), args.latency_warmup)
        time.sleep(args.latency_seconds)
        offered.stop()
        time.sleep(3)
        stop.set()
        query.stop()
    client.close()
    offered.check()
    samples = [
        seen[b] * 1000 - ts
        for b, tss in stamps.items()
        if b in seen
        for ts in tss
        if ts >= measure_from * 1000
    ]
    return _latency_row("engine floor (Kafka -> one Redis key per batch)", samples, offered.sent)


def latency_prognos(spark: Any, bootstrap: str, redis_url: str, args: Any) -> dict[str, Any]:
    import redis

    from models.scorer import Scorer

    spec = Scorer.load(ROOT / "models" / "default", providers="cpu").metadata.spec
    window_ms = int(spec.window_seconds * 1000)
    watermark_s = spec.window_seconds
    topic = new_topic(bootstrap, "latency")
    prefix = f"bench-lat-{uuid.uuid4().hex[:6]}"
    devices = [name_of_device(u, args.latency_devices) for u in range(1, args.latency_devices + 1)]
    # A wide fleet's hashes are polled for 500 devices spread over it, 0.2 ms a device
    # apart (500 devices every 100 ms, 100 every 20 ms), each poll one Lua call: a poll of
    # them all, or pipelined HGETs back to back, took the benchmark process most of a core
    # beside the job it measures. A result is seen up to one interval late (the figures'
    # resolution).
    devices = devices[:: max(1, len(devices) // 500)]
    interval_s = max(0.005, 0.0002 * len(devices))
    cycle_s = getattr(args, "latency_cycle_s", CYCLE_S)
    preload = getattr(args, "latency_preload_cycles", 0)
    ready: dict[tuple[str, int], float] = {}
    stop = threading.Event()

    def watch() -> None:
        client = redis.Redis.from_url(redis_url)
        poll = client.register_script(
            "local out = {} for i, key in ipairs(KEYS) do "
            "out[i] = redis.call('HGET', key, 'window_end') end return out"
        )
        keys = [Keys(prefix).device(d) for d in devices]
        last: dict[str, int] = {}
        next_at = time.perf_counter()
        while not stop.is_set():
            values = poll(keys=keys)  # None where a device has no hash yet
            now = time.time()
            for d, value in zip(devices, values, strict=True):
                if value is None:
                    continue
                end = int(value)
                prev = last.get(d)
                if prev != end:
                    # every window up to this end is now readable (a batch may hold two)
                    e = end
                    while prev is not None and e > prev:
                        ready.setdefault((d, e), now)
                        e -= window_ms
                    if prev is None:
                        ready.setdefault((d, e), now)
                    last[d] = end
            next_at += interval_s
            time.sleep(max(0.0, next_at - time.perf_counter()))

    with tempfile.TemporaryDirectory(
        prefix="prognos-bench-lat-", ignore_cleanup_errors=True
    ) as ckpt:
        config = stream_config(
            bootstrap, redis_url, topic, prefix, Path(ckpt), starting_offsets="earliest"
        )
        job = measured_job(spark, config)
        job.start()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        # event time runs 600 s a cycle, 6,000 s a second at 200 readings/s: start far enough
        # back that it stays behind the clock-skew limit (now + 1 day) for the whole run
        base = datetime.now(UTC) - timedelta(days=30)
        base = base.replace(microsecond=0)
        offered = Offered(
            bootstrap,
            topic,
            args.latency_devices,
            args.latency_rate,
            base,
            cycle_s=cycle_s,
            first_cycle=preload + 1,
            watched=devices,
        )
        if preload:
            print(f"  preloading {preload} cycles of history ...", file=sys.stderr)
            offered.preload(bootstrap)
        offered.start()
        main = job.queries[0]

        def caught_up() -> bool:
            # a result is out and the last batch read no more than ~2 s of offered load:
            # the backlog of the start-up is worked off
            progress = main.lastProgress or {}
            return bool(ready) and int(progress.get("numInputRows", 1 << 30)) <= 2 * rate

        rate = args.latency_rate
        measure_from = _warm(caught_up, args.latency_warmup, timeout_s=360)
        lag_start = offered.preloaded + offered.sent - _processed(main)
        time.sleep(args.latency_seconds)
        lag_end = offered.preloaded + offered.sent - _processed(main)
        measured_until = time.time()
        offered.stop()
        time.sleep(3)
        stop.set()
        profiles = {
            q.name or f"query{i}": batch_profile(q, measure_from, measured_until)
            for i, q in enumerate(job.queries)
        }
        # each batch's start and when its writes were readable (before its offsets commit)
        batches = sorted(
            (
                _epoch(p),
                _epoch(p)
                + (
                    p["durationMs"].get("triggerExecution", 0)
                    - p["durationMs"].get("commitOffsets", 0)
                )
                / 1000,
            )
            for p in main.recentProgress
        )
        job.stop()
    offered.check()
    base_s = base.timestamp()
    samples = []
    from_cycle = []
    fallbacks = 0
    for (device, end_ms), at in ready.items():
        # the first cycle whose event time passes the window end by the watermark
        cycle = int(np.ceil((end_ms / 1000 + watermark_s - base_s) / cycle_s))
        started = offered.sent_at.get(cycle)
        if started is None or started < measure_from:
            continue
        # From the device's own reading (when it was handed to the producer), as the floor
        # measures from each record's timestamp: a cycle takes a while to send, and the
        # device's reading goes out that much after the cycle's first. A reading sent after
        # the batch that made the window readable (the last one written by then) started
        # was not in it (the watermark, moved by other devices' readings, closed the
        # window): from the cycle's first.
        closing = max((start for start, written in batches if written <= at), default=at)
        own = offered.device_sent_at.get((device, cycle))
        if own is None or own > closing:
            own, fallbacks = started, fallbacks + 1
        samples.append((at - own) * 1000)
        from_cycle.append((at - started) * 1000)
    row = _latency_row(
        "prognos stream job (window closed -> device hash readable)", samples, offered.sent
    )
    row["windows"] = len(samples)
    # every sample from its cycle's first reading (an upper bound: the wide part's producer
    # takes a second or more to send a cycle)
    row["p99_from_cycle_start_ms"] = round(percentile(from_cycle, 99), 1)
    row["from_cycle_start_samples"] = fallbacks
    measured = [s for c, s in offered.send_s.items() if offered.sent_at[c] >= measure_from]
    row["cycle_send_s"] = [round(min(measured), 2), round(max(measured), 2)] if measured else None
    # lag = readings sent - readings of the main query's finished batches; growing = not
    # sustained. The load comes a cycle at a time (every device's reading, sent within a
    # second or two), so up to a cycle's readings can be in a batch still running when the
    # lag is read.
    row["lag_start"], row["lag_end"] = lag_start, lag_end
    row["kept_up"] = lag_end <= max(lag_start, 2 * args.latency_rate, offered.devices)
    row["batch_profile"] = profiles
    return row


def batch_profile(query: Any, since: float, until: float) -> dict[str, Any]:
    """Mean of each ``durationMs`` part over a query's batches that started in [since, until].

    Spark's parts: ``latestOffset`` and ``queryPlanning`` before the batch runs,
    ``addBatch`` (running it: the plan and the sink), ``walCommit``/``commitOffsets``
    (the checkpoint's logs) and ``triggerExecution`` (the whole trigger).
    """
    picked = []
    for p in query.recentProgress:
        started = _epoch(p)
        if since <= started <= until:
            picked.append(p)
    parts: dict[str, list[float]] = {}
    for p in picked:
        for name, ms in p.get("durationMs", {}).items():
            parts.setdefault(name, []).append(float(ms))
    return {
        "batches": len(picked),
        "no_data_batches": sum(1 for p in picked if not int(p.get("numInputRows", 0))),
        "rows_per_batch": (
            round(sum(int(p.get("numInputRows", 0)) for p in picked) / len(picked), 1)
            if picked
            else 0.0
        ),
        "mean_ms": {name: round(sum(v) / len(v), 1) for name, v in sorted(parts.items())},
        # each batch: when it started (s after ``since``), its readings, its whole trigger (ms)
        "timeline": [
            [
                round(_epoch(p) - since, 2),
                int(p.get("numInputRows", 0)),
                int(p.get("durationMs", {}).get("triggerExecution", 0)),
            ]
            for p in picked
        ],
    }


def _processed(query: Any) -> int:
    return sum(int(p.get("numInputRows", 0)) for p in query.recentProgress)


def _latency_row(name: str, samples: list[float], sent: int) -> dict[str, Any]:
    return {
        "name": name,
        "readings_sent": sent,
        "samples": len(samples),
        "p50_ms": round(percentile(samples, 50), 1),
        "p99_ms": round(percentile(samples, 99), 1),
        "max_ms": round(max(samples), 1) if samples else None,
    }


# -- scoring -------------------------------------------------------------------------------------
def part_scoring(spark: Any, rows: int, repeats: int = 3) -> dict[str, Any]:
    import onnxruntime as ort
    import pandas as pd

    from models.features import normalise
    from models.scorer import CPU_CHUNK_ROWS, Scorer
    from stream import scoring, sequence

    scorer = Scorer.load(ROOT / "models" / "default", providers="cpu")
    k, f = scorer.input_shape
    norm = scorer.metadata.norm
    rng = np.random.default_rng(0)
    raw = np.asarray(norm.mean) + np.asarray(norm.scale) * rng.normal(size=(rows, k, f))
    frame = pd.DataFrame(
        {
            "device_id": [f"D{i % 1000:04d}" for i in range(rows)],
            "window_start_ms": np.arange(rows, dtype=np.int64),
            "window_end_ms": np.arange(rows, dtype=np.int64) + 1,
            "n_readings": np.full(rows, 5, dtype=np.int64),
            # packed as the window operator emits them (see stream.sequence.output_schema)
            "sequence": [
                row.tobytes()
                for row in normalise(raw, norm).astype(sequence.SEQUENCE_DTYPE).reshape(rows, -1)
            ],
            "last_window": [
                row.tobytes() for row in raw[:, -1, :].astype(sequence.LAST_WINDOW_DTYPE)
            ],
        }
    )
    batch = int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch") or 10_000)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    bare = ort.InferenceSession(str(scorer.path), options, providers=["CPUExecutionProvider"])
    name_in, name_out = bare.get_inputs()[0].name, bare.get_outputs()[0].name
    z = normalise(raw, norm)
    # Each Arrow batch's rows in parts of CPU_CHUNK_ROWS, as the Scorer runs them (the
    # fastest way to call onnxruntime with this model on one thread): the baseline is the
    # best bare call, so the figure is what Spark and the stage's Python add.
    chunks = [
        z[j : min(j + CPU_CHUNK_ROWS, i + batch, rows)]
        for i in range(0, rows, batch)
        for j in range(i, min(i + batch, rows), CPU_CHUNK_ROWS)
    ]
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    frames = table.to_batches(max_chunksize=batch)
    # Through a Parquet file: createDataFrame would ship the ~150 MB of rows inside one task
    # from the driver's 1 GiB heap (an OutOfMemoryError after the other parts had run).
    folder = tempfile.mkdtemp(prefix="prognos-bench-scoring-")
    frame.to_parquet(f"{folder}/rows.parquet", index=False)
    df = spark.read.schema(sequence.output_schema()).parquet(folder).coalesce(1).cache()
    # The three are measured in turn within each repeat (best of each kept): the bare
    # session's rate moved 20,000-38,000 rows/s between runs on this machine, and measured
    # after all of Spark's repeats it moved the ratio with it (0.46-0.72).
    spark_s, bare_s, frame_s = [], [], []
    try:
        df.count()
        spec = scoring.ScoringSpec(str(scorer.path), scorer.metadata.sha256, "cpu")
        stage = df.mapInArrow(scoring.score_partitions(spec), scoring.output_schema())
        stage.write.format("noop").mode("overwrite").save()  # warm: worker, session, JIT
        for _ in range(repeats):
            started = time.perf_counter()
            stage.write.format("noop").mode("overwrite").save()
            spark_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            for c in chunks:
                bare.run([name_out], {name_in: c})
            bare_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            for fr in frames:
                scoring.score_batch(scorer, fr)
            frame_s.append(time.perf_counter() - started)
    finally:
        df.unpersist()
        shutil.rmtree(folder, ignore_errors=True)
    spark_rate = rows / min(spark_s)
    bare_rate = rows / min(bare_s)
    return {
        "rows": rows,
        "arrow_batch": batch,
        "threads": 1,
        "spark_stage_rows_per_s": round(spark_rate, 1),
        "score_batch_in_process_rows_per_s": round(rows / min(frame_s), 1),
        "bare_onnxruntime_rows_per_s": round(bare_rate, 1),
        "ratio": round(spark_rate / bare_rate, 4),
    }


# -- main ----------------------------------------------------------------------------------------
def part_latency(spark: Any, bootstrap: str, redis_url: str, args: Any) -> dict[str, Any]:
    print("latency: engine floor ...", file=sys.stderr)
    floor = latency_floor(spark, bootstrap, redis_url, args)
    print("latency: stream job ...", file=sys.stderr)
    job = latency_prognos(spark, bootstrap, redis_url, args)
    return {
        "rate": args.latency_rate,
        "devices": args.latency_devices,
        "seconds": args.latency_seconds,
        "rows": [job, floor],
        "p99_ratio": round(job["p99_ms"] / floor["p99_ms"], 2),
        "p50_ratio": round(job["p50_ms"] / floor["p50_ms"], 2),
    }


def print_tables(result: dict[str, Any]) -> None:
    t = result.get("throughput")
    if t:
        print(
            f"\nend-to-end drain of {t['readings']:,} readings ({t['expected_windows']:,} windows can close)\n"
        )
        print("| run | readings/s | seconds | start-up s (not counted) | windows scored | alerts |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for r in t["rows"]:
            startup = f"{r['startup_s']:.1f}" if "startup_s" in r else "-"
            print(
                f"| {r['name']} | {r['rate']:,.0f} | {r['seconds']:.1f} | {startup} "
                f"| {r['windows_scored']:,} | {r['alerts']:,} |"
            )
        p = next((r for r in t["rows"] if r["name"] == JOB_WARM), t["rows"][0])
        print(
            f"\n{p['name']}: Redis share of batch time {p['redis_share']:.1%} (whole sink "
            f"{p['sink_share']:.1%}; median batch "
            f"{p['redis_share_median_batch']}); peak memory {p['memory']['peak_total_gib']} GiB "
            f"{p['memory']['peak_by_role_gib']}; durationMs sums {p['duration_ms_sum']}"
        )
    lat = result.get("latency")
    if lat:
        print("\n| latency | samples | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |")
        for r in lat["rows"]:
            print(f"| {r['name']} | {r['samples']} | {r['p50_ms']} | {r['p99_ms']} |")
    s = result.get("scoring")
    if s:
        print(
            f"\nscoring stage in Spark {s['spark_stage_rows_per_s']:,.0f} rows/s, score_batch "
            f"in-process {s['score_batch_in_process_rows_per_s']:,.0f}, bare onnxruntime "
            f"{s['bare_onnxruntime_rows_per_s']:,.0f} (ratio {s['ratio']:.2f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="JSON path (bench-results/stream.json)")
    parser.add_argument("--parts", default="throughput,latency,scoring")
    parser.add_argument("--copies", type=int, default=4, help="FD001 copies (20,631 readings each)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--warm-runs", type=int, default=3, help="runs whose median is the warm rate (odd)"
    )
    parser.add_argument("--latency-rate", type=float, default=200.0, help="readings/s offered")
    parser.add_argument("--latency-devices", type=int, default=20)
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument(
        "--latency-warmup", type=float, default=5.0, help="seconds after the first result"
    )
    parser.add_argument("--scoring-rows", type=int, default=20_000)
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))

    import logging

    logging.basicConfig(level=logging.WARNING)
    result: dict[str, Any] = {}
    with stack() as (bootstrap, redis_url):
        started = time.perf_counter()
        spark = spark_session()
        result["spark_start_s"] = round(time.perf_counter() - started, 1)
        out = Path(args.out) if args.out else None
        steps = [
            (
                "throughput",
                lambda: part_throughput(
                    spark, bootstrap, redis_url, args.copies, args.skip_naive, args.warm_runs
                ),
            ),
            ("latency", lambda: part_latency(spark, bootstrap, redis_url, args)),
            ("scoring", lambda: part_scoring(restarted(), args.scoring_rows)),
        ]

        def restarted() -> Any:
            # The scoring part measures one stage, in a Spark session of its own: after the
            # streaming parts the same session still holds their leftovers (state stores,
            # idle Python workers, a driver JVM grown to ~1.5 GiB RSS), and the same
            # measurement gave 0.31-0.37 of the bare session where a fresh session gives
            # 0.46-0.63 (docs/performance.md).
            nonlocal spark
            if {"throughput", "latency"} & parts:
                spark.stop()
                spark = spark_session()
            return spark

        try:
            for name, fn in steps:
                if name not in parts:
                    continue
                print(f"{name} ...", file=sys.stderr)
                try:
                    result[name] = fn()
                except Exception as exc:  # keep the other parts' figures; say what failed
                    import traceback

                    traceback.print_exc()
                    result.setdefault("errors", {})[name] = repr(exc)
                save("stream", result, out)  # after each part: a later failure loses nothing
        finally:
            spark.stop()
    print_tables(result)
    return 1 if result.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())

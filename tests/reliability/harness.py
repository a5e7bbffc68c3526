"""The golden-run harness of the reliability suite (``../shared/RELIABILITY.md``).

A fixed recording (the first engines of NASA C-MAPSS FD001, replayed by :mod:`ingest.replay`
as fast as possible, 10 minutes of event time per cycle) is run once without faults: the
*golden run*. A fault run replays the same recording into a fresh topic, runs the stream job
as a real ``prognos stream`` process with its own checkpoint and key prefix, injects a fault
(SIGKILL of the job, of ``redis-server``, of the Kafka broker; a backlog after downtime), and
lets it finish. What reached Redis is then compared with the golden run:

* **lost**: golden alert events (by ``event_id``) missing from the run's alert stream;
* **duplicated**: events that appear more than once;
* **differing**: events whose content differs from the golden one, plus events the golden
  run does not have;
* **state**: devices whose latest state (``P:device:<id>``, ``P:risk``, ``P:open``) differs;
* **dead letters**: the recording's invalid records (:data:`BAD_EVERY`) must reach the
  dead-letter topic each once (read ``read_committed``, keyed by their bytes) and be
  counted once in ``P:deadletters``: lost, duplicated, and whether the counts differ.

Every job segment runs with ``--available-now``: it processes what the topic holds and exits
0, which is how the harness knows the job completed; it then also checks that the
checkpoint's last committed offsets are the topic's end offsets (every reading consumed).

Recovery time of one injected fault is measured from the injection to the first batch the
job committed after the faulty part was back (the job restarted, or the service restarted),
read from the commit files' modification times in the checkpoint. Times are reported, never
asserted.

Settings (:class:`ChaosSettings`) come from the environment: the CI variant by default,
``PROGNOS_CHAOS_LONG=1`` for the long one (``make chaos``), ``PROGNOS_CHAOS_SEED`` for the
seeded random choices (kill points, outages), which every report row records.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stream.contract import Keys

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench-results"


# -- settings ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChaosSettings:
    """How hard the suite pushes: the CI variant, or the long one (``PROGNOS_CHAOS_LONG=1``).

    Attributes:
        long: the long variant.
        seed: seed of every random choice (``PROGNOS_CHAOS_SEED``).
        engines: FD001 engines in the recording (units 1..engines): enough batches with
            alert events and dead letters for the job-kill fault's write kills and retries.
        max_offsets: ``--max-offsets-per-trigger`` of the golden and fault runs.
        watermark_s: ``--watermark``; ``None`` (the CI variant): the job's shipped default,
            one window. The long variant runs with three windows.
        kills: SIGKILLs of the stream job in one run.
        redis_outages: ``short`` (the sink's retries bridge it) or ``long`` (beyond them: the
            job must stop with an error, and the harness restarts it), in order. CI runs a
            short one only: a long one costs a restart of the job (a minute or more here).
        produce_kills, consume_kills: broker kills while producing and while the job reads.
        produce_seconds: how long the paced replay of the broker test takes.
        backlog_split: share of the recording's cycles the job sees before its downtime.
        backlog_max_offsets: ``--max-offsets-per-trigger`` of the restart after downtime.
        fuzz_seconds: the atheris run's time budget.
        job_timeout_s: longest a job segment may take before the harness gives up on it.
    """

    long: bool = False
    seed: int = 8
    engines: int = 20
    max_offsets: int = 500
    watermark_s: float | None = None
    kills: int = 3
    redis_outages: tuple[str, ...] = ("short",)
    produce_kills: int = 1
    consume_kills: int = 1
    produce_seconds: float = 6.0
    backlog_split: float = 0.25
    backlog_max_offsets: int = 400
    fuzz_seconds: int = 20
    job_timeout_s: float = 480.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ChaosSettings:
        env = os.environ if env is None else env
        long = (env.get("PROGNOS_CHAOS_LONG") or "0").lower() not in ("", "0", "false", "no")
        seed = int(env.get("PROGNOS_CHAOS_SEED") or 8)
        if not long:
            return cls(seed=seed)
        return cls(
            long=True,
            seed=seed,
            engines=40,
            max_offsets=1000,
            watermark_s=9000.0,
            kills=4,
            redis_outages=("short", "long", "short"),
            produce_kills=2,
            consume_kills=2,
            produce_seconds=30.0,
            backlog_split=0.2,
            backlog_max_offsets=500,
            fuzz_seconds=300,
            job_timeout_s=1200.0,
        )

    def rng(self, name: str) -> random.Random:
        """A random source of its own per fault, so one fault's draws do not shift another's."""
        return random.Random(f"{self.seed}:{name}")

    @property
    def test_timeout_s(self) -> int:
        """pytest-timeout for one fault test (several job segments)."""
        return int(self.job_timeout_s * 4)


# -- the recording -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    """A C-MAPSS file with some of FD001's engines (``train_FD001.txt`` in its own folder).

    Attributes:
        path: the file; named like the original so devices are ``FD001-<unit>``.
        engines: units 1..engines.
        readings: its rows (one reading each).
        first_cycle, last_cycle: the cycles it covers.
    """

    path: Path
    engines: int
    readings: int
    first_cycle: int
    last_cycle: int

    @property
    def event_span_s(self) -> float:
        from ingest.replay import CMAPSS_CYCLE_S

        return (self.last_cycle - self.first_cycle) * CMAPSS_CYCLE_S


def make_recording(
    cmapss_dir: Path, engines: int, out_dir: Path, cycles: tuple[int, int] | None = None
) -> Recording:
    """Write the rows of units 1..``engines`` (and ``cycles``, inclusive, if given)."""
    rows = []
    for line in (cmapss_dir / "train_FD001.txt").read_text().splitlines():
        parts = line.split()
        if not parts or int(parts[0]) > engines:
            continue
        cycle = int(parts[1])
        if cycles is not None and not cycles[0] <= cycle <= cycles[1]:
            continue
        rows.append((cycle, line))
    if not rows:
        raise ValueError(f"no rows for {engines} engines and cycles {cycles}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "train_FD001.txt"
    path.write_text("".join(f"{line}\n" for _, line in rows))
    return Recording(path, engines, len(rows), min(c for c, _ in rows), max(c for c, _ in rows))


# -- producing ---------------------------------------------------------------------------------
#: About one reading in this many is followed by a record that is not a reading
#: (``not a reading: <device>/<seq>``): the stream job dead-letters it. Which readings is
#: decided by the reading itself (a hash of device and seq), so a recording replayed in
#: parts (the backlog fault) sends the same invalid records as the golden run.
BAD_EVERY = 97


def _followed_by_a_bad_record(device: str, seq: int, every: int) -> bool:
    return zlib.crc32(f"{device}/{seq}".encode()) % every == 0


@dataclass(frozen=True)
class ProduceResult:
    """What a replay sent and what the broker acknowledged.

    Attributes:
        sent: readings handed to the producer.
        acked: readings the broker acknowledged, as (device, seq), with their ack times.
        failed: records the producer reported as not delivered.
        seconds: wall time of the replay, flush included.
        bad_acked: the invalid records (:data:`BAD_EVERY`) the broker acknowledged.
    """

    sent: int
    acked: dict[tuple[str, int], float]
    failed: int
    seconds: float
    bad_acked: frozenset[bytes] = frozenset()


class _AckRecorder:
    """Wraps the kafka-python producer inside :class:`ingest.producer.ReadingProducer`,
    records each acknowledged reading (the producer itself counts failures, not acks), and
    after some readings (:data:`BAD_EVERY`) sends an invalid record beside them."""

    def __init__(self, inner: Any, topic: str, bad_every: int | None) -> None:
        self._inner = inner
        self._topic = topic
        self._bad_every = bad_every
        self.acked: list[tuple[bytes, float]] = []
        self.bad_acked: set[bytes] = set()

    def _ack(self, value: bytes, _metadata: Any) -> None:
        self.acked.append((value, time.time()))

    def _bad_ack(self, value: bytes, _metadata: Any) -> None:
        self.bad_acked.add(value)

    def send(self, topic: str, **kwargs: Any) -> Any:
        future = self._inner.send(topic, **kwargs)
        if topic == self._topic:
            future.add_callback(self._ack, kwargs["value"])
            reading = json.loads(kwargs["value"])
            device, seq = reading["d"], reading["s"]
            if self._bad_every and _followed_by_a_bad_record(device, seq, self._bad_every):
                bad = f"not a reading: {device}/{seq}".encode()
                self._inner.send(topic, key=kwargs.get("key"), value=bad).add_callback(
                    self._bad_ack, bad
                )
        return future

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def produce(
    recording: Recording,
    bootstrap: str,
    topic: str,
    speed: float | None = None,
    bad_every: int | None = BAD_EVERY,
) -> ProduceResult:
    """Replay ``recording`` into ``topic`` with the project's producer (idempotent, acks=all),
    and an invalid record after about one reading in ``bad_every``.

    Raises:
        ingest.errors.DeliveryError: some readings were not acknowledged.
    """
    from ingest.codec import decode
    from ingest.config import KafkaConfig
    from ingest.producer import ProducerSettings, ReadingProducer
    from ingest.replay import ReplayOptions, replay_file

    config = KafkaConfig.from_env({"PROGNOS_KAFKA_BOOTSTRAP": bootstrap, "PROGNOS_TOPIC": topic})
    started = time.monotonic()
    # A broker restart takes seconds; give the first connection as long (the default 10 s
    # is for a user who mistyped the address, not for a broker that is coming back).
    settings = ProducerSettings(bootstrap_timeout_ms=60_000)
    producer = ReadingProducer(config, settings)
    recorder = _AckRecorder(producer._producer, topic, bad_every)
    producer._producer = recorder
    with producer:
        report = replay_file(recording.path, producer, ReplayOptions(progress=False, speed=speed))
    acked: dict[tuple[str, int], float] = {}
    for value, at in recorder.acked:
        reading = decode(value)
        acked[(reading.device_id, reading.seq)] = at
    return ProduceResult(
        report.sent,
        acked,
        producer.stats().failed,
        time.monotonic() - started,
        frozenset(recorder.bad_acked),
    )


def create_topic(bootstrap: str, name: str, partitions: int = 2) -> str:
    """Create ``name`` and its dead-letter topic on ``bootstrap``."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="prognos-reliability")
    try:
        admin.create_topics([NewTopic(name, partitions, 1), NewTopic(f"{name}.dlq", 1, 1)])
    finally:
        admin.close()
    return name


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> end offset of ``topic``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        parts = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        return {tp.partition: int(off) for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def topic_readings(bootstrap: str, topic: str, expected: int) -> Counter[tuple[str, int]]:
    """How often each (device, seq) is in ``topic``."""
    from ingest.consumer import read_records

    counts: Counter[tuple[str, int]] = Counter()
    for record in read_records(bootstrap, topic, expected=expected, timeout_s=120):
        if record.reading is not None:
            counts[(record.reading.device_id, record.reading.seq)] += 1
    return counts


# -- the checkpoint ----------------------------------------------------------------------------
def _numbered(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    return {int(p.name): p for p in folder.iterdir() if p.name.isdigit()}


def last_commit(checkpoint: Path) -> int:
    """Id of the main query's last committed batch; -1 before the first."""
    return max(_numbered(checkpoint / "main" / "commits"), default=-1)


def commit_times(checkpoint: Path) -> dict[int, float]:
    """Batch id -> wall-clock time its commit was written."""
    out = {}
    for batch, path in _numbered(checkpoint / "main" / "commits").items():
        with contextlib.suppress(FileNotFoundError):
            out[batch] = path.stat().st_mtime
    return out


def batch_offsets(checkpoint: Path) -> dict[int, dict[int, int]]:
    """Batch id -> the partition end offsets it read up to (the main query's offset log)."""
    out: dict[int, dict[int, int]] = {}
    for batch, path in _numbered(checkpoint / "main" / "offsets").items():
        lines = path.read_text().splitlines()
        if len(lines) < 3:
            continue
        source = json.loads(lines[2])
        (offsets,) = source.values()  # one topic
        out[batch] = {int(p): int(o) for p, o in offsets.items()}
    return out


def batch_sizes(checkpoint: Path) -> dict[int, int]:
    """Batch id -> readings it read (from consecutive entries of the offset log)."""
    offsets = batch_offsets(checkpoint)
    sizes = {}
    previous: dict[int, int] = {}
    for batch in sorted(offsets):
        current = offsets[batch]
        sizes[batch] = sum(current[p] - previous.get(p, 0) for p in current)
        previous = current
    return sizes


def committed_offsets(checkpoint: Path) -> dict[int, int]:
    """The partition offsets the last committed batch read up to."""
    batch = last_commit(checkpoint)
    return batch_offsets(checkpoint).get(batch, {})


def recovery_s(checkpoint: Path, injected_at: float, back_at: float | None = None) -> float | None:
    """Seconds from ``injected_at`` to the first batch committed after ``back_at``."""
    after = injected_at if back_at is None else back_at
    later = [t for t in commit_times(checkpoint).values() if t > after]
    return round(min(later) - injected_at, 1) if later else None


# -- the stream job as a process ---------------------------------------------------------------
def job_args(
    topic: str,
    checkpoint: Path,
    prefix: str,
    settings: ChaosSettings,
    max_offsets: int | None = None,
) -> list[str]:
    """``prognos stream`` arguments of a job segment (``--available-now``)."""
    args = [
        "--topic",
        topic,
        "--checkpoint",
        str(checkpoint),
        "--key-prefix",
        prefix,
        "--available-now",
        "--max-offsets-per-trigger",
        str(max_offsets or settings.max_offsets),
    ]
    if settings.watermark_s is not None:
        args += ["--watermark", str(settings.watermark_s)]
    return args


def job_env(bootstrap: str, redis_url: str) -> dict[str, str]:
    """The job's environment: this one, pointed at ``bootstrap`` and ``redis_url`` only."""
    env = dict(os.environ)
    redirecting = ("PROGNOS_TOPIC", "PROGNOS_DLQ_TOPIC", "PROGNOS_KEY_PREFIX", "PROGNOS_CHECKPOINT")
    for name in list(env):
        # Flags name the topic, checkpoint and prefix; the services are the run's own (and
        # the security settings of another cluster do not apply to them).
        if name in redirecting or name.startswith("PROGNOS_KAFKA_S"):
            del env[name]
    env.update(
        PROGNOS_KAFKA_BOOTSTRAP=bootstrap,
        PROGNOS_REDIS_URL=redis_url,
        PROGNOS_SPARK_UI="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_in_process(
    spark: Any,
    topic: str,
    bootstrap: str,
    redis_url: str,
    prefix: str,
    checkpoint: Path,
    settings: ChaosSettings,
) -> Any:
    """Run the stream job to completion (``available_now``) in this process's Spark session,
    with the same settings as :func:`job_args`; returns the :class:`stream.job.StreamJob`."""
    from dataclasses import replace

    from ingest.config import KafkaConfig
    from stream.config import StreamConfig
    from stream.job import StreamJob

    config = StreamConfig.from_env(
        {},
        redis_url=redis_url,
        key_prefix=prefix,
        checkpoint=checkpoint,
        available_now=True,
        max_offsets_per_trigger=settings.max_offsets,
        watermark_seconds=settings.watermark_s,  # None: the job's default
    )
    kafka = KafkaConfig.from_env({"PROGNOS_KAFKA_BOOTSTRAP": bootstrap, "PROGNOS_TOPIC": topic})
    job = StreamJob(spark, replace(config, kafka=kafka))
    job.start()
    job.run(install_signals=False)
    return job


def _processes() -> dict[int, tuple[int, int]]:
    """Live (not zombie) processes: pid -> (parent pid, process group)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def process_tree(root: int) -> dict[int, int]:
    """``root`` and its live descendants: pid -> process group.

    A tree, not a process group: Spark's Python daemon puts itself and its workers in a
    group of their own.
    """
    table = _processes()
    tree = {root: table[root][1]} if root in table else {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, pgid) in table.items():
            if ppid == parent and pid not in tree:
                tree[pid] = pgid
                frontier.append(pid)
    return tree


class JobProcess:
    """One ``prognos stream`` process (a segment of a run) and what it starts: the Spark
    JVM, Spark's Python daemon and workers. ``command`` ``("submit", "--")`` runs it on a
    Spark cluster instead (``prognos submit``)."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path,
        command: tuple[str, ...] = ("stream",),
    ) -> None:
        self.log_path = log_path
        cwd.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed in wait/kill)
        self.started = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "--log-level", "INFO", *command, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.ended: float | None = None

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None and self.ended is None:
            self.ended = time.time()
        return code

    def wait(self, timeout_s: float) -> int:
        """Wait for the segment to exit; on timeout kill it and raise TimeoutError."""
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(
                f"the stream job did not finish within {timeout_s:.0f}s; last lines of "
                f"{self.log_path}:\n{self.log_tail()}"
            ) from None
        self.poll()
        self._log.close()
        return code

    def kill(self) -> float:
        """SIGKILL the job and every process it started, at once (a crash); returns the time."""
        tree = process_tree(self.pid)
        at = time.time()
        # Groups led by one of the job's processes: its own session, the Python daemon's.
        groups = {g for g in tree.values() if g in tree}
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        self.poll()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alive = [pid for pid, (_, g) in _processes().items() if pid in tree or g in groups]
            if not alive:
                break
            for pid in alive:  # forked after the snapshot, by a process of the job
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        self._log.close()
        return at

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def wait_for_commit(job: JobProcess, checkpoint: Path, after: int, timeout_s: float) -> int | None:
    """Wait until a batch with id > ``after`` is committed; None if the job exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = last_commit(checkpoint)
        if batch > after:
            return batch
        if job.poll() is not None:
            return None
        time.sleep(0.2)
    raise TimeoutError(
        f"no batch after {after} was committed within {timeout_s:.0f}s; last lines of "
        f"{job.log_path}:\n{job.log_tail()}"
    )


# -- memory ------------------------------------------------------------------------------------
# -- services ----------------------------------------------------------------------------------
def kill_service(service: Any) -> float:
    """SIGKILL a service of :mod:`deploy.stack` this test started; returns the time.

    ``deploy.stack`` stops services with SIGTERM; a crash is SIGKILL. The process is the
    test's own child (started in-process), so it is reaped here.
    """
    pid = service.running_pid()
    if pid is None:
        raise RuntimeError(f"{service.name} is not running")
    at = time.time()
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    service.pid_file.unlink(missing_ok=True)
    from deploy.stack import port_is_free

    deadline = time.monotonic() + 30
    while not all(port_is_free(p) for p in service.ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    return at


@contextlib.contextmanager
def private_services(
    state_dir: Path, kafka: bool = False, redis: bool = False
) -> Iterator[tuple[Any, Any]]:
    """A broker and/or redis-server of one test's own, so killing them harms no other test."""
    from deploy.config import StackConfig
    from deploy.stack import KafkaBroker, RedisServer, free_port

    config = StackConfig.from_env(
        {},
        state_dir=state_dir,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
    )
    broker = KafkaBroker(config) if kafka else None
    server = RedisServer(config) if redis else None
    started: list[Any] = []
    try:
        for service in (broker, server):
            if service is not None:
                service.start()
                started.append(service)
        yield broker, server
    finally:
        for service in reversed(started):
            with contextlib.suppress(Exception):
                service.stop()


# -- what reached Redis ------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """What a run left in Redis under its key prefix.

    Attributes:
        events: (event_id, the event as canonical JSON), in stream order.
        devices: device -> its ``P:device:<id>`` hash.
        risk: the ``P:risk`` hash.
        open: the ``P:open`` set.
        dead_letters: the dead-letter topic's records (their bytes) -> how often each is
            there, read ``read_committed``.
        dead_letter_counts: the ``P:deadletters`` hash.
    """

    events: tuple[tuple[str, str], ...]
    devices: dict[str, dict[str, str]]
    risk: dict[str, str]
    open: frozenset[str]
    dead_letters: Counter[bytes] = field(default_factory=Counter)
    dead_letter_counts: dict[str, str] = field(default_factory=dict)


def dead_letters(bootstrap: str, topic: str) -> Counter[bytes]:
    """How often each record (by its bytes) is in the dead-letter topic of ``topic``."""
    from ingest.consumer import read_records

    return Counter(
        r.value for r in read_records(bootstrap, f"{topic}.dlq", timeout_s=60, decode_values=False)
    )


def snapshot(
    redis_url: str, prefix: str, bootstrap: str | None = None, topic: str | None = None
) -> Snapshot:
    """What a run left in Redis, and (given ``bootstrap`` and ``topic``) in its dead-letter
    topic."""
    import redis

    client: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        events = tuple(
            (fields["event_id"], json.dumps(json.loads(fields["event"]), sort_keys=True))
            for _, fields in client.xrange(Keys(prefix).alerts)
        )
        head = Keys(prefix).device_key_head
        devices = {
            key[len(head) :]: client.hgetall(key)
            for key in client.scan_iter(match=f"{head}*", count=1000)
        }
        return Snapshot(
            events,
            devices,
            client.hgetall(Keys(prefix).risk),
            frozenset(client.smembers(Keys(prefix).open)),
            dead_letters(bootstrap, topic) if bootstrap and topic else Counter(),
            client.hgetall(Keys(prefix).deadletters),
        )
    finally:
        client.close()


@dataclass(frozen=True)
class Comparison:
    """A run against the golden run; see the module docstring for each figure."""

    expected: int
    lost: tuple[str, ...]
    duplicated: tuple[str, ...]
    differing: tuple[str, ...]
    unexpected: tuple[str, ...]
    state_differs: tuple[str, ...]
    dead_letters_expected: int = 0
    dead_letters_lost: tuple[str, ...] = ()
    dead_letters_duplicated: tuple[str, ...] = ()
    dead_letter_counts_differ: bool = False

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.differing
            or self.unexpected
            or self.state_differs
            or self.dead_letters_lost
            or self.dead_letters_duplicated
            or self.dead_letter_counts_differ
        )

    def describe(self) -> str:
        parts = [
            f"{name} {len(ids)}: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}"
            for name, ids in (
                ("lost", self.lost),
                ("duplicated", self.duplicated),
                ("differing", self.differing),
                ("unexpected", self.unexpected),
                ("devices whose state differs", self.state_differs),
                ("dead letters lost", self.dead_letters_lost),
                ("dead letters duplicated", self.dead_letters_duplicated),
            )
            if ids
        ]
        if self.dead_letter_counts_differ:
            parts.append("the dead-letter counts differ")
        return "; ".join(parts) or "identical to the golden run"


def compare(golden: Snapshot, run: Snapshot) -> Comparison:
    expected = dict(golden.events)
    counts = Counter(event_id for event_id, _ in run.events)
    got = dict(run.events)
    devices = set(golden.devices) | set(run.devices)
    state = sorted(
        d
        for d in devices
        if golden.devices.get(d) != run.devices.get(d)
        or golden.risk.get(d) != run.risk.get(d)
        or (d in golden.open) != (d in run.open)
    )
    return Comparison(
        expected=len(expected),
        lost=tuple(sorted(set(expected) - set(got))),
        duplicated=tuple(sorted(e for e, n in counts.items() if n > 1)),
        differing=tuple(sorted(e for e in set(expected) & set(got) if expected[e] != got[e])),
        unexpected=tuple(sorted(set(got) - set(expected))),
        state_differs=tuple(state),
        dead_letters_expected=len(golden.dead_letters),
        dead_letters_lost=tuple(
            sorted(
                v.decode(errors="replace") for v in set(golden.dead_letters) - set(run.dead_letters)
            )
        ),
        dead_letters_duplicated=tuple(
            sorted(v.decode(errors="replace") for v, n in run.dead_letters.items() if n > 1)
        ),
        dead_letter_counts_differ=golden.dead_letter_counts != run.dead_letter_counts,
    )


# -- the report --------------------------------------------------------------------------------
@dataclass
class FaultRow:
    """One row of the report: a fault and what it did to the outcome."""

    fault: str
    readings_sent: int
    alerts_expected: int
    lost: int
    duplicated: int
    differing: int
    state_differs: int
    dead_letters_expected: int = 0
    dead_letters_lost: int = 0
    dead_letters_duplicated: int = 0
    dead_letter_counts_differ: bool = False
    recovery_s: list[float | None] = field(default_factory=list)
    injections: int = 0
    job_starts: int = 0
    seconds: float = 0.0
    passed: bool = False
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_comparison(
        cls, fault: str, readings_sent: int, comparison: Comparison, **kwargs: Any
    ) -> FaultRow:
        return cls(
            fault=fault,
            readings_sent=readings_sent,
            alerts_expected=comparison.expected,
            lost=len(comparison.lost),
            duplicated=len(comparison.duplicated),
            differing=len(comparison.differing) + len(comparison.unexpected),
            state_differs=len(comparison.state_differs),
            dead_letters_expected=comparison.dead_letters_expected,
            dead_letters_lost=len(comparison.dead_letters_lost),
            dead_letters_duplicated=len(comparison.dead_letters_duplicated),
            dead_letter_counts_differ=comparison.dead_letter_counts_differ,
            **kwargs,
        )


@dataclass
class Report:
    """Rows collected during the session; printed and saved at its end."""

    settings: ChaosSettings
    rows: list[FaultRow] = field(default_factory=list)
    fuzz: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: FaultRow) -> FaultRow:
        self.rows.append(row)
        return row

    def markdown(self) -> str:
        variant = "long (PROGNOS_CHAOS_LONG=1)" if self.settings.long else "CI"
        watermark = (
            "the default watermark (one window)"
            if self.settings.watermark_s is None
            else f"watermark {self.settings.watermark_s:g} s"
        )
        lines = [
            f"Reliability suite, {variant} variant, seed {self.settings.seed}: "
            f"FD001 engines 1-{self.settings.engines}, {watermark}, an invalid record after "
            f"about one reading in {BAD_EVERY}",
        ]
        if self.rows:
            lines += [
                "",
                "| fault | readings sent | alerts expected | lost | duplicated | differing "
                "| state differs | dead letters expected / lost / duplicated / counts "
                "| recovery (s) | job starts | notes |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            ]
        for r in self.rows:
            times = [t for t in r.recovery_s if t is not None]
            recovery = (
                "–"
                if not r.recovery_s
                else ", ".join(f"{t:.1f}" if t is not None else "?" for t in r.recovery_s)
            )
            if times and len(times) > 1:
                recovery += f" (max {max(times):.1f})"
            dead = (
                f"{r.dead_letters_expected} / {r.dead_letters_lost} / "
                f"{r.dead_letters_duplicated} / "
                f"{'differ' if r.dead_letter_counts_differ else 'equal'}"
            )
            lines.append(
                f"| {r.fault} | {r.readings_sent:,} | {r.alerts_expected} | {r.lost} | "
                f"{r.duplicated} | {r.differing} | {r.state_differs} | {dead} | {recovery} | "
                f"{r.job_starts} | {r.notes} |"
            )
        for f in self.fuzz:
            lines.append("")
            lines.append(
                f"Fuzzing ({f['engine']}): {f['runs']:,} inputs in {f['seconds']:.0f} s, "
                f"{f['failures']} contract failures"
            )
        return "\n".join(lines)

    def save(self, path: Path | None = None) -> Path:
        path = path or RESULTS / (
            "reliability-long.json" if self.settings.long else "reliability.json"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "settings": asdict(self.settings),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "rows": [asdict(r) for r in self.rows],
                    "fuzz": self.fuzz,
                },
                indent=2,
            )
            + "\n"
        )
        return path


REPORT = Report(ChaosSettings.from_env())


# -- running a fault scenario ------------------------------------------------------------------
@dataclass
class Run:
    """One fault run: its topic, checkpoint and key prefix, and the segments it started."""

    name: str
    topic: str
    bootstrap: str
    redis_url: str
    prefix: str
    workdir: Path
    settings: ChaosSettings
    max_offsets: int | None = None
    segments: list[JobProcess] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def checkpoint(self) -> Path:
        return self.workdir / "checkpoint"

    def start(self) -> JobProcess:
        n = len(self.segments)
        job = JobProcess(
            job_args(self.topic, self.checkpoint, self.prefix, self.settings, self.max_offsets),
            job_env(self.bootstrap, self.redis_url),
            self.workdir / f"job-{n}.log",
            self.workdir / "cwd",
        )
        self.segments.append(job)
        return job

    def finish(
        self,
        job: JobProcess,
        restarts_allowed: int = 0,
        before_restart: Callable[[], None] | None = None,
    ) -> None:
        """Wait for ``job`` to exit 0; a failed segment is restarted (at most
        ``restarts_allowed`` times) after ``before_restart``, and noted."""
        while True:
            code = job.wait(self.settings.job_timeout_s)
            if code == 0:
                return
            if restarts_allowed <= 0:
                raise AssertionError(
                    f"the stream job exited with {code}; last lines of {job.log_path}:\n"
                    f"{job.log_tail()}"
                )
            restarts_allowed -= 1
            self.notes.append(f"segment {len(self.segments) - 1} exited {code}; restarted")
            if before_restart is not None:
                before_restart()
            job = self.start()

    def check_consumed(self) -> None:
        """The last committed batch read every partition to its end."""
        ends = end_offsets(self.bootstrap, self.topic)
        got = committed_offsets(self.checkpoint)
        assert got == ends, (
            f"the job stopped at offsets {got}, the topic ends at {ends}: not every reading "
            "was consumed"
        )

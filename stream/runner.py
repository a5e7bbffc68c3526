"""Running a started query: progress into metrics, signals, failures, a clean stop.

:class:`JobProgress` folds Spark's progress reports and the sink's per-batch figures into
:class:`stream.contract.JobMetrics`, logs them and publishes them to ``P:metrics``.
:class:`QueryRunner` polls the query once a second until it ends, fails or is asked to
stop (Ctrl-C or SIGTERM: the batch in flight finishes first; a second one stops at once),
and turns a query's failure into one line that names the cause.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ingest.watch import RejectionWatch
from stream.contract import JobMetrics
from stream.coverage import BatchCoverage
from stream.errors import StreamError
from stream.redis_config import RedisConfig
from stream.storage import Location

if TYPE_CHECKING:
    from pyspark.sql.streaming.query import StreamingQuery

    from ingest.watch import Rejection
    from stream.contract import FleetSummary
    from stream.deadletters import DeadLetter
    from stream.metrics import PrometheusMetrics

logger = logging.getLogger(__name__)

__all__ = [
    "JobProgress",
    "QueryRunner",
    "ReadingsSource",
    "failure_reason",
    "kafka_lag",
    "rejection_warning",
]

_CAUSE = re.compile(r"[A-Za-z_][\w.]*(?:Error|Exception): \S")
_JVM_OR_PYSPARK = ("org.", "java.", "scala.", "py4j.", "pyspark.")
_STAGE_FAILED = re.compile(r"SparkException: (Job aborted due to stage failure: .*)")


#: Failures whose raw text does not say what to do: the pattern, and the message instead.
_HINTS = (
    (
        # Executors' task failures, and transformWithState's Python runner failures, which
        # wrap the same launch error differently: any mention of the shipped Python.
        re.compile(
            r'Cannot run program "(\./prognos-env/bin/python[^"]*)"|(\./prognos-env/bin/python)'
        ),
        "the executors cannot run the Python environment `prognos submit` shipped ({0}): its "
        "python links to an interpreter path the workers lack. Install that Python (the same "
        "version) at the same path on every worker, or set PROGNOS_EXECUTOR_PYTHON to the "
        "workers' python3 and submit again",
    ),
    (
        re.compile(
            r"Call From \S+ to (\S+) failed on connection exception"
            r'|destination host is: "([^"]+)":(\d+)'
        ),
        "the file system of the checkpoint (a NameNode at {0}) did not answer, so Spark could "
        "not read or write the job's state; check that it runs (for the local cluster: "
        "`prognos cluster status`)",
    ),
)


def failure_reason(error: BaseException) -> str:
    """One line saying why a streaming query failed.

    A Python error raised in ``foreachBatch`` (the sink's ``SinkError`` when Redis is gone)
    or in a Python worker reaches the driver under a generic first line ("An exception was
    raised by the Python Proxy. Return Message: Traceback ..."); the last
    ``SomeError: message`` line of the Python traceback inside names the cause. Errors
    without one (the JVM's own) keep their first line.

    >>> failure_reason(Exception("boom\\nTraceback ...\\nstream.errors.SinkError: Redis failed"))
    'stream.errors.SinkError: Redis failed'
    """
    text = str(error).split("=== Streaming Query ===")[0].strip()
    for pattern, hint in _HINTS:
        found = pattern.search(text)
        if found:
            groups = [g for g in found.groups() if g]
            where = ":".join(groups) if len(groups) > 1 else groups[0]
            return hint.format(where)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if _CAUSE.match(line) and not line.startswith(_JVM_OR_PYSPARK)]
    aborted = _STAGE_FAILED.search(text)
    if causes:
        reason = causes[-1]
    elif aborted:  # a Spark job of the batch failed: its reason, not py4j's first line
        reason = aborted.group(1)
    else:
        reason = lines[0] if lines else type(error).__name__
    return reason.rstrip(".")[:500]


class _InterruptedByStop(logging.Filter):
    """Drops py4j's ERROR traceback for a batch that our own stop interrupted.

    With batches back to back, the next batch may be running when the query is stopped;
    Spark interrupts it inside ``foreachBatch`` and py4j logs that as an ERROR with a
    traceback. It is not an error: the batch was not committed and is redone on restart.
    """

    def __init__(self, stopping: threading.Event) -> None:
        super().__init__()
        self.stopping = stopping

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if self.stopping.is_set() and "java.lang.InterruptedException" in str(error):
            logger.info("the next batch had started and was interrupted; it is redone on restart")
            return False
        return True


def _offsets(raw: Any) -> Mapping[str, Mapping[str, int]]:
    """A Kafka source's offsets (``{"topic": {"0": 42}}``), JSON text or already parsed."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, Mapping) else {}


def kafka_lag(sources: Iterable[Mapping[str, Any]]) -> int | None:
    """Records behind the topic's end: latest offset minus the batch's end offset, summed.

    ``sources`` is a progress report's ``sources``; None when no source reports offsets
    (a batch before the first, or a source that is not Kafka).

    >>> kafka_lag([{"endOffset": '{"t": {"0": 40, "1": 10}}',
    ...             "latestOffset": '{"t": {"0": 50, "1": 10}}'}])
    10
    """
    lag, seen = 0, False
    for source in sources:
        end, latest = _offsets(source.get("endOffset")), _offsets(source.get("latestOffset"))
        for topic, partitions in latest.items():
            for partition, offset in partitions.items():
                done = end.get(topic, {}).get(partition)
                if done is None or int(offset) < 0 or int(done) < 0:
                    continue
                lag += max(0, int(offset) - int(done))
                seen = True
    return lag if seen else None


# Spark's own ERROR for a batch our stop interrupts while it broadcasts its plan ("Store
# broadcast ... fail"): at a stop, the next batch may have started (batches back to back);
# it was not committed and is redone on restart, so it is not an error.
_STOP_NOISE = ("org.apache.spark.broadcast.TorrentBroadcast",)


@contextlib.contextmanager
def _quiet_interrupted_batch() -> Iterator[None]:
    """Silence :data:`_STOP_NOISE` in the driver's JVM while a query stops (best effort)."""
    restore: list[tuple[Any, str, Any]] = []
    try:
        from pyspark import SparkContext

        jvm = SparkContext._jvm  # the driver's gateway
        if jvm is not None:
            log4j = jvm.org.apache.logging.log4j
            configurator = log4j.core.config.Configurator
            for name in _STOP_NOISE:
                restore.append((configurator, name, log4j.LogManager.getLogger(name).getLevel()))
                configurator.setLevel(name, log4j.Level.OFF)
    except Exception:
        logger.debug("could not quiet Spark's stop noise", exc_info=True)
    try:
        yield
    finally:
        for configurator, name, level in restore:
            try:
                configurator.setLevel(name, level)
            except Exception:
                logger.debug("could not restore the level of %s", name, exc_info=True)


def _last_batch(query: StreamingQuery) -> int:
    """Id of the query's last completed batch, -1 before the first."""
    progress = query.lastProgress
    return int(progress["batchId"]) if progress else -1


class JobProgress:
    """The job's figures (:class:`JobMetrics`), updated from two threads under one lock.

    The sink's thread (``foreachBatch``) adds each batch's windows, alerts and dead
    letters; the runner's thread folds in Spark's progress reports and publishes the
    whole hash to Redis. With ``prometheus``, every figure also goes to the job's
    Prometheus metrics (:mod:`stream.metrics`).
    """

    def __init__(
        self,
        redis: RedisConfig,
        provider: str,
        prometheus: PrometheusMetrics | None = None,
        source: ReadingsSource | None = None,
    ) -> None:
        self.redis = redis
        self.metrics = JobMetrics(provider=provider)
        self.lock = threading.Lock()
        self.prometheus = prometheus
        # One rule breaking most of the first readings read (the catalogue or the producer
        # does not fit): said once, loudly, with the fix (ingest.watch).
        self.source = source
        self._watch = RejectionWatch()
        self._broken: dict[int, Counter[str]] = {}  # by batch, until its progress is read
        self._examples: dict[str, str] = {}

    def batch_read(self, batch_id: int, letters: Sequence[DeadLetter]) -> None:
        """Batch ``batch_id``'s dead letters (also a replayed batch's, whose letters were
        published before), for the check of the first records read: matched with the
        batch's progress report once Spark posts it."""
        if self.source is None or self._watch.done:
            return
        counts: Counter[str] = Counter()
        with self.lock:
            for letter in letters:
                reason = f"{letter.field}/{letter.rule}"
                counts[reason] += 1
                self._examples.setdefault(reason, f"{letter.field}: {letter.reason}")
            self._broken[batch_id] = counts

    def finish(self) -> None:
        """The run ended: judge a run shorter than the check's first 1,000 records."""
        if self.source is None:
            return
        rejection = self._watch.finish()
        if rejection is not None:
            logger.warning("%s", rejection_warning(rejection, self.source))

    def batch_written(
        self,
        windows: int,
        events: int,
        scoring_ms: float,
        sink_ms: float,
        redis_ms: float,
        coverage: BatchCoverage | None = None,
        event_counts: Mapping[tuple[str, str], int] | None = None,
        fleet: FleetSummary | None = None,
    ) -> None:
        """One batch's scored windows reached Redis (``events`` of them new alert events,
        ``event_counts`` those by kind and severity; ``fleet`` the summary written)."""
        counted = coverage is not None and windows > 0
        with self.lock:
            m = self.metrics
            if counted and coverage is not None:
                m.coverage = round(coverage.mean, 4)
                m.low_coverage_windows_total += coverage.low
            m.windows_scored = windows
            m.windows_scored_total += windows
            m.alerts_total += events
            m.scoring_ms = scoring_ms
            m.sink_ms = sink_ms
            m.redis_ms = redis_ms
        if self.prometheus is not None:
            self.prometheus.batch_written(
                windows=windows,
                event_counts=event_counts or {},
                scoring_s=scoring_ms / 1000.0,
                sink_s=sink_ms / 1000.0,
                coverage=coverage.mean if counted and coverage is not None else None,
                low_coverage=coverage.low if counted and coverage is not None else 0,
                open_alerts=None if fleet is None else fleet.open_alerts,
                devices=None if fleet is None else fleet.devices,
            )

    def dead_lettered(self, rules: Mapping[str, int]) -> None:
        """One batch published dead letters: how many broke each rule."""
        with self.lock:
            self.metrics.dead_letters_total += sum(rules.values())
        if self.prometheus is not None:
            self.prometheus.dead_lettered(rules)

    def record(self, queries: Sequence[StreamingQuery]) -> None:
        """Fold the main query's new progress reports in; log and publish them.

        Every batch completed since the last call is folded in, not only the last one: a
        batch with late readings followed within the poll interval by a quick no-data batch
        would otherwise go uncounted.
        """
        import redis

        main = queries[0] if queries else None
        reports = main.recentProgress if main is not None else []
        new = [p for p in reports if int(p.get("batchId", -1)) > self.metrics.batch_id]
        if not new:
            return
        progress = new[-1]
        late = [
            sum(int(op.get("numRowsDroppedByWatermark", 0)) for op in p.get("stateOperators", []))
            for p in new
        ]
        dropped = sum(late)
        lags = [kafka_lag(p.get("sources") or []) for p in new]
        lag = next((n for n in reversed(lags) if n is not None), None)
        if self.prometheus is not None:
            for report, n in zip(new, late, strict=True):
                self.prometheus.progress(report, n)
        with self.lock:
            m = self.metrics
            m.batch_id = int(progress["batchId"])
            m.input_rows = int(progress.get("numInputRows", 0))
            m.input_rows_total += sum(int(p.get("numInputRows", 0) or 0) for p in new)
            m.input_rows_per_s = float(progress.get("processedRowsPerSecond") or 0.0)
            m.batch_ms = int(progress.get("durationMs", {}).get("triggerExecution", 0))
            m.dropped_by_watermark = dropped
            m.dropped_by_watermark_total += dropped
            if lag is not None:
                m.kafka_lag_records = lag
            m.updated_ms = int(time.time() * 1000)
            snapshot = JobMetrics(**asdict(m))
        if dropped:
            logger.warning(
                "batch %d: %d late readings dropped by the watermark", snapshot.batch_id, dropped
            )
        self._check_rejection(new)
        logger.info(
            "batch %(batch_id)d: %(input_rows)d readings (%(input_rows_per_s).0f/s) in %(batch_ms)d ms; "
            "%(windows_scored)d windows scored, %(alerts_total)d alert events so far; "
            "dead letters %(dead_letters_total)d, late %(dropped_by_watermark_total)d",
            asdict(snapshot),
        )
        try:
            client = self.redis.client(socket_timeout=5)
            try:
                client.hset(self.redis.keys.metrics, mapping=snapshot.to_hash())
            finally:
                client.close()
        except redis.RedisError as exc:
            logger.warning("could not publish metrics to Redis: %s", exc)

    def _check_rejection(self, reports: Sequence[Mapping[str, Any]]) -> None:
        """Fold the batches of ``reports`` (their records read, and their dead letters) into
        the rejection watch; warn once when one rule broke most of the first records."""
        if self.source is None or self._watch.done:
            return
        broken: Counter[str] = Counter()
        with self.lock:
            for report in reports:
                broken.update(self._broken.pop(int(report.get("batchId", -1)), Counter()))
            examples = dict(self._examples)
        read = sum(int(p.get("numInputRows", 0) or 0) for p in reports)
        if read <= 0:
            return
        rejection = self._watch.observe_counts(read, broken, examples)
        if rejection is not None:
            logger.warning("%s", rejection_warning(rejection, self.source))


@dataclass(frozen=True)
class ReadingsSource:
    """What a rejection of most of the first readings names: where they came from, where
    they went, and the catalogue that judged them."""

    topic: str
    dead_letter_topic: str
    catalogue: str


def rejection_warning(rejection: Rejection, source: ReadingsSource) -> str:
    """The stream job's message for most of its first readings broken by one rule."""
    rule = rejection.reason.rpartition("/")[2]
    head = (
        f"{rejection.share:.0%} of the first {rejection.seen:,} records read from "
        f"{source.topic} ({rejection.count:,}) broke the same rule, {rejection.reason} "
        f"({rejection.example}); they are in {source.dead_letter_topic}."
    )
    if rule in ("range", "unknown"):
        return (
            f"{head} The catalogue in force, {source.catalogue}, does not fit these readings: "
            "restart the job with one that declares their sensors and ranges (--catalogue; "
            "`prognos catalogue infer RECORDING --out catalogue.toml` proposes one), or a "
            "model trained on this fleet (its folder's catalogue.toml applies)."
        )
    return (
        f"{head} Their producer does not write Prognos readings as this job reads them: "
        "check it against docs/readings.md (the wire format and its rules)."
    )


class QueryRunner:
    """Runs started queries until they end, fail, or are asked to stop.

    Args:
        queries: returns the queries to watch (read at each poll).
        progress: where each poll's progress goes.
        checkpoint: named in the failure message (where a restart resumes).
        on_stopped: called once the queries stopped (closes the sink).
    """

    def __init__(
        self,
        queries: Callable[[], Sequence[StreamingQuery]],
        progress: JobProgress,
        checkpoint: Location,
        on_stopped: Callable[[], None] = lambda: None,
    ) -> None:
        self.queries = queries
        self.progress = progress
        self.checkpoint = checkpoint
        self.on_stopped = on_stopped
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._quiet = _InterruptedByStop(self._stop)

    def request_stop(self, *_: Any) -> None:
        """Ask the job to stop after the batch in flight (signal handler)."""
        if self._stop.is_set():
            logger.info("stopping now; the batch in flight will be redone on restart")
            self._abort.set()
        else:
            logger.info("stopping after the current batch (again to stop at once)")
        self._stop.set()

    def run(self, install_signals: bool = True) -> None:
        """Poll until stopped (Ctrl-C, SIGTERM), a query fails, or every query ended.

        Raises:
            StreamError: a query failed; the message names the cause and says that a
                restart on the checkpoint resumes after the last committed batch.
        """
        if install_signals:
            signal.signal(signal.SIGINT, self.request_stop)
            signal.signal(signal.SIGTERM, self.request_stop)
        py4j = logging.getLogger("py4j.clientserver")
        py4j.addFilter(self._quiet)
        try:
            while not self._stop.is_set():
                queries = self.queries()
                self.progress.record(queries)
                for query in queries:
                    error = query.exception()
                    if error is not None:
                        raise StreamError(
                            f"query {query.name} failed: {failure_reason(error)}. Nothing after "
                            "its last committed batch was written; restarting on the checkpoint "
                            f"{self.checkpoint} resumes from there once the cause is fixed."
                        ) from error
                if all(not q.isActive for q in queries):
                    break
                self._stop.wait(1.0)
        finally:
            self._stop.set()
            self.stop()
            self.progress.record(self.queries())
            self.progress.finish()
            py4j.removeFilter(self._quiet)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the queries, letting the batch in flight finish first (bounded by ``timeout_s``).

        A batch cut short (timeout, or a second Ctrl-C) is not committed; the next run on
        the same checkpoint does it again, and the idempotent sink writes nothing twice.
        """
        deadline = time.monotonic() + timeout_s
        for query in self.queries():
            if not query.isActive:
                continue
            done = _last_batch(query)
            while (
                query.isActive
                and query.status.get("isTriggerActive")
                and _last_batch(query) == done
                and time.monotonic() < deadline
                and not self._abort.is_set()
            ):
                time.sleep(0.01)  # stop soon after the commit, before the next batch gets far
            if query.isActive:
                with _quiet_interrupted_batch():
                    query.stop()
        self.on_stopped()

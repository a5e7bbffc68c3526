"""The stream job: Kafka -> parse and validate -> windows -> sequences -> ONNX -> Redis.

One streaming query (``prognos-main``) reads the source topic and parses and validates
each record once:

    readings -> event-time watermark -> one stateful operator per device
    (``applyInPandasWithState``, :mod:`stream.sequence`): open windows' readings,
    duplicates (same device and ``seq``) dropped, each closed window's features by the
    training code, the last K windows -> ONNX Runtime in the Python workers over Arrow
    batches (``mapInArrow``, :mod:`stream.scoring`) -> alert policy and idempotent Redis
    writes in ``foreachBatch`` (:mod:`stream.sink`).

Records that break a rule travel through the same operator and scoring stage untouched
(:func:`stream.sequence.route`) and the same ``foreachBatch`` publishes them to the
dead-letter topic, original bytes and the reason in headers, and counts them per reason in
Redis (``P:deadletters``).

The query's checkpoint is ``main`` under the job's checkpoint location; a ``job.json``
there records what the checkpoint's state depends on (window, sequence length, features,
partitions, state layout) so a restart with an incompatible change is refused with the
reason instead of failing deep inside Spark.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream.alerts import AlertPolicy
from stream.errors import CheckpointMismatchError, ConfigError, ServiceUnreachableError, StreamError
from stream.scoring import TopFeatureFormatter
from stream.sequence import STATE_LAYOUT

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

    from ingest.config import KafkaConfig
    from models.scorer import Scorer

logger = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default"


@dataclass(frozen=True)
class StreamConfig:
    """Settings of one stream job. Build with :meth:`from_env`; flags override.

    Attributes:
        kafka: bootstrap servers, topics and security (from :mod:`ingest.config`).
        redis_url: where alerts go (``PROGNOS_REDIS_URL``).
        key_prefix: prefix of every Redis key (``PROGNOS_KEY_PREFIX``, ``prognos``).
        model_path: the model folder (``PROGNOS_MODEL``, the committed default model).
        providers: ONNX Runtime execution providers, ``auto`` or a comma-separated list.
        allow_fallback: accept CPU when a requested GPU provider is not active.
        checkpoint: checkpoint location (``PROGNOS_CHECKPOINT``, ``.prognos/checkpoints/stream``).
        starting_offsets: ``earliest`` or ``latest`` for a new checkpoint.
        max_offsets_per_trigger: bound on records per micro-batch (bounded memory on a backlog).
        fail_on_data_loss: fail when Kafka offsets were deleted before being read.
        trigger_seconds: micro-batch interval; 0 runs batches back to back.
        watermark_seconds: how late (in event time) a reading may arrive; default one window.
        max_future_skew_s: readings further ahead of the job's clock are refused.
        stream_maxlen: approximate bound of the alert stream's length.
        policy: the alert policy (threshold default: the model's).
        available_now: process what is in the topic, then stop (replays, tests).
    """

    kafka: KafkaConfig
    redis_url: str = field(repr=False)
    checkpoint: Path
    model_path: Path = DEFAULT_MODEL
    key_prefix: str = "prognos"
    providers: str = "auto"
    allow_fallback: bool = False
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int = 50_000
    fail_on_data_loss: bool = True
    trigger_seconds: float = 1.0
    watermark_seconds: float | None = None
    max_future_skew_s: float = 86_400.0
    stream_maxlen: int = 100_000
    threshold: float | None = None
    hysteresis: float = 0.1
    resolve_windows: int = 2
    cooldown_windows: int = 3
    update_delta: float = 0.15
    critical: float = 0.9
    available_now: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> StreamConfig:
        import os

        from deploy.config import StackConfig
        from ingest.config import KafkaConfig

        env = dict(os.environ if env is None else env)
        stack = StackConfig.from_env(env)
        kafka = KafkaConfig.from_env(env)
        if "PROGNOS_KAFKA_BOOTSTRAP" not in env:
            kafka = _replace(kafka, bootstrap_servers=stack.kafka_bootstrap)
        values: dict[str, Any] = {
            "kafka": kafka,
            "redis_url": stack.redis_url,
            "checkpoint": Path(
                env.get("PROGNOS_CHECKPOINT") or stack.home / ".prognos" / "checkpoints" / "stream"
            ),
            "model_path": Path(env.get("PROGNOS_MODEL") or DEFAULT_MODEL),
            "key_prefix": env.get("PROGNOS_KEY_PREFIX") or "prognos",
            "providers": env.get("PROGNOS_PROVIDERS") or "auto",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def policy(self, model_threshold: float) -> AlertPolicy:
        threshold = self.threshold if self.threshold is not None else model_threshold
        try:
            return AlertPolicy(
                threshold=threshold,
                hysteresis=min(self.hysteresis, threshold / 2),
                resolve_windows=self.resolve_windows,
                cooldown_windows=self.cooldown_windows,
                update_delta=self.update_delta,
                critical=max(self.critical, threshold),
            )
        except ValueError as exc:
            raise ConfigError(f"alert policy: {exc}") from exc


def _replace(obj: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(obj, **changes)


_CAUSE = re.compile(r"[A-Za-z_][\w.]*(?:Error|Exception): \S")
_JVM_OR_PYSPARK = ("org.", "java.", "scala.", "py4j.", "pyspark.")


def failure_reason(error: BaseException) -> str:
    """One line saying why a streaming query failed.

    A Python error raised in ``foreachBatch`` (the sink's ``SinkError`` when Redis is gone)
    or in a Python worker reaches the driver under a generic first line ("An exception was
    raised by the Python Proxy. Return Message: Traceback ..."); the last
    ``SomeError: message`` line of the Python traceback inside names the cause. Errors
    without one (the JVM's own) keep their first line.
    """
    text = str(error).split("=== Streaming Query ===")[0].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if _CAUSE.match(line) and not line.startswith(_JVM_OR_PYSPARK)]
    reason = causes[-1] if causes else lines[0] if lines else type(error).__name__
    return reason.rstrip(".")[:500]


def _last_batch(query: StreamingQuery) -> int:
    """Id of the query's last completed batch, -1 before the first."""
    progress = query.lastProgress
    return int(progress["batchId"]) if progress else -1


@dataclass
class JobMetrics:
    """Per-batch figures of the running job, logged and written to Redis (``P:metrics``)."""

    batch_id: int = -1
    input_rows: int = 0
    input_rows_per_s: float = 0.0
    batch_ms: int = 0
    dropped_by_watermark: int = 0
    dropped_by_watermark_total: int = 0
    dead_letters_total: int = 0
    windows_scored: int = 0
    windows_scored_total: int = 0
    alerts_total: int = 0
    scoring_ms: float = 0.0
    sink_ms: float = 0.0
    redis_ms: float = 0.0
    provider: str = ""
    updated_ms: int = 0


class StreamJob:
    """Builds and runs the job's queries. ``start`` then ``run`` (or ``stop``)."""

    def __init__(self, spark: SparkSession, config: StreamConfig) -> None:
        self.spark = spark
        self.config = config
        self.scorer = self._load_model()
        self._top_formatter = TopFeatureFormatter(self.scorer)
        meta = self.scorer.metadata
        self.spec = meta.spec
        self.window_ms = int(self.spec.window_seconds * 1000)
        self.policy = config.policy(meta.threshold)
        self.metrics = JobMetrics(provider=self.scorer.active_provider)
        self.queries: list[StreamingQuery] = []
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._lock = threading.Lock()

    # -- start-up checks ---------------------------------------------------------------
    def _load_model(self) -> Scorer:
        from models.scorer import Scorer

        # Verified (checksum, inputs, metadata) before anything is read from Kafka.
        return Scorer.load(
            self.config.model_path,
            providers=self.config.providers
            if self.config.providers == "auto"
            else self.config.providers.split(","),
            allow_fallback=self.config.allow_fallback,
        )

    def check_services(self) -> None:
        from deploy.redact import redact_url
        from deploy.stack import kafka_answers, redis_answers

        kafka = self.config.kafka
        if not kafka_answers(kafka.bootstrap_servers, timeout_s=10, client=kafka.security_kwargs()):
            fix = "run `prognos stack up`, or set PROGNOS_KAFKA_BOOTSTRAP to your cluster"
            if kafka.security_protocol != "PLAINTEXT":
                fix = (
                    "check the address (PROGNOS_KAFKA_BOOTSTRAP), the credentials "
                    "(PROGNOS_KAFKA_SASL_USERNAME, PROGNOS_KAFKA_SASL_PASSWORD_FILE) and the CA "
                    "file (PROGNOS_KAFKA_SSL_CAFILE); for the local stack: "
                    'eval "$(prognos stack env --secure)"'
                )
            raise ServiceUnreachableError(
                f"no Kafka broker answers at {kafka.bootstrap_servers} with "
                f"{kafka.describe_security()}: {fix}"
            )
        self._check_topic()
        if not redis_answers(self.config.redis_url, timeout_s=5):
            raise ServiceUnreachableError(
                f"no Redis answers at {redact_url(self.config.redis_url)}: run `prognos stack up`, "
                "or set PROGNOS_REDIS_URL"
            )

    def _check_topic(self) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(**self.config.kafka.kafka_kwargs(), request_timeout_ms=10_000)
            try:
                topics = set(admin.list_topics())
            finally:
                admin.close()
        except (KafkaError, OSError) as exc:
            raise ServiceUnreachableError(
                f"cannot list topics on {self.config.kafka.bootstrap_servers}: {exc}"
            ) from exc
        if self.config.kafka.topic not in topics:
            raise ConfigError(
                f"topic {self.config.kafka.topic!r} does not exist on {self.config.kafka.bootstrap_servers}: "
                "create it (kafka-topics.sh --create, or start a producer such as `prognos simulate` or "
                "`prognos replay` first), or name another with --topic / PROGNOS_TOPIC"
            )

    def fingerprint(self) -> dict[str, Any]:
        """What the checkpoint's state depends on; a change here needs a new checkpoint."""
        return {
            "window_ms": self.window_ms,
            "sequence_length": self.spec.sequence_length,
            "features": list(self.spec.feature_names),
            "shuffle_partitions": int(self.spark.conf.get("spark.sql.shuffle.partitions") or 0),
            "topic": self.config.kafka.topic,
            "state_layout": STATE_LAYOUT,
        }

    def check_checkpoint(self) -> None:
        """Refuse a checkpoint written by an incompatible job, naming what changed."""
        path = self.config.checkpoint / "job.json"
        current = self.fingerprint()
        if path.is_file():
            stored = json.loads(path.read_text())
            changed = {k: (stored.get(k), v) for k, v in current.items() if stored.get(k) != v}
            if changed:
                detail = "; ".join(
                    f"{k}: checkpoint has {old!r}, this job has {new!r}"
                    for k, (old, new) in changed.items()
                )
                raise CheckpointMismatchError(
                    f"the checkpoint {self.config.checkpoint} was written by a job with different "
                    f"state-defining settings ({detail}). Spark cannot reuse its state: start with a "
                    "new --checkpoint (the new job re-reads from --starting-offsets), or restore the "
                    "previous settings."
                )
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=2) + "\n")

    # -- the queries ---------------------------------------------------------------------
    def source(self) -> DataFrame:
        reader = (
            self.spark.readStream.format("kafka")
            .options(**self.config.kafka.spark_options())
            .option("subscribe", self.config.kafka.topic)
            .option("startingOffsets", self.config.starting_offsets)
            .option("maxOffsetsPerTrigger", str(self.config.max_offsets_per_trigger))
            .option("failOnDataLoss", "true" if self.config.fail_on_data_loss else "false")
        )
        return reader.load()

    def _trigger(self, writer: Any, seconds: float) -> Any:
        if self.config.available_now:
            return writer.trigger(availableNow=True)
        return writer.trigger(processingTime=f"{int(seconds * 1000)} milliseconds")

    def sequences(self, parsed: DataFrame) -> DataFrame:
        """Parsed rows to K-window sequences and dead letters (the plan before scoring)."""
        from stream import sequence

        watermark = self.config.watermark_seconds or self.spec.window_seconds
        readings = sequence.route(parsed).withWatermark(
            "event_time", f"{int(watermark * 1000)} milliseconds"
        )
        return sequence.sequences(
            readings, self.spec, self.scorer.metadata.norm, lateness_ms=int(watermark * 1000)
        )

    def scored(self, parsed: DataFrame) -> DataFrame:
        """Parsed rows to scored windows and dead letters (the query's streaming plan)."""
        from stream import scoring

        sequences = self.sequences(parsed)
        spec = scoring.ScoringSpec(
            model_path=str(self.scorer.path),
            sha256=self.scorer.metadata.sha256,
            providers=self.config.providers,
            allow_fallback=self.config.allow_fallback,
        )
        return sequences.mapInArrow(scoring.score_partitions(spec), scoring.output_schema())

    def start(self) -> list[StreamingQuery]:
        """Check services and checkpoint, then start the query."""
        from stream.parse import parse

        self.check_services()
        self.check_checkpoint()
        self.spark.conf.set(
            "spark.sql.streaming.stateStore.providerClass",
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        )
        # A commit writes the batch's changed keys to a changelog file instead of flushing,
        # zipping and syncing a snapshot of the whole store; snapshots are made by the
        # background maintenance. Measured: the state commit 230-340 -> 135-220 ms a batch.
        # Spark reads a checkpoint written with or without it either way.
        self.spark.conf.set(
            "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true"
        )
        parsed = parse(self.source(), self.config.max_future_skew_s)
        main = (
            self._trigger(
                self.scored(parsed).writeStream.foreachBatch(self._write_alerts),
                self.config.trigger_seconds,
            )
            .option("checkpointLocation", str(self.config.checkpoint / "main"))
            .queryName("prognos-main")
            .start()
        )
        self.queries = [main]
        logger.info(
            "stream job started: topic %s -> %s (model %s on %s, window %.0fs, K=%d)",
            self.config.kafka.topic,
            self.config.key_prefix,
            self.scorer.metadata.model_version,
            self.scorer.active_provider,
            self.spec.window_seconds,
            self.spec.sequence_length,
        )
        return self.queries

    # -- sinks ---------------------------------------------------------------------------
    def _sink(self) -> Any:
        from stream.sink import RedisAlertSink

        if not hasattr(self, "_alert_sink"):
            self._alert_sink = RedisAlertSink(
                self.config.redis_url,
                self.policy,
                self.window_ms,
                prefix=self.config.key_prefix,
                stream_maxlen=self.config.stream_maxlen,
            )
        return self._alert_sink

    def _write_alerts(self, batch: DataFrame, batch_id: int) -> None:
        """The query's sink: scored windows to Redis, then dead letters to their topic.

        The batch is cached: its rows (without the dead letters' bytes) come to the driver
        once, and only a batch that holds dead letters is read again, from the cache, to
        publish them.
        """
        from stream.sink import windows_from_rows

        started = time.perf_counter()
        batch = batch.persist()
        try:
            rows = batch.drop("dl_key", "dl_value").collect()
            scored = [r for r in rows if r["dl_rule"] is None]
            windows = windows_from_rows(scored, self._top_formatter)
            result = self._sink().write(windows)
            with self._lock:
                m = self.metrics
                m.windows_scored = len(windows)
                m.windows_scored_total += len(windows)
                m.alerts_total += result.events
                m.scoring_ms = float(sum(r["score_ms"] for r in scored))
                m.sink_ms = result.seconds * 1000.0
                m.redis_ms = result.redis_seconds * 1000.0
            if len(scored) < len(rows):
                self._write_dead_letters(
                    batch, [r for r in rows if r["dl_rule"] is not None], batch_id
                )
        finally:
            batch.unpersist()
        logger.debug(
            "batch %d: %d windows, %d alert events in %.0f ms",
            batch_id,
            len(windows),
            result.events,
            (time.perf_counter() - started) * 1000,
        )

    def _write_dead_letters(self, batch: DataFrame, dead: list[Any], batch_id: int) -> None:
        """Publish the batch's dead letters (``dead``: their rows, without bytes) and count
        them per reason in Redis."""
        from collections import Counter

        import redis

        from stream.parse import dead_letter_records

        (
            dead_letter_records(batch)
            .write.format("kafka")
            .options(**self.config.kafka.spark_options())
            .option("topic", self.config.kafka.dead_letter_topic)
            .save()
        )
        counts = Counter(f"{r['dl_field']}/{r['dl_rule']}" for r in dead)
        client = redis.Redis.from_url(self.config.redis_url)
        try:
            pipe = client.pipeline(transaction=False)
            for reason, n in counts.items():
                pipe.hincrby(f"{self.config.key_prefix}:deadletters", reason, n)
            pipe.execute()
        finally:
            client.close()
        with self._lock:
            self.metrics.dead_letters_total += len(dead)
        logger.info(
            "batch %d: %d readings to %s (%s)",
            batch_id,
            len(dead),
            self.config.kafka.dead_letter_topic,
            ", ".join(f"{reason}: {n}" for reason, n in counts.most_common()),
        )

    # -- running -------------------------------------------------------------------------
    def record_progress(self) -> None:
        """Fold the main query's new progress reports into the metrics; log and publish them.

        Every batch completed since the last call is folded in, not only the last one: a
        batch with late readings followed within the poll interval by a quick no-data batch
        would otherwise go uncounted.
        """
        import redis

        main = self.queries[0] if self.queries else None
        reports = main.recentProgress if main is not None else []
        new = [p for p in reports if int(p.get("batchId", -1)) > self.metrics.batch_id]
        if not new:
            return
        progress = new[-1]
        dropped = sum(
            int(op.get("numRowsDroppedByWatermark", 0))
            for p in new
            for op in p.get("stateOperators", [])
        )
        with self._lock:
            m = self.metrics
            m.batch_id = int(progress["batchId"])
            m.input_rows = int(progress.get("numInputRows", 0))
            m.input_rows_per_s = float(progress.get("processedRowsPerSecond") or 0.0)
            m.batch_ms = int(progress.get("durationMs", {}).get("triggerExecution", 0))
            m.dropped_by_watermark = dropped
            m.dropped_by_watermark_total += dropped
            m.updated_ms = int(time.time() * 1000)
            snapshot = asdict(m)
        if dropped:
            logger.warning(
                "batch %d: %d late readings dropped by the watermark", snapshot["batch_id"], dropped
            )
        logger.info(
            "batch %(batch_id)d: %(input_rows)d readings (%(input_rows_per_s).0f/s) in %(batch_ms)d ms; "
            "%(windows_scored)d windows scored, %(alerts_total)d alert events so far; "
            "dead letters %(dead_letters_total)d, late %(dropped_by_watermark_total)d",
            snapshot,
        )
        try:
            client = redis.Redis.from_url(self.config.redis_url, socket_timeout=5)
            try:
                client.hset(
                    f"{self.config.key_prefix}:metrics",
                    mapping={k: str(v) for k, v in snapshot.items()},
                )
            finally:
                client.close()
        except redis.RedisError as exc:
            logger.warning("could not publish metrics to Redis: %s", exc)

    def request_stop(self, *_: Any) -> None:
        """Ask the job to stop after the batch in flight (signal handler)."""
        if self._stop.is_set():
            logger.info("stopping now; the batch in flight will be redone on restart")
            self._abort.set()
        else:
            logger.info("stopping after the current batch (again to stop at once)")
        self._stop.set()

    def run(self, install_signals: bool = True) -> None:
        """Run until stopped (Ctrl-C, SIGTERM), a query fails, or (available_now) all is read."""
        if install_signals:
            signal.signal(signal.SIGINT, self.request_stop)
            signal.signal(signal.SIGTERM, self.request_stop)
        try:
            while not self._stop.is_set():
                self.record_progress()
                for query in self.queries:
                    error = query.exception()
                    if error is not None:
                        reason = failure_reason(error)
                        raise StreamError(
                            f"query {query.name} failed: {reason}. Nothing after its last committed "
                            f"batch was written; restarting on the checkpoint {self.config.checkpoint} "
                            "resumes from there once the cause is fixed."
                        ) from error
                if all(not q.isActive for q in self.queries):
                    break
                self._stop.wait(1.0)
        finally:
            self.stop()
            self.record_progress()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the queries, letting the batch in flight finish first (bounded by ``timeout_s``).

        A batch cut short (timeout, or a second Ctrl-C) is not committed; the next run on
        the same checkpoint does it again, and the idempotent sink writes nothing twice.
        """
        deadline = time.monotonic() + timeout_s
        for query in self.queries:
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
                time.sleep(0.1)
            if query.isActive:
                query.stop()
        if hasattr(self, "_alert_sink"):
            self._alert_sink.close()

"""The stream job: Kafka -> parse and route -> window operator (scoring) -> sink.

One streaming query (``prognos-main``), built by :func:`build_query` in the order data
flows:

1. **Kafka source** (:func:`kafka_source`): Spark's own connector, ``format("kafka")``.
2. **Parse and route** (:func:`stream.parse.parse`, :func:`stream.sequence.route`): each
   record is parsed and validated once; valid readings get the event-time watermark,
   records that break a rule are routed beside them as dead letters.
3. **Window operator** (:func:`stream.sequence.sequences`): one stateful operator over
   hash buckets of devices (``transformWithStateInPandas``) keeps the open windows'
   readings, drops duplicates, computes each closed window's features with the training
   code and builds the last K windows as the model's input sequence.
4. **Scoring**, in the window operator (:func:`stream.scoring.scored_rows`): ONNX Runtime
   in the same Python worker scores the windows a bucket closes; the sink unpacks the
   packed columns (:func:`stream.scoring.unpack_scored`).
5. **Sink** (``foreachBatch``, :meth:`StreamJob.write_batch`): the coverage guard
   (:mod:`stream.coverage`), the alert policy and idempotent Redis writes
   (:class:`stream.sink.RedisAlertSink`), then the batch's dead letters to the
   dead-letter topic (:class:`stream.deadletters.DeadLetterPublisher`).

:class:`StreamJob` puts the units together: the model is loaded and verified when it is
built; :meth:`StreamJob.start` checks the services (:mod:`stream.checks`) and the
checkpoint (:mod:`stream.checkpoint`) and starts the query; :meth:`StreamJob.run` hands it
to :class:`stream.runner.QueryRunner` until it ends or is stopped.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.candidate import contract_differences
from models.drift import load_reference
from models.scorer import Scorer
from stream.checkpoint import QUERY_FOLDER, check_checkpoint, fingerprint
from stream.config import StreamConfig
from stream.contract import JobMetrics
from stream.coverage import CoverageGuard
from stream.deadletters import DeadLetter, DeadLetterPublisher
from stream.drift import DriftMonitor
from stream.errors import StreamError
from stream.registry import ModelSwitch
from stream.runner import JobProgress, QueryRunner, ReadingsSource
from stream.scoring import TopFeatureFormatter
from stream.sequence import STATE_LAYOUT
from stream.session import use_state_store
from stream.sink import RedisAlertSink
from stream.storage import join

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

    from stream.metrics import PrometheusMetrics
    from stream.scoring import ScoringSpec

logger = logging.getLogger(__name__)

__all__ = [
    "QUERY_NAME",
    "StreamJob",
    "build_query",
    "kafka_source",
    "load_scorer",
    "other_models",
    "score",
    "scoring_spec",
    "window_sequences",
]

QUERY_NAME = "prognos-main"


def load_scorer(config: StreamConfig) -> Scorer:
    """The job's model, verified (checksum, inputs, metadata) before anything is read.

    Raises:
        models.errors.ModelError: the model is missing, corrupt, tampered or its provider
            is not available; the message says which and how to fix it.
    """
    from models.scorer import Scorer

    return Scorer.load(
        config.model_path, providers=config.provider_list, allow_fallback=config.allow_fallback
    )


def kafka_source(spark: SparkSession, config: StreamConfig) -> DataFrame:
    """The readings topic as a streaming DataFrame (Spark's Kafka connector)."""
    return (
        spark.readStream.format("kafka")
        .options(**config.kafka.spark_options())
        .option("subscribe", config.kafka.topic)
        .option("startingOffsets", config.starting_offsets)
        .option("maxOffsetsPerTrigger", str(config.max_offsets_per_trigger))
        .option("failOnDataLoss", "true" if config.fail_on_data_loss else "false")
        .load()
    )


def window_sequences(
    parsed: DataFrame,
    scorer: Scorer,
    watermark_ms: int,
    ttl_ms: int | None = None,
    scoring: ScoringSpec | None = None,
) -> DataFrame:
    """Parsed rows to K-window sequences, dead letters beside them (route + window
    operator); with ``scoring`` (:func:`scoring_spec`) to scored windows, the operator
    scoring the windows it closes."""
    from stream import sequence

    readings = sequence.route(parsed).withWatermark("event_time", f"{watermark_ms} milliseconds")
    meta = scorer.metadata
    return sequence.sequences(
        readings, meta.spec, meta.norm, lateness_ms=watermark_ms, ttl_ms=ttl_ms, scoring=scoring
    )


def scoring_spec(scorer: Scorer, config: StreamConfig, shipped: str | None = None) -> ScoringSpec:
    """What the workers score with: the model the driver's pointer file names
    (:mod:`stream.registry`), ``scorer`` until it is first written. With ``shipped`` (the
    model came to the executors as an archive, ``prognos submit``) they load that copy,
    verified against the driver's checksum, and the model is fixed for the job's life.
    """
    from stream import scoring
    from stream.registry import POINTER_FILE

    return scoring.ScoringSpec(
        model_path=str(scorer.path),
        sha256=scorer.metadata.sha256,
        providers=config.providers,
        allow_fallback=config.allow_fallback,
        pointer=None if shipped else str((pointer_folder(config) / POINTER_FILE).resolve()),
        shipped=shipped,
    )


def score(
    sequences: DataFrame, scorer: Scorer, config: StreamConfig, shipped: str | None = None
) -> DataFrame:
    """Sequences to scored windows in a scoring stage of their own (``mapInArrow``; the
    job scores in the window operator instead, see :func:`window_sequences`); dead letters
    pass through. The model is :func:`scoring_spec`'s."""
    from stream import scoring

    spec = scoring_spec(scorer, config, shipped)
    return sequences.mapInArrow(scoring.score_partitions(spec), scoring.output_schema())


def pointer_folder(config: StreamConfig) -> Path:
    """Where the driver points the workers at the batch's model: the checkpoint folder, or
    for a checkpoint on a Hadoop file system a folder of the driver's named after it."""
    import hashlib

    from stream.storage import is_uri

    if not is_uri(config.checkpoint):
        return Path(config.checkpoint)
    digest = hashlib.sha256(str(config.checkpoint).encode()).hexdigest()[:16]
    return Path(os.environ.get("PROGNOS_HOME") or Path.cwd()) / ".prognos" / "pointers" / digest


def shipped_model(spark: SparkSession) -> str | None:
    """The archive name the executors find the model under (``prognos submit``), or None."""
    from stream.scoring import SHIPPED_MODEL_CONF

    value = spark.sparkContext.getConf().get(SHIPPED_MODEL_CONF)
    return str(value) if value else None


def deployment(spark: SparkSession) -> str:
    """``local`` for Spark's local mode, else ``cluster`` (recorded with the checkpoint)."""
    master = str(spark.sparkContext.master or "")
    return "local" if master.startswith("local") else "cluster"


def dead_letters(table: pa.Table) -> list[DeadLetter]:
    """The dead letters among a batch's rows (as Arrow), with their original bytes."""
    columns = ("dl_key", "dl_value", "dl_field", "dl_rule", "dl_reason", "dl_source")
    return [
        DeadLetter(
            key=key,
            value=value or b"",
            field=field or "",
            rule=rule,
            reason=reason or "",
            source=source or "",
        )
        for key, value, field, rule, reason, source in zip(
            *(table.column(c).to_pylist() for c in columns), strict=True
        )
    ]


def other_models(scored: pa.Table, version: str) -> list[str]:
    """The model versions of ``scored``'s windows other than ``version``, the one the
    driver points the executors at: the executors scored with another model when they
    cannot read the pointer (:func:`pointer_folder`), and a promotion then does not apply."""
    import pyarrow.compute as pc

    found = pc.unique(scored.column("model_version")).to_pylist()
    return sorted(str(v) for v in found if v is not None and v != version)


def _rows_of(column: pa.ChunkedArray, width: int) -> np.ndarray:
    """A list column of ``width`` doubles as ``[rows, width]`` (a null list, or a null
    value: NaN, missing), in one copy when every list holds ``width`` values."""
    import numpy as np

    values = column.combine_chunks()
    flat = np.asarray(values.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
    if values.null_count == 0 and flat.size == len(values) * width:
        return flat.reshape(len(values), width)
    missing = [float("nan")] * width
    return np.asarray([v or missing for v in values.to_pylist()], dtype=np.float64).reshape(
        len(values), width
    )


def _watermark_ms(config: StreamConfig, scorer: Scorer) -> int:
    return int((config.watermark_seconds or scorer.metadata.spec.window_seconds) * 1000)


def _state_ttl_ms(config: StreamConfig, scorer: Scorer) -> int | None:
    """A silent device's state is kept this long after its last closed window (None: for
    ever); by default three times the span of the model's K windows."""
    spec = scorer.metadata.spec
    ttl = config.state_ttl_seconds
    if ttl is None:
        ttl = 3 * spec.sequence_length * spec.window_seconds
    return int(ttl * 1000) if ttl > 0 else None


def build_query(
    spark: SparkSession,
    config: StreamConfig,
    scorer: Scorer,
    write_batch: Callable[[DataFrame, int], None],
) -> StreamingQuery:
    """Build and start the job's query, in the order data flows."""
    from stream.parse import parse

    raw = kafka_source(spark, config)
    parsed = parse(raw, config.max_future_skew_s, config.load_catalogue())
    scored = window_sequences(
        parsed,
        scorer,
        _watermark_ms(config, scorer),
        _state_ttl_ms(config, scorer),
        scoring_spec(scorer, config, shipped_model(spark)),
    )
    writer = scored.writeStream.foreachBatch(write_batch)
    if config.available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{int(config.trigger_seconds * 1000)} milliseconds")
    return (
        writer.option("checkpointLocation", join(config.checkpoint, QUERY_FOLDER))
        .queryName(QUERY_NAME)
        .start()
    )


def _log_spark_metrics(spark: SparkSession) -> None:
    """Say where Spark's own Prometheus metrics are (its UI's servlet), when the UI runs."""
    url = spark.sparkContext.uiWebUrl
    if url:
        logger.info(
            "Spark's own metrics at %s/metrics/prometheus (driver) and "
            "%s/metrics/executors/prometheus (executors)",
            url,
            url,
        )


class StreamJob:
    """The stream job: ``start`` then ``run`` (or ``stop``).

    Building it loads and verifies the model and the alert policy; nothing is read from
    Kafka before :meth:`start`.

    Raises:
        models.errors.ModelError: the model is refused (see :func:`load_scorer`).
        stream.errors.ConfigError: the alert settings do not make a valid policy.
    """

    def __init__(self, spark: SparkSession, config: StreamConfig) -> None:
        self.spark = spark
        self.config = config
        self.scorer = load_scorer(config)
        meta = self.scorer.metadata
        self.spec = meta.spec
        self.window_ms = int(self.spec.window_seconds * 1000)
        self.policy = config.policy(meta.threshold)
        self.prometheus: PrometheusMetrics | None = None
        if config.metrics_port is not None:
            from stream.metrics import PrometheusMetrics

            self.prometheus = PrometheusMetrics()
            self.prometheus.model_loaded(
                meta.model_version, self.scorer.active_provider, meta.sha256
            )
        self.progress = JobProgress(
            config.redis,
            self.scorer.active_provider,
            self.prometheus,
            ReadingsSource(
                config.kafka.topic,
                config.kafka.dead_letter_topic,
                str(config.catalogue_in_force() or "default"),
            ),
        )
        self.sink = RedisAlertSink(
            config.redis_url,
            self.policy,
            self.window_ms,
            prefix=config.key_prefix,
            stream_maxlen=config.stream_maxlen,
            wait_replicas=config.redis_wait_replicas,
        )
        self.dead_letters = DeadLetterPublisher(config.kafka, config.redis)
        self.coverage = CoverageGuard(self.spec.sensors, config.min_coverage, config.kafka)
        self.drift: DriftMonitor | None = None
        self._describe = TopFeatureFormatter(self.scorer)
        self.switch: ModelSwitch | None = None
        self._use(self.scorer)
        self.queries: list[StreamingQuery] = []
        self.runner = QueryRunner(
            lambda: self.queries, self.progress, config.checkpoint, on_stopped=self._close
        )

    def _use(self, scorer: Scorer) -> None:
        """Score with ``scorer`` from now on: its threshold, explanations, drift reference."""
        self.scorer = scorer
        meta = scorer.metadata
        self.policy = self.config.policy(meta.threshold)
        self.sink.policy = self.policy
        self._describe = TopFeatureFormatter(scorer)
        reference = load_reference(scorer.path.parent, self.spec.sensors)
        self.drift = None if reference is None else DriftMonitor(reference)
        if self.prometheus is not None:
            self.prometheus.model_loaded(meta.model_version, scorer.active_provider, meta.sha256)

    @property
    def metrics(self) -> JobMetrics:
        """The job's figures (:class:`stream.contract.JobMetrics`)."""
        return self.progress.metrics

    def _close(self) -> None:
        self.sink.close()
        self.dead_letters.close()
        if self.prometheus is not None:
            self.prometheus.close()

    def fingerprint(self) -> dict[str, Any]:
        """What the checkpoint's state depends on; a change here needs a new checkpoint."""
        return fingerprint(
            window_ms=self.window_ms,
            sequence_length=self.spec.sequence_length,
            features=list(self.spec.feature_names),
            shuffle_partitions=int(self.spark.conf.get("spark.sql.shuffle.partitions") or 0),
            topic=self.config.kafka.topic,
            state_layout=STATE_LAYOUT,
            deployment=deployment(self.spark),
        )

    def check_checkpoint(self) -> None:
        """Refuse a checkpoint written by an incompatible job (:mod:`stream.checkpoint`)."""
        from stream.storage import HadoopFiles, is_uri

        files = HadoopFiles(self.spark) if is_uri(self.config.checkpoint) else None
        check_checkpoint(self.config.checkpoint, self.fingerprint(), files)

    def start(self) -> list[StreamingQuery]:
        """Check the state store's settings, the services and the checkpoint, then start the
        query."""
        try:
            return self._start()
        except BaseException:
            self._close()  # what the start opened (the Redis client, the metrics port)
            raise

    def _start(self) -> list[StreamingQuery]:
        from stream.checks import check_executor_python, check_services

        use_state_store(self.spark)
        check_services(self.config)
        self.check_checkpoint()
        check_executor_python(self.spark)
        self.switch = ModelSwitch(
            self.sink.client,
            self.sink.keys,
            pointer_folder(self.config),
            self.scorer,
            fixed=None
            if shipped_model(self.spark) is None
            else "this job's executors have only the model it was submitted with (prognos "
            "submit): promote by resubmitting with --model on the same checkpoint",
            load=lambda path: Scorer.load(
                path,
                providers=self.config.provider_list,
                allow_fallback=self.config.allow_fallback,
            ),
            compatible=contract_differences,
        )
        started = self.switch.start()
        if started is not self.scorer:
            self._use(started)
        if self.prometheus is not None and self.config.metrics_port is not None:
            self.prometheus.serve(self.config.metrics_port, self.config.metrics_host)
            _log_spark_metrics(self.spark)
        self.queries = [build_query(self.spark, self.config, self.scorer, self.write_batch)]
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

    def write_batch(self, batch: DataFrame, batch_id: int) -> None:
        """The query's sink: scored windows to Redis, then dead letters to their topic.

        The batch's rows come to the driver once, as Arrow (a Spark Row a window cost more
        than the sink itself at 20,000 windows), dead letters with them: one read of the
        batch, so it is not cached (caching cost about 0.1 s a batch of 20,000 windows).
        """
        import pyarrow.compute as pc

        from stream.scoring import unpack_scored
        from stream.sink import windows_from_arrow

        started = time.perf_counter()
        if self.switch is not None:
            switched = self.switch.before_batch(batch_id)  # before the batch is scored
            if switched is not None:
                self._use(switched)
        table = batch.toArrow()
        dead = pc.is_valid(table.column("dl_rule"))
        n_dead = int(pc.sum(dead).as_py() or 0)
        scored = unpack_scored(table.filter(pc.invert(dead)) if n_dead else table)
        others = other_models(scored, self.scorer.metadata.model_version)
        if others:
            logger.warning(
                "batch %d: the executors scored with model %s, and the job points them at "
                "%s: they cannot read its pointer in %s, so a promotion does not apply there. "
                "They must see the driver's checkpoint folder; on a Spark cluster, run the "
                "job with `prognos submit`",
                batch_id,
                ", ".join(others),
                self.scorer.metadata.model_version,
                pointer_folder(self.config),
            )
        windows = windows_from_arrow(scored, self._describe)
        coverage = self.coverage.check(windows, batch_id)  # before anything is written
        result = self.sink.write(windows)
        self.progress.batch_written(
            windows=len(windows),
            events=result.events,
            scoring_ms=float(pc.sum(scored.column("score_ms")).as_py() or 0.0),
            sink_ms=result.seconds * 1000.0,
            redis_ms=result.redis_seconds * 1000.0,
            coverage=coverage,
            event_counts=result.event_counts,
            fleet=result.fleet,
        )
        if self.drift is not None and scored.num_rows:
            self._watch_drift(scored)
        if self.switch is not None:
            self.switch.add_recent(scored.column("sample").drop_null().to_pylist())
        letters = dead_letters(table.filter(dead)) if n_dead else []
        self.progress.batch_read(batch_id, letters)  # a replayed batch's too
        if letters and self.dead_letters.publish(self._query_id(), batch_id, letters):
            self.progress.dead_lettered(Counter(d.rule for d in letters))
        logger.debug(
            "batch %d: %d windows, %d alert events in %.0f ms",
            batch_id,
            len(windows),
            result.events,
            (time.perf_counter() - started) * 1000,
        )

    def _watch_drift(self, scored: pa.Table) -> None:
        """Fold the batch's windows into the drift monitor; publish its figures, notices."""
        import pyarrow.compute as pc
        import redis

        assert self.drift is not None
        ordered = scored.take(pc.sort_indices(scored, [("window_end_ms", "ascending")]))
        notices = self.drift.update(
            ordered.column("device_id").to_pylist(),
            _rows_of(ordered.column("drift_values"), len(self.drift.sensors)),
            int(ordered.column("window_end_ms")[-1].as_py()),
            self.scorer.metadata.model_version,
        )
        try:
            self.drift.publish(self.sink.client, self.sink.keys, notices)
        except redis.RedisError as exc:  # advisory figures: the batch goes on
            logger.warning("could not publish input drift to Redis: %s", exc)
        if self.prometheus is not None:
            self.prometheus.drift_updated(self.drift, notices)

    def _query_id(self) -> str:
        """The running query's id: stable across restarts on one checkpoint."""
        for query in self.spark.streams.active:
            if query.name == QUERY_NAME:
                return str(query.id)
        raise StreamError(f"no active query named {QUERY_NAME}")

    def record_progress(self) -> None:
        """Fold the query's new progress reports into :attr:`metrics` and publish them."""
        self.progress.record(self.queries)

    def request_stop(self, *_: Any) -> None:
        """Ask the job to stop after the batch in flight (signal handler)."""
        self.runner.request_stop()

    def run(self, install_signals: bool = True) -> None:
        """Run until stopped (Ctrl-C, SIGTERM), the query fails, or (available_now) all is read."""
        self.runner.run(install_signals)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop after the batch in flight (bounded by ``timeout_s``); see :class:`QueryRunner`."""
        self.runner.stop(timeout_s)

"""``prognos backtest``: a recording through the real pipeline, judged as ``evaluate`` judges it.

``evaluate`` scores a recording offline: every window the stream job would score, the stream
job's alert policy applied in numpy and Python. The backtest checks that this is what the
running system delivers:

1. the devices ``evaluate`` scores (held out at training) are read with the same options
   (:func:`deploy.fleet_eval.evaluation_inputs`) and ``evaluate`` runs on them;
2. their readings are published, in event-time order, to a topic of the backtest's own by
   the project's producer, validated with the model's catalogue;
3. the stream job runs over that topic with the model (``--available-now``) in this
   process's Spark session, writing under a key prefix of its own;
4. the alert events are read back from Redis, and :func:`models.events.event_metrics`
   judges their openings against the same failures, spans and leads as ``evaluate``.

Both event tables are printed side by side and saved in ``backtest.json`` with every
difference named. One is expected: at the end of a recording the job's watermark never
passes the last window(s) of each device (their end is later than the greatest event time
minus the watermark's delay), so the job scores fewer windows than ``evaluate`` and cannot
alert on those; ``evaluate`` is restricted to the windows the job could close before the
two are compared. Readings the job dead-lettered or dropped as late are counted and named
too. Anything else is a discrepancy, reported as such, and the command exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from deploy.fleet_eval import EvaluationInputs
from models.events import EventTable

logger = logging.getLogger(__name__)

__all__ = ["compare_openings", "publish_recording", "read_openings", "run_backtest"]


def publish_recording(inputs: EvaluationInputs, kafka: Any, catalogue: Any) -> int:
    """Publish the evaluated devices' readings to ``kafka.topic``, in event-time order.

    Returns:
        The readings sent (those the catalogue refuses go to the dead-letter topic).
    """
    from ingest.producer import ReadingProducer
    from ingest.schema import Reading

    recording = inputs.data.recording.restrict(inputs.devices)
    frame = recording.readings.sort_values(["event_time", "device_id"], kind="stable")
    settings = [c for c in recording.settings if c in frame.columns]
    sensors = list(recording.sensors)
    seq = (
        frame["seq"].astype(np.int64)
        if "seq" in frame.columns
        else frame.groupby("device_id").cumcount().astype(np.int64)
    )
    sent = 0
    with ReadingProducer(kafka, source="backtest", catalogue=catalogue) as producer:
        for i, row in enumerate(frame.itertuples(index=False)):
            values = row._asdict()
            reading = Reading(
                str(values["device_id"]),
                datetime.fromtimestamp(float(values["event_time"]), tz=UTC),
                int(seq.iloc[i]),
                {s: _value(values[s]) for s in sensors},
                {s: float(values[s]) for s in settings if _value(values[s]) is not None},
            )
            if producer.send(reading):
                sent += 1
    return sent


def _value(v: Any) -> float | None:
    x = float(v)
    return None if x != x else x


def read_openings(redis_url: str, prefix: str) -> dict[str, list[float]]:
    """Device -> when each of its alerts opened (window end, seconds), from the alert stream."""
    import redis

    from stream.contract import AlertEvent, Keys

    client = redis.Redis.from_url(redis_url)
    try:
        entries: list[Any] = list(client.xrange(Keys(prefix).alerts) or [])
    finally:
        client.close()
    out: dict[str, list[float]] = {}
    for _, fields in entries:
        event = AlertEvent.from_json(fields[b"event"])
        if event.kind == "opened":
            out.setdefault(event.device_id, []).append(event.window_end_ms / 1000.0)
    return out


def compare_openings(
    expected: Mapping[str, Sequence[float]], got: Mapping[str, Sequence[float]]
) -> list[str]:
    """Openings in one but not the other, as ``device@time`` lines (empty: identical)."""
    lines = []
    for device in sorted(set(expected) | set(got)):
        want, have = set(expected.get(device, ())), set(got.get(device, ()))
        for t in sorted(want - have):
            lines.append(f"{device}@{_iso(t)}: evaluate opened an alert, the job did not")
        for t in sorted(have - want):
            lines.append(f"{device}@{_iso(t)}: the job opened an alert, evaluate did not")
    return lines


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run_job(
    model_dir: Path,
    kafka: Any,
    redis: Any,
    catalogue: Path | None,
    checkpoint: Path,
) -> Any:
    """The stream job over the backtest's topic to its end, in a Spark session of its own."""
    from deploy.spark import spark_session
    from stream.config import StreamConfig
    from stream.job import StreamJob
    from stream.session import SparkConfig

    config = replace(
        StreamConfig.from_env(
            {},
            redis_url=redis.url,
            key_prefix=redis.key_prefix,
            checkpoint=checkpoint,
            model_path=model_dir,
            available_now=True,
            catalogue=catalogue,
        ),
        kafka=kafka,
    )
    spark = spark_session(SparkConfig.from_env(app_name="prognos-backtest", ui=False))
    try:
        job = StreamJob(spark, config)
        job.start()
        job.run(install_signals=False)
    finally:
        spark.stop()
    return job


def run_backtest(args: argparse.Namespace) -> int:
    """The ``prognos backtest`` command; returns its exit code (1: unexplained differences)."""
    from deploy import fleet_eval
    from deploy.fleet_eval import alert_openings, evaluation_inputs, judge, policy_for
    from ingest.admin import ensure_topics
    from ingest.catalogue import load_catalogue
    from ingest.config import KafkaConfig
    from models.fleet import score_windows
    from models.scorer import Scorer
    from stream.redis_config import RedisConfig

    inputs = evaluation_inputs(args)
    out = Path(args.out or inputs.model_dir / "backtest")
    out.mkdir(parents=True, exist_ok=True)
    report = fleet_eval.evaluate_inputs(inputs, args, out / "evaluate")
    recording = inputs.data.recording.restrict(inputs.devices)

    scorer = Scorer.load(inputs.model_dir, providers="cpu")
    meta = scorer.metadata
    spec = meta.spec
    window_s = spec.window_seconds
    lead = window_s if args.lead is None else args.lead
    max_lead = spec.horizon_seconds if args.max_lead is None else args.max_lead
    scored = score_windows(scorer.score, meta.norm, spec, recording)
    policy = policy_for(
        meta.threshold, threshold=args.threshold, hysteresis=args.hysteresis, cooldown=args.cooldown
    )

    catalogue_path = Path(args.catalogue) if args.catalogue else None
    if catalogue_path is None and (inputs.model_dir / "catalogue.toml").is_file():
        catalogue_path = inputs.model_dir / "catalogue.toml"
    run = uuid.uuid4().hex[:8]
    kafka = KafkaConfig.from_env(topic=f"prognos.backtest.{run}")
    redis = RedisConfig.from_env(key_prefix=f"prognos-backtest-{run}")
    ensure_topics(kafka)
    started = time.monotonic()
    try:
        sent = publish_recording(inputs, kafka, load_catalogue(catalogue_path))
        print(f"backtest: {sent:,} readings of {len(inputs.devices)} devices to {kafka.topic}")
        with tempfile.TemporaryDirectory(prefix="prognos-backtest-") as tmp:
            job = _run_job(inputs.model_dir, kafka, redis, catalogue_path, Path(tmp) / "checkpoint")
        got = read_openings(redis.url, redis.key_prefix)
    finally:
        if not args.keep:
            _clean_up(kafka, redis)
    seconds = time.monotonic() - started

    # What the job could close: windows ending by the last event time minus the watermark.
    last_event = float(recording.readings["event_time"].max())
    watermark_s = window_s  # the job's default, as the backtest runs it
    closable = scored.window_end <= last_event - watermark_s
    open_at_end = int((~closable).sum())
    expected_scored = replace(
        scored,
        device=scored.device[closable],
        window_start=scored.window_start[closable],
        window_end=scored.window_end[closable],
        t_end=scored.t_end[closable],
        risk=scored.risk[closable],
        y=scored.y[closable],
        rul=scored.rul[closable],
    )
    expected = alert_openings(expected_scored, policy, window_s, meta.model_version)
    evaluate_table = judge(expected, recording, scored, lead, max_lead, window_s)
    backtest_table = judge(got, recording, scored, lead, max_lead, window_s)
    m = job.metrics
    differences = compare_openings(expected, got)
    named = [
        f"{open_at_end} windows at the end of the recording that the job's watermark never "
        f"passed ({scored.__len__()} evaluate scored, {len(expected_scored)} the job could "
        "close): evaluate's alerts are compared on the windows the job could close",
    ]
    if m.windows_scored_total != len(expected_scored):
        differences.insert(
            0,
            f"the job scored {m.windows_scored_total:,} windows, {len(expected_scored):,} "
            "could close",
        )
    if m.dead_letters_total:
        named.append(f"{m.dead_letters_total} readings dead-lettered by the catalogue")
    if m.dropped_by_watermark_total:
        named.append(f"{m.dropped_by_watermark_total} readings dropped as late by the watermark")
    result = {
        "recording": str(inputs.data.path),
        "model": str(inputs.model_dir),
        "devices": len(inputs.devices),
        "devices_from": inputs.devices_from,
        "readings_sent": sent,
        "seconds": round(seconds, 1),
        "job": {
            "windows_scored": m.windows_scored_total,
            "alert_events": m.alerts_total,
            "dead_letters": m.dead_letters_total,
            "late_readings": m.dropped_by_watermark_total,
        },
        "evaluate": {
            "windows_scored": len(scored),
            "windows_the_job_could_close": len(expected_scored),
            "events": evaluate_table.to_dict(details=False),
            "report": str(out / "evaluate" / "report.json"),
        },
        "backtest": {"events": backtest_table.to_dict(details=False)},
        "named_differences": named,
        "discrepancies": differences,
        "evaluate_all_windows": report["events"],
    }
    (out / "backtest.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    _print(evaluate_table, backtest_table, named, differences)
    print(f"backtest: {out / 'backtest.json'}")
    return 0 if not differences else 1


def _clean_up(kafka: Any, redis: Any) -> None:
    """Delete the backtest's topics and keys (best effort: a leftover is only clutter)."""
    import redis as redis_client

    try:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(**kafka.kafka_kwargs())
        try:
            admin.delete_topics([kafka.topic, kafka.dead_letter_topic])
        finally:
            admin.close()
    except Exception as exc:
        logger.warning("could not delete the backtest's topics: %s", exc)
    try:
        client = redis.client()
        try:
            keys = list(client.scan_iter(match=redis.keys.pattern, count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    except redis_client.RedisError as exc:
        logger.warning("could not delete the backtest's Redis keys: %s", exc)


def _print(
    evaluate: EventTable, backtest: EventTable, named: list[str], differences: list[str]
) -> None:
    from models.fleet_report import events_rows

    tables = {
        "evaluate (offline)": evaluate.to_dict(details=False),
        "backtest (Kafka, Spark, Redis)": backtest.to_dict(details=False),
    }
    for line in events_rows(tables):
        if not line.startswith("| ---"):
            print("  " + line.strip("|").replace(" | ", "  |  ").strip(), flush=True)
    for line in named:
        print(f"named difference: {line}")
    if differences:
        print(
            f"DISCREPANCIES ({len(differences)}): the pipeline did not deliver what evaluate says"
        )
        for line in differences[:20]:
            print(f"  {line}")
    else:
        print("the pipeline raised the alerts evaluate predicts, on every window it closed")

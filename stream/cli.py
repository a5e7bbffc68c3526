"""The stream package's part of the ``prognos`` command.

It registers ``prognos alerts`` (:mod:`stream.alerts_cli`) and defines the stream job's
flags and how they become a :class:`stream.config.StreamConfig`
(:func:`add_job_arguments`, :func:`job_config`). ``prognos stream`` itself is registered by
``deploy``, which resolves Spark's Kafka connector and builds the session the job runs in.

Only ``argparse`` (and the standard library) is imported at module level, as the
dispatcher expects.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``alerts``."""
    from stream import alerts_cli

    alerts_cli.register(subparsers)


def add_job_arguments(job: argparse.ArgumentParser) -> None:
    """The stream job's flags; each overrides its environment variable."""
    job.add_argument("--topic", help="readings topic (PROGNOS_TOPIC, prognos.readings)")
    job.add_argument("--dlq-topic", help="dead-letter topic (PROGNOS_DLQ_TOPIC, <topic>.dlq)")
    job.add_argument("--model", help="model folder (PROGNOS_MODEL, models/default)")
    job.add_argument(
        "--catalogue",
        help="sensor catalogue to validate with: a TOML file or default, simulator, cmapss "
        "(PROGNOS_CATALOGUE; default: the model folder's catalogue.toml, else default)",
    )
    job.add_argument("--providers", help="ONNX Runtime providers: auto or a comma-separated list")
    job.add_argument(
        "--allow-fallback",
        action="store_true",
        help="accept CPU if a requested GPU provider is not active",
    )
    job.add_argument(
        "--checkpoint", help="checkpoint folder (PROGNOS_CHECKPOINT, .prognos/checkpoints/stream)"
    )
    job.add_argument(
        "--starting-offsets",
        choices=["earliest", "latest"],
        help="where a new checkpoint starts (earliest)",
    )
    job.add_argument(
        "--max-offsets-per-trigger", type=int, help="records per micro-batch at most (50000)"
    )
    job.add_argument(
        "--no-fail-on-data-loss",
        action="store_true",
        help="go on when Kafka deleted unread offsets",
    )
    job.add_argument(
        "--trigger", type=float, dest="trigger_seconds", help="micro-batch interval in seconds (1)"
    )
    job.add_argument(
        "--watermark",
        type=float,
        dest="watermark_seconds",
        help="allowed lateness in event-time seconds (one window)",
    )
    job.add_argument(
        "--state-ttl",
        type=float,
        dest="state_ttl_seconds",
        help="forget a device silent this long, in event-time seconds "
        "(PROGNOS_STATE_TTL; three times the model's K windows; 0: never)",
    )
    job.add_argument("--threshold", type=float, help="alert threshold (default: the model's)")
    job.add_argument("--hysteresis", type=float, help="resolve below threshold minus this (0.1)")
    job.add_argument(
        "--cooldown",
        type=int,
        dest="cooldown_windows",
        help="windows without a new alert after a resolve (3)",
    )
    job.add_argument("--key-prefix", help="Redis key prefix (PROGNOS_KEY_PREFIX, prognos)")
    job.add_argument(
        "--stream-maxlen", type=int, help="approximate length bound of the alert stream (100000)"
    )
    job.add_argument(
        "--redis-wait-replicas",
        type=int,
        help="wait until this many Redis replicas have each batch's writes "
        "(PROGNOS_REDIS_WAIT_REPLICAS, 0)",
    )
    job.add_argument(
        "--min-coverage",
        type=float,
        help="warn about windows with a smaller share of the model's sensors (0.8)",
    )
    job.add_argument(
        "--max-future-skew",
        type=float,
        dest="max_future_skew_s",
        help="refuse readings this many seconds ahead of the job's clock (86400)",
    )
    job.add_argument(
        "--available-now", action="store_true", help="process what the topic holds now, then stop"
    )
    job.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics at /metrics on this port (PROGNOS_METRICS_PORT; off)",
    )
    job.add_argument(
        "--metrics-host",
        help="address the metrics endpoint listens on (PROGNOS_METRICS_HOST, 127.0.0.1)",
    )


def job_config(args: argparse.Namespace) -> Any:
    """The :class:`stream.config.StreamConfig` of the environment and these flags."""
    from dataclasses import replace
    from pathlib import Path

    from stream.config import StreamConfig
    from stream.storage import location

    config = StreamConfig.from_env(
        model_path=Path(args.model) if args.model else None,
        catalogue=Path(args.catalogue) if args.catalogue else None,
        checkpoint=location(args.checkpoint) if args.checkpoint else None,
        providers=args.providers,
        allow_fallback=args.allow_fallback or None,
        starting_offsets=args.starting_offsets,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        fail_on_data_loss=False if args.no_fail_on_data_loss else None,
        trigger_seconds=args.trigger_seconds,
        watermark_seconds=args.watermark_seconds,
        state_ttl_seconds=args.state_ttl_seconds,
        threshold=args.threshold,
        hysteresis=args.hysteresis,
        cooldown_windows=args.cooldown_windows,
        key_prefix=args.key_prefix,
        stream_maxlen=args.stream_maxlen,
        min_coverage=args.min_coverage,
        redis_wait_replicas=args.redis_wait_replicas,
        available_now=args.available_now or None,
        max_future_skew_s=args.max_future_skew_s,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
    )
    kafka = config.kafka.with_topic(args.topic)
    if args.dlq_topic:
        kafka = replace(kafka, dlq_topic=args.dlq_topic)
    return replace(config, kafka=kafka)

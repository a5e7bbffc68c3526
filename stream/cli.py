"""Subcommands of the stream package: ``prognos smoke`` (and, later, ``prognos stream``)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    from stream import alerts_cli, status_cli

    _register_stream(subparsers)
    _register_demo(subparsers)
    alerts_cli.register(subparsers)
    status_cli.register(subparsers)
    smoke = subparsers.add_parser(
        "smoke",
        help="send readings through Kafka -> Spark -> Redis and count what arrives",
        description="The smoke pipeline: send readings with kafka-python, read them with a "
        "Spark Structured Streaming query through format('kafka'), write them to Redis "
        "through foreachBatch, and check every one arrived exactly once. Uses the local "
        "stack (prognos stack up) or PROGNOS_KAFKA_BOOTSTRAP / PROGNOS_REDIS_URL.",
    )
    smoke.add_argument("--count", type=int, default=1000, help="readings to send (default 1000)")
    smoke.add_argument("--topic", help="topic to use (default: a new prognos.smoke.<id> topic)")
    smoke.set_defaults(handler=_smoke)


def _smoke(args: argparse.Namespace) -> int:
    import tempfile
    import uuid
    from pathlib import Path

    from deploy.config import StackConfig
    from deploy.redact import redact_url
    from deploy.stack import kafka_answers, redis_answers
    from stream.errors import StreamError
    from stream.session import SparkConfig, build_session
    from stream.smoke import run_smoke

    config = StackConfig.from_env()
    from ingest.config import KafkaConfig

    if KafkaConfig.from_env().security_protocol != "PLAINTEXT":
        raise StreamError(
            "prognos smoke checks a PLAINTEXT broker (the local stack without --secure); the "
            "secure profile is checked by `prognos stream` itself, which refuses to start when "
            "the broker does not answer with the configured security settings"
        )
    if not kafka_answers(config.kafka_bootstrap):
        raise StreamError(
            f"no Kafka broker answers at {config.kafka_bootstrap}: run `prognos stack up`, "
            "or set PROGNOS_KAFKA_BOOTSTRAP to your cluster"
        )
    if not redis_answers(config.redis_url):
        raise StreamError(
            f"no Redis answers at {redact_url(config.redis_url)}: run `prognos stack up`, "
            "or set PROGNOS_REDIS_URL"
        )
    run_id = uuid.uuid4().hex[:8]
    topic = args.topic or f"prognos.smoke.{run_id}"
    spark = build_session(SparkConfig.from_env(app_name="prognos-smoke", ui=False))
    try:
        with tempfile.TemporaryDirectory(prefix="prognos-smoke-") as tmp:
            result = run_smoke(
                spark,
                config.kafka_bootstrap,
                topic,
                config.redis_url,
                f"prognos:smoke:{run_id}",
                Path(tmp) / "checkpoint",
                args.count,
            )
    finally:
        spark.stop()
    print(
        f"smoke pipeline: sent {result.sent} readings to {topic} on {config.kafka_bootstrap}; "
        f"Spark delivered {result.delivered} to Redis ({result.duplicated} duplicated, "
        f"{result.missing} missing) in {result.seconds:.1f}s -> {'OK' if result.ok else 'FAILED'}"
    )
    return 0 if result.ok else 1


def _register_stream(subparsers: Any) -> None:
    job = subparsers.add_parser(
        "stream",
        help="run the stream job: Kafka -> Spark -> ONNX Runtime -> Redis alerts",
        description="Read readings from Kafka, build each device's window features, score "
        "failure risk with the ONNX model, and write alerts to Redis. Runs until Ctrl-C or "
        "SIGTERM (the batch in flight finishes first), or with --available-now until the "
        "topic is read. Kafka and Redis come from the local stack or PROGNOS_KAFKA_BOOTSTRAP "
        "/ PROGNOS_REDIS_URL; see README 'The stream job' for every setting.",
    )
    job.add_argument("--topic", help="readings topic (PROGNOS_TOPIC, prognos.readings)")
    job.add_argument("--dlq-topic", help="dead-letter topic (PROGNOS_DLQ_TOPIC, <topic>.dlq)")
    job.add_argument("--model", help="model folder (PROGNOS_MODEL, models/default)")
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
        "--max-future-skew",
        type=float,
        dest="max_future_skew_s",
        help="refuse readings this many seconds ahead of the job's clock (86400)",
    )
    job.add_argument(
        "--available-now", action="store_true", help="process what the topic holds now, then stop"
    )
    job.set_defaults(handler=_stream)


def _stream(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from stream.job import StreamConfig, StreamJob
    from stream.session import SparkConfig, build_session

    config = StreamConfig.from_env(
        model_path=Path(args.model) if args.model else None,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        providers=args.providers,
        allow_fallback=args.allow_fallback or None,
        starting_offsets=args.starting_offsets,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        fail_on_data_loss=False if args.no_fail_on_data_loss else None,
        trigger_seconds=args.trigger_seconds,
        watermark_seconds=args.watermark_seconds,
        threshold=args.threshold,
        hysteresis=args.hysteresis,
        cooldown_windows=args.cooldown_windows,
        key_prefix=args.key_prefix,
        stream_maxlen=args.stream_maxlen,
        available_now=args.available_now or None,
        max_future_skew_s=args.max_future_skew_s,
    )
    kafka = config.kafka
    if args.topic:
        kafka = kafka.with_topic(args.topic)
    if args.dlq_topic:
        kafka = replace(kafka, dlq_topic=args.dlq_topic)
    config = replace(config, kafka=kafka)
    spark = build_session(SparkConfig.from_env(app_name="prognos-stream"))
    try:
        job = StreamJob(spark, config)
        job.start()
        job.run()
    finally:
        spark.stop()
    m = job.metrics
    print(
        f"stream job stopped after batch {m.batch_id}: {m.windows_scored_total} windows scored, "
        f"{m.alerts_total} alert events, {m.dead_letters_total} dead letters, "
        f"{m.dropped_by_watermark_total} late readings dropped"
    )
    return 0


def _register_demo(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the whole system: stack, stream job, a degrading fleet, live alerts",
        description="Bring the local stack up, start the stream job with the default model, "
        "start a simulated fleet of turbofans in which a few degrade fast (or replay NASA "
        "C-MAPSS with --cmapss), and show alerts as they arrive. Ctrl-C stops everything "
        "the demo started.",
    )
    demo.add_argument("--machines", type=int, default=12, help="turbofans in the fleet (12)")
    demo.add_argument("--fast-fail", type=int, default=3, help="how many degrade fast (3)")
    demo.add_argument(
        "--rate", type=int, default=600, help="simulated seconds per second (600: a cycle a second)"
    )
    demo.add_argument("--seed", type=int, default=7, help="the fleet's seed (7)")
    demo.add_argument(
        "--cmapss",
        nargs="?",
        const="",
        metavar="PATH",
        help="replay C-MAPSS instead (default ../shared/data/cmapss/train_FD001.txt)",
    )
    demo.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: Ctrl-C)"
    )
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stream.demo import DemoConfig, default_cmapss, run_demo

    cmapss = (
        None if args.cmapss is None else (Path(args.cmapss) if args.cmapss else default_cmapss())
    )
    return run_demo(
        DemoConfig(
            machines=args.machines,
            fast_fail=args.fast_fail,
            rate=args.rate,
            seed=args.seed,
            cmapss=cmapss,
            duration_s=args.duration,
        )
    )

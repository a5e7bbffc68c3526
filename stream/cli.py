"""Subcommands of the stream package: ``prognos smoke`` (and, later, ``prognos stream``)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
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

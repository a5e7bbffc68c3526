"""``prognos status``: what runs, the stream job's progress, the fleet's risk from Redis.

It reads, never writes: the local stack's PID files and health checks
(:meth:`deploy.stack.Stack.status`), what the stream job keeps in Redis (the metrics,
dead-letter and fleet hashes and the risk ranking of :mod:`stream.contract`), the newest
offsets file of the job's checkpoint and the topic's end offsets in Kafka (lag). Each part
that cannot be read says so in one line; the command never fails for it.

Only ``argparse`` (and the standard library) is imported at module level, as the
dispatcher (:mod:`deploy.cli`) expects.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stream.storage import Location, is_uri, location

logger = logging.getLogger(__name__)

# The job publishes metrics after every batch; older than this, it is probably not running.
STALE_AFTER_S = 60.0
TOP_DEVICES = 5


def register(subparsers: Any) -> None:
    """Add ``status``."""
    status = subparsers.add_parser(
        "status",
        help="what runs, the stream job's progress and lag, the fleet's risk",
        description="Show the local stack's services, the stream job's last batch (rows/s, "
        "batch time, totals) and Kafka lag, dead letters per reason, and the fleet's risk "
        "summary with the riskiest devices, from Redis. Works when nothing runs.",
    )
    status.add_argument("--key-prefix", help="Redis key prefix (PROGNOS_KEY_PREFIX, prognos)")
    status.add_argument(
        "--checkpoint",
        help="the stream job's checkpoint, for Kafka lag "
        "(PROGNOS_CHECKPOINT, .prognos/checkpoints/stream)",
    )
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.set_defaults(handler=_status)


# -- reading ------------------------------------------------------------------------------


def read_checkpoint_offsets(checkpoint: Location, topic: str) -> tuple[int, dict[int, int]] | None:
    """The newest batch's end offsets of ``topic`` from ``checkpoint/main/offsets``.

    Spark's offset log has one file per batch, named by batch id: a version line, a
    metadata line, then one JSON line per source (``{"topic": {"0": offset, ...}}``).

    Returns:
        (batch id, partition -> offset), or ``None`` when there is no such file or topic,
        or the checkpoint is on a Hadoop file system (the job's ``kafka_lag`` metric
        reports the lag there).
    """
    if is_uri(checkpoint):
        return None
    folder = Path(checkpoint) / "main" / "offsets"
    try:
        batches = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    except (FileNotFoundError, NotADirectoryError):
        return None
    for batch in reversed(batches):
        try:
            lines = (folder / str(batch)).read_text().splitlines()
        except OSError:
            continue
        for line in lines[2:]:
            try:
                source = json.loads(line)
            except ValueError:
                continue
            if isinstance(source, dict) and isinstance(source.get(topic), dict):
                return batch, {int(p): int(o) for p, o in source[topic].items()}
        return None
    return None


def kafka_lag(kafka: Any, offsets: Mapping[int, int], timeout_s: float = 5.0) -> int:
    """Readings in the topic after ``offsets`` (sum over partitions of end - offset)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **kafka.kafka_kwargs(),
        request_timeout_ms=int(timeout_s * 1000) + 1000,
        api_version_auto_timeout_ms=int(timeout_s * 1000),
    )
    try:
        partitions = consumer.partitions_for_topic(kafka.topic) or set(offsets)
        tps = [TopicPartition(kafka.topic, p) for p in sorted(partitions)]
        ends = consumer.end_offsets(tps)
        return sum(max(end - offsets.get(tp.partition, 0), 0) for tp, end in ends.items())
    finally:
        consumer.close()


def collect(
    redis_url: str, prefix: str, checkpoint: Location, kafka: Any, services: list[Any] | None
) -> dict[str, Any]:
    """The status report as plain data (what ``--json`` prints).

    Args:
        redis_url: the Redis the job writes to.
        prefix: the key prefix.
        checkpoint: the job's checkpoint folder.
        kafka: an :class:`ingest.config.KafkaConfig` (topic and connection), or ``None``.
        services: the stack's :class:`deploy.stack.ServiceStatus` list, or ``None``.
    """
    from dataclasses import asdict

    import redis

    from stream.contract import FleetSummary, JobMetrics, Keys
    from stream.redis_config import redact_url

    keys = Keys(prefix)
    report: dict[str, Any] = {
        "prefix": prefix,
        "services": [
            {"name": s.name, "state": s.state, "address": s.address, "pid": s.pid}
            for s in services or []
        ],
        "redis": {"url": redact_url(redis_url), "reachable": False},
        "metrics": {},
        "dead_letters": {},
        "fleet": {},
        "top_devices": [],
        "lag": {"readings": None, "detail": "not computed"},
    }
    client = redis.Redis.from_url(
        redis_url, socket_timeout=3, socket_connect_timeout=2, decode_responses=True
    )
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys.metrics)
        pipe.hgetall(keys.deadletters)
        pipe.hgetall(keys.fleet)
        pipe.zrevrange(keys.risk_rank, 0, TOP_DEVICES - 1, withscores=True)
        metrics, dead, fleet, top = pipe.execute()
        report["redis"]["reachable"] = True
        found_metrics = JobMetrics.from_hash(metrics)
        report["metrics"] = asdict(found_metrics) if found_metrics else {}
        report["dead_letters"] = {k: int(v) for k, v in dead.items()}
        summary = FleetSummary.from_hash(fleet)
        report["fleet"] = asdict(summary) if summary else {}
        report["top_devices"] = [{"device": d, "risk": float(r)} for d, r in top]
    except (redis.RedisError, OSError, ValueError) as exc:
        report["redis"]["error"] = str(exc)
    finally:
        client.close()
    report["lag"] = _lag(checkpoint, kafka)
    return report


def _lag(checkpoint: Location, kafka: Any) -> dict[str, Any]:
    if kafka is None:
        return {"readings": None, "detail": "Kafka settings unavailable"}
    if is_uri(checkpoint):
        return {
            "readings": None,
            "detail": f"the checkpoint is on {checkpoint}: the job's prognos_kafka_lag_records "
            "metric (--metrics-port) reports the lag",
        }
    found = read_checkpoint_offsets(checkpoint, kafka.topic)
    if found is None:
        return {"readings": None, "detail": f"no offsets of {kafka.topic} in {checkpoint}"}
    batch, offsets = found
    from ingest.admin import kafka_answers

    if not kafka_answers(kafka.bootstrap_servers, timeout_s=3, client=kafka.security_kwargs()):
        return {
            "readings": None,
            "detail": f"no Kafka broker answers at {kafka.bootstrap_servers} "
            f"({kafka.describe_security()})",
        }
    try:
        lag = kafka_lag(kafka, offsets)
    except Exception as exc:  # any client failure only means the lag is unknown
        return {"readings": None, "detail": f"Kafka end offsets unavailable ({exc})"}
    return {
        "readings": lag,
        "detail": f"{kafka.topic}, after the offsets of batch {batch} in {checkpoint}",
    }


# -- rendering ------------------------------------------------------------------------------


def _ago(ms: int, now_ms: int) -> str:
    s = max((now_ms - ms) / 1000, 0)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def _num(m: Mapping[str, str], key: str, default: float = 0.0) -> float:
    try:
        return float(m.get(key, default))
    except ValueError:
        return default


def render(report: Mapping[str, Any], now_ms: int | None = None) -> list[str]:
    """The report as the lines ``prognos status`` prints."""
    from stream.contract import Keys

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    keys = Keys(report["prefix"])
    out = ["services"]
    if report["services"]:
        for s in report["services"]:
            pid = f" (pid {s['pid']})" if s.get("pid") else ""
            out.append(f"  {s['name']:<6} {s['state']:<11} {s['address']}{pid}")
    else:
        out.append(f"  {report.get('services_error', 'unknown')}")

    redis_info = report["redis"]
    if not redis_info["reachable"]:
        out += [
            f"redis {redis_info['url']}",
            f"  not reachable ({redis_info.get('error', 'no answer')}): run `prognos stack up`, "
            "or set PROGNOS_REDIS_URL",
            "stream job: unknown (no Redis)",
            "fleet: unknown (no Redis)",
        ]
        return out

    m = report["metrics"]
    out.append(f"stream job ({keys.metrics})")
    if not m:
        out.append("  no data yet: no batch recorded (is `prognos stream` running?)")
    else:
        updated = int(_num(m, "updated_ms"))
        age_s = (now_ms - updated) / 1000
        state = "running" if age_s <= STALE_AFTER_S else "not running (no batch for a while)"
        out.append(f"  {state}; last batch {m.get('batch_id', '?')} {_ago(updated, now_ms)}")
        out.append(
            f"  {int(_num(m, 'input_rows'))} readings at {_num(m, 'input_rows_per_s'):.0f}/s in "
            f"{int(_num(m, 'batch_ms'))} ms (scoring {_num(m, 'scoring_ms'):.0f} ms, "
            f"sink {_num(m, 'sink_ms'):.0f} ms) on {m.get('provider') or '?'}"
        )
        out.append(
            f"  totals: {int(_num(m, 'windows_scored_total'))} windows scored, "
            f"{int(_num(m, 'alerts_total'))} alert events, "
            f"{int(_num(m, 'dead_letters_total'))} dead letters, "
            f"{int(_num(m, 'dropped_by_watermark_total'))} late readings dropped"
        )
        if "coverage" in m:
            out.append(
                f"  coverage: {_num(m, 'coverage', 1.0):.0%} of the model's sensors in the last "
                f"batch's windows; {int(_num(m, 'low_coverage_windows_total'))} windows under "
                "the minimum so far"
            )
    lag = report["lag"]
    if lag["readings"] is None:
        out.append(f"  kafka lag: unknown ({lag['detail']})")
    else:
        out.append(f"  kafka lag: {lag['readings']} readings ({lag['detail']})")

    dead = report["dead_letters"]
    if dead:
        out.append(f"dead letters ({keys.deadletters})")
        for reason, count in sorted(dead.items(), key=lambda kv: -kv[1]):
            out.append(f"  {reason:<32} {count}")
    else:
        out.append("dead letters: none")

    fleet = report["fleet"]
    out.append(f"fleet ({keys.fleet})")
    if not fleet:
        out.append("  no data yet: no window scored")
    else:
        line = (
            f"  {int(_num(fleet, 'devices'))} devices, {int(_num(fleet, 'open_alerts'))} open "
            f"alerts, {int(_num(fleet, 'at_risk'))} at or above the threshold"
        )
        if fleet.get("max_risk") is not None:
            line += f"; highest risk {_num(fleet, 'max_risk'):.3f} ({fleet['max_risk_device']})"
        if fleet.get("updated_ms"):
            line += f"; updated {_ago(int(_num(fleet, 'updated_ms')), now_ms)}"
        out.append(line)
        if report["top_devices"]:
            out.append(f"  top {len(report['top_devices'])} by risk:")
            for d in report["top_devices"]:
                out.append(f"    {d['device']:<24} {d['risk']:.3f}")
    return out


# -- the command ------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from deploy.config import StackConfig
    from stream.config import default_checkpoint
    from stream.redis_config import RedisConfig

    stack_config = StackConfig.from_env()
    redis = RedisConfig.from_env(key_prefix=args.key_prefix)
    checkpoint = location(args.checkpoint) if args.checkpoint else default_checkpoint()
    services: list[Any] | None = None
    services_error = ""
    try:
        from deploy.stack import Stack

        services = Stack(stack_config).status()
    except Exception as exc:  # a status line, never a traceback
        services_error = f"unknown ({exc})"
    kafka: Any = None
    try:
        from ingest.config import KafkaConfig

        kafka = KafkaConfig.from_env()
    except Exception as exc:
        logger.warning("Kafka settings are invalid (%s); lag unknown", exc)
    report = collect(redis.url, redis.key_prefix, checkpoint, kafka, services)
    if services_error:
        report["services_error"] = services_error
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print("\n".join(render(report)))
    return 0

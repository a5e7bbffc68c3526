"""``prognos replay``: publish a recording (CSV, Parquet, JSON lines, C-MAPSS) to Kafka."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="replay a recording (CSV, Parquet, JSON lines, NASA C-MAPSS) to Kafka",
        description="Publish the readings of a recorded file to the readings topic. Rows that do "
        "not parse or break a validation rule go to the dead-letter topic (<topic>.dlq) with the "
        "reason in headers, and are counted and reported with file:line. The broker is "
        "PROGNOS_KAFKA_BOOTSTRAP (default 127.0.0.1:9092; `prognos stack up` starts one).",
    )
    replay.add_argument("path", help="the recording")
    replay.add_argument(
        "--format",
        choices=["csv", "parquet", "jsonl", "cmapss"],
        help="file format (default: from the name; *_FD00N.txt is C-MAPSS)",
    )
    replay.add_argument("--mapping", help="a JSON or TOML column-mapping file (see ingest.columns)")
    replay.add_argument("--device-column", help="column of the device id (default device_id)")
    replay.add_argument("--time-column", help="column of the event time (default event_time)")
    replay.add_argument(
        "--seq-column", help="column of the sequence number (default seq, if present)"
    )
    replay.add_argument(
        "--time-format",
        choices=["iso", "epoch_s", "epoch_ms", "cycle"],
        help="how the time column is written (default iso)",
    )
    replay.add_argument(
        "--sensors",
        help="comma-separated sensor columns, NAME or NAME=COLUMN "
        "(default: every column not mapped otherwise)",
    )
    replay.add_argument("--settings", help="comma-separated setting columns, NAME or NAME=COLUMN")
    replay.add_argument("--metadata", help="comma-separated metadata columns, NAME or NAME=COLUMN")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="recorded seconds per wall-clock second (default 1: as recorded)",
    )
    pace.add_argument("--as-fast-as-possible", action="store_true", help="no pacing")
    replay.add_argument(
        "--shift-to-now",
        action="store_true",
        help="shift timestamps so the first reading is now (default: keep them)",
    )
    replay.add_argument("--strict", action="store_true", help="stop at the first bad row")
    replay.add_argument("--limit", type=int, help="replay at most this many rows")
    replay.add_argument("--topic", help="readings topic (PROGNOS_TOPIC, prognos.readings)")
    replay.add_argument(
        "--cycle-seconds",
        type=float,
        default=600.0,
        help="seconds per cycle for C-MAPSS / cycle times (default 600)",
    )
    replay.add_argument(
        "--base-time", help="UTC origin of cycle times (default 2026-01-01T00:00:00Z)"
    )
    bar = replay.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always draw the progress bar (default: when stderr is a terminal)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    replay.set_defaults(handler=_replay)


def _columns(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    out: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if item:
            name, _, column = item.partition("=")
            out[name.strip()] = (column or name).strip()
    return out


def _mapping(args: argparse.Namespace, base_time: Any) -> Any:
    from dataclasses import replace
    from pathlib import Path

    from ingest.columns import ColumnMapping

    overrides: dict[str, Any] = {
        "device": args.device_column,
        "time": args.time_column,
        "seq": args.seq_column,
        "time_format": args.time_format,
        "sensors": _columns(args.sensors),
        "settings": _columns(args.settings),
        "metadata": _columns(args.metadata),
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.mapping:
        mapping = ColumnMapping.load(Path(args.mapping))
    elif overrides:
        mapping = ColumnMapping(cycle_s=args.cycle_seconds, base_time=base_time)
    else:
        return None
    return replace(mapping, **overrides) if overrides else mapping


def _replay(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ingest.columns import CMAPSS_BASE_TIME, parse_iso
    from ingest.config import KafkaConfig
    from ingest.errors import ConfigError
    from ingest.producer import ReadingProducer
    from ingest.replay import ReplayOptions, prepare_replay, replay_file

    base_time = CMAPSS_BASE_TIME
    if args.base_time:
        try:
            base_time = parse_iso(args.base_time)
        except ValueError:
            raise ConfigError(f"--base-time {args.base_time!r} is not an ISO-8601 time") from None
    if args.speed is not None and args.speed <= 0:
        raise ConfigError(f"--speed {args.speed}: must be > 0 (or use --as-fast-as-possible)")
    if args.limit is not None and args.limit < 0:
        raise ConfigError(f"--limit {args.limit}: must be >= 0")
    options = ReplayOptions(
        fmt=args.format,
        mapping=_mapping(args, base_time),
        speed=None if args.as_fast_as_possible else args.speed,
        shift_to_now=args.shift_to_now,
        strict=args.strict,
        limit=args.limit,
        progress=args.progress,
        cmapss_base_time=base_time,
        cmapss_cycle_s=args.cycle_seconds,
    )
    path = Path(args.path)
    config = KafkaConfig.from_env().with_topic(args.topic)
    plan = prepare_replay(path, options)  # file and mapping errors before connecting
    with ReadingProducer(config, source=str(path)) as producer:
        report = replay_file(plan, producer)
    print(
        f"replayed {report.rows:,} rows from {path} in {report.seconds:.1f}s ({report.rate:,.0f} rows/s): "
        f"{report.sent:,} readings to {config.topic}, {report.dead_lettered:,} dead letters to "
        f"{config.dead_letter_topic}"
    )
    for reason, count in sorted({**report.bad_rows, **report.invalid}.items()):
        print(f"  dead letters {reason}: {count:,}")
    for line in report.first_bad:
        print(f"  bad row {line}", file=sys.stderr)
    return 130 if report.interrupted else 0

"""``prognos replay`` (publish a recording to Kafka) and ``prognos catalogue`` (infer, show)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="replay a recording (CSV, Parquet, JSON lines, NASA C-MAPSS) to Kafka",
        description="Publish the readings of a recorded file to the readings topic. Rows that do "
        "not parse or break a validation rule of the catalogue in force go to the dead-letter "
        "topic (<topic>.dlq) with the reason in headers, and are counted and reported with "
        "file:line. The broker is PROGNOS_KAFKA_BOOTSTRAP (default 127.0.0.1:9092; `prognos "
        "stack up` starts one).",
    )
    replay.add_argument(
        "path", help="the recording: a file, or a URI such as hdfs://namenode:8020/fleet.csv"
    )
    add_column_options(replay)
    replay.add_argument(
        "--catalogue",
        help="the sensor catalogue to validate with: a TOML file or default, simulator, cmapss "
        "(PROGNOS_CATALOGUE; default: default). Its settings and metadata fields map the columns "
        "of those names; with unknown = dead-letter, only its sensors are sent",
    )
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="recorded seconds per wall-clock second (default 1: as recorded)",
    )
    pace.add_argument("--as-fast-as-possible", action="store_true", help="no pacing")
    replay.add_argument(
        "--sort-by-time",
        action="store_true",
        help="send the readings in event-time order across devices, as a live fleet does "
        "(reads the whole file first); without it a file sorted by device reaches the stream "
        "job out of order, and readings behind its watermark are dropped as late",
    )
    replay.add_argument(
        "--shift-to-now",
        action="store_true",
        help="shift timestamps so the first reading is now (default: keep them)",
    )
    replay.add_argument("--strict", action="store_true", help="stop at the first bad row")
    replay.add_argument("--limit", type=int, help="replay at most this many rows")
    replay.add_argument("--topic", help="readings topic (PROGNOS_TOPIC, prognos.readings)")
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

    catalogue = subparsers.add_parser(
        "catalogue",
        help="sensor catalogues: propose one from a recording, show one",
        description="A catalogue (TOML) declares a fleet's sensors and settings with unit and "
        "range, its metadata fields, sampling period, and what to do with unknown sensors; the "
        "producers, `prognos replay` and the stream job validate readings with it.",
    )
    actions = catalogue.add_subparsers(dest="action", metavar="ACTION", required=True)
    infer = actions.add_parser(
        "infer",
        help="propose a catalogue for a recording",
        description="Read a recording as `prognos replay` would (same column options) and propose "
        "a catalogue: each sensor and setting with a range from its values (the 0.1%% and 99.9%% "
        "quantiles widened by half their span, never excluding an observed value, so a replay "
        "of this recording with it sends no reading to the dead-letter topic), units left empty "
        "for you to fill in, the metadata fields, the sampling period (the median spacing of a "
        'device\'s readings) and unknown = "dead-letter". See ingest.infer.',
    )
    infer.add_argument("path", help="the recording")
    add_column_options(infer)
    infer.add_argument("--limit", type=int, help="read at most this many rows")
    infer.add_argument("--out", help="where to write the catalogue (default: print it)")
    infer.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    infer.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip reading the recording again to check the proposal rejects none of it",
    )
    infer.set_defaults(handler=_infer)
    show = actions.add_parser(
        "show",
        help="check a catalogue and print it",
        description="Load a catalogue (a TOML file or a shipped name), check it, and print it "
        "as TOML.",
    )
    show.add_argument(
        "name",
        nargs="?",
        help="a TOML file or default, simulator, cmapss (default: PROGNOS_CATALOGUE, else default)",
    )
    show.set_defaults(handler=_show)


def add_column_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    ignore: bool = True,
    cycle_seconds: bool = True,
) -> None:
    """How a recording is read: the options ``replay``, ``catalogue infer`` and (through
    ``deploy``) ``train``, ``evaluate`` and ``backtest`` share; ``ignore`` and
    ``cycle_seconds`` add those two where the command has no option of its own for them.
    """
    parser.add_argument(
        "--format",
        choices=["csv", "parquet", "jsonl", "cmapss"],
        help="file format (default: from the name; *_FD00N.txt is C-MAPSS)",
    )
    parser.add_argument("--mapping", help="a JSON or TOML column-mapping file (see ingest.columns)")
    parser.add_argument("--device-column", help="column of the device id (default device_id)")
    parser.add_argument("--time-column", help="column of the event time (default event_time)")
    parser.add_argument(
        "--seq-column", help="column of the sequence number (default seq, if present)"
    )
    parser.add_argument(
        "--time-format",
        choices=["iso", "epoch_s", "epoch_ms", "cycle"],
        help="how the time column is written (default iso)",
    )
    parser.add_argument(
        "--sensors",
        help="comma-separated sensor columns, NAME or NAME=COLUMN "
        "(default: every column not mapped otherwise)",
    )
    parser.add_argument("--settings", help="comma-separated setting columns, NAME or NAME=COLUMN")
    parser.add_argument("--metadata", help="comma-separated metadata columns, NAME or NAME=COLUMN")
    if ignore:
        parser.add_argument(
            "--ignore",
            help="comma-separated columns to leave out of the default sensors (a label, a flag)",
        )
    if cycle_seconds:
        parser.add_argument(
            "--cycle-seconds",
            type=float,
            default=600.0,
            help="seconds per cycle for C-MAPSS / cycle times (default 600)",
        )
    parser.add_argument(
        "--base-time", help="UTC origin of cycle times (default 2026-01-01T00:00:00Z)"
    )


def _mapping(args: argparse.Namespace, base_time: Any) -> Any:
    from ingest.columns import mapping_from_options

    return mapping_from_options(
        mapping_file=args.mapping,
        device=args.device_column,
        time=args.time_column,
        seq=args.seq_column,
        time_format=args.time_format,
        sensors=args.sensors,
        settings=args.settings,
        metadata=args.metadata,
        cycle_s=args.cycle_seconds,
        base_time=base_time,
    )


def _options(args: argparse.Namespace, catalogue: Any = None, **extra: Any) -> Any:
    """The :class:`~ingest.replay.ReplayOptions` of the column options (and ``catalogue``'s
    defaults for what they leave open)."""
    from dataclasses import replace
    from pathlib import Path

    from ingest.columns import CMAPSS_BASE_TIME, name_columns, parse_iso
    from ingest.errors import ConfigError
    from ingest.replay import ReplayOptions
    from ingest.sources import open_source

    base_time = CMAPSS_BASE_TIME
    if args.base_time:
        try:
            base_time = parse_iso(args.base_time)
        except ValueError:
            raise ConfigError(f"--base-time {args.base_time!r} is not an ISO-8601 time") from None
    if args.limit is not None and args.limit < 0:
        raise ConfigError(f"--limit {args.limit}: must be >= 0")
    mapping = _mapping(args, base_time)
    ignore = list((name_columns(args.ignore) or {}).values())
    if ignore or catalogue is not None:
        path = Path(args.path)
        source = open_source(path, args.format)  # file errors before anything else
        mapping = mapping or source.default_mapping(base_time, args.cycle_seconds)
        mapping = _fit(mapping, source.columns, str(path), ignore, catalogue)
    options = ReplayOptions(
        fmt=args.format,
        mapping=mapping,
        limit=args.limit,
        cmapss_base_time=base_time,
        cmapss_cycle_s=args.cycle_seconds,
    )
    return replace(options, **extra)


def _fit(mapping: Any, columns: list[str], origin: str, ignore: list[str], catalogue: Any) -> Any:
    """``mapping`` with ``--ignore``'s columns left out of the sensors, and what it leaves
    open taken from ``catalogue``: its settings and metadata fields map the columns of those
    names; when it refuses unknown names, the default sensors are its sensors only."""
    import logging
    from dataclasses import replace

    from ingest.errors import MappingError

    logger = logging.getLogger("ingest.cli")
    missing = [c for c in ignore if c not in columns]
    if missing:
        raise MappingError(
            f"{origin}: --ignore names {', '.join(map(repr, missing))}, not a column of the file; "
            f"its columns are {', '.join(columns[:40])}"
        )
    if catalogue is not None:
        if mapping.settings is None:
            mapping = replace(
                mapping, settings={n: n for n in catalogue.settings_by_name if n in columns}
            )
        if mapping.metadata is None and catalogue.metadata:
            declared = {n: n for n in catalogue.metadata if n in columns}
            if "machine_type" in columns and "type" not in declared:
                declared["type"] = "machine_type"
            mapping = replace(mapping, metadata=declared)
    resolved = mapping.resolve(columns, origin)
    sensors = {n: c for n, c in resolved.sensors.items() if c not in ignore}
    if catalogue is not None and mapping.sensors is None and catalogue.unknown == "dead-letter":
        left = sorted(c for n, c in sensors.items() if n not in catalogue.sensors_by_name)
        if left:
            logger.warning(
                "%s: columns %s are not sensors of the catalogue %s, which refuses unknown ones: "
                "not sent (name them with --sensors to send them)",
                origin,
                ", ".join(left),
                catalogue.origin,
            )
        sensors = {n: c for n, c in sensors.items() if n in catalogue.sensors_by_name}
    if not sensors:
        raise MappingError(
            f"{origin}: no sensor columns left after mapping; name them with --sensors"
        )
    return replace(mapping, sensors=sensors) if sensors != resolved.sensors else mapping


def _catalogue(name: str | None) -> Any:
    import os

    from ingest.catalogue import load_catalogue

    return load_catalogue(name or os.environ.get("PROGNOS_CATALOGUE") or None)


def _replay(args: argparse.Namespace) -> int:
    import os
    import sys

    from ingest.config import KafkaConfig
    from ingest.errors import ConfigError
    from ingest.producer import ReadingProducer
    from ingest.remote import local_copy
    from ingest.replay import prepare_replay, replay_file

    if args.speed is not None and args.speed <= 0:
        raise ConfigError(f"--speed {args.speed}: must be > 0 (or use --as-fast-as-possible)")
    explicit = args.catalogue or os.environ.get("PROGNOS_CATALOGUE")
    catalogue = _catalogue(args.catalogue)
    options = _options(
        args,
        catalogue if explicit else None,
        speed=None if args.as_fast_as_possible else args.speed,
        shift_to_now=args.shift_to_now,
        strict=args.strict,
        progress=args.progress,
        sort_by_time=args.sort_by_time,
    )
    config = KafkaConfig.from_env().with_topic(args.topic)
    with local_copy(args.path) as local:  # hdfs:// and other Hadoop URIs: a local copy
        plan = prepare_replay(local, options)  # file and mapping errors before connecting
        with ReadingProducer(config, source=args.path, catalogue=catalogue) as producer:
            report = replay_file(plan, producer)
    path = args.path
    print(
        f"replayed {report.rows:,} rows from {path} in {report.seconds:.1f}s ({report.rate:,.0f} rows/s): "
        f"{report.sent:,} readings to {config.topic}, {report.dead_lettered:,} dead letters to "
        f"{config.dead_letter_topic} (catalogue {catalogue.origin})"
    )
    for reason, count in sorted({**report.bad_rows, **report.invalid}.items()):
        print(f"  dead letters {reason}: {count:,}")
    for line in report.first_bad:
        print(f"  bad row {line}", file=sys.stderr)
    rejection = producer.stats().rejection
    if rejection:
        print(f"\n{rejection}", file=sys.stderr)
    return 130 if report.interrupted else 0


def _infer(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ingest.catalogue import format_duration
    from ingest.errors import ConfigError
    from ingest.infer import infer_catalogue

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.force:
        raise ConfigError(f"--out {out}: the file exists; give another path, or --force")
    path = Path(args.path)
    result = infer_catalogue(path, _options(args), check=args.check)
    catalogue = result.catalogue
    header = (
        f"Proposed by `prognos catalogue infer {path.name}` from {result.readings:,} readings "
        f'of {result.devices:,} devices.\nFill in each unit (ingest.catalogue.UNITS; "-" if '
        "dimensionless) and review the ranges."
    )
    text = catalogue.dumps(header=header)
    if out is None:
        sys.stdout.write(text)
        say = sys.stderr
    else:
        out.write_text(text, encoding="utf-8")
        say = sys.stdout
    period = catalogue.sampling_period_s
    print(
        f"{'wrote ' + str(out) if out else 'proposed'}: {len(catalogue.sensors)} sensors, "
        f"{len(catalogue.settings)} settings, metadata {', '.join(catalogue.metadata) or 'none'}, "
        f"sampling period {format_duration(period) if period else 'unknown'}, "
        f'unknown = "{catalogue.unknown}"; from {result.rows:,} rows of {path}',
        file=say,
    )
    for entry in (*catalogue.sensors, *catalogue.settings):
        print(f"  {entry.name}: {entry.low:.10g} .. {entry.high:.10g}", file=say)
    for note in result.notes:
        print(f"note: {note}", file=say)
    if args.check:
        if result.rejected:
            reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(result.rejected.items()))
            print(f"check: its rules would still dead-letter readings: {reasons}", file=say)
        else:
            print("check: a replay of this recording with it dead-letters no reading", file=say)
    missing = [e.name for e in (*catalogue.sensors, *catalogue.settings) if not e.unit]
    if missing:
        print(
            f'reminder: fill in the units ({len(missing)} left empty: unit = "") before use; '
            "then replay with --catalogue " + (str(out) if out else "FILE"),
            file=say,
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args.name)
    print(catalogue.dumps(header=f"{catalogue.origin}"), end="")
    return 0

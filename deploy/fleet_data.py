"""A user's recording and its event logs, read as ``prognos replay`` reads them, for training.

:func:`read` turns ``--data FILE`` and the replay's column options into a
:class:`models.data.Recording` with an :class:`models.labels.EventLog`:

* the rows are read by :func:`ingest.sources.open_source` and mapped by the same
  :class:`ingest.columns.ColumnMapping` (``--mapping``, ``--device-column``...) as a replay;
* each reading is checked with :func:`ingest.validation.validate`, the producer's rules:
  a reading the replay would dead-letter is one the stream job never sees, so the model
  does not learn from it either; duplicates (device, sequence number) count once, as in
  the stream job;
* nothing is dropped silently: rows that do not map, readings that break a rule and
  duplicates are counted by reason, the first few named with ``file:line``; when most
  rows fail on one column the read stops with a message naming the column and the fix;
* failures come from ``--failures FILE`` (one row per failure) or ``--failure-column``
  (a flag in the recording), maintenance from ``--maintenance FILE``; the logs' device and
  time columns default to the recording's. Events of devices the recording does not have,
  or at times outside it, are named in the notes (and stop the read when none is usable).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np

from ingest.columns import (
    CMAPSS_BASE_TIME,
    ColumnMapping,
    RawRow,
    mapping_from_options,
    parse_iso,
    rows_to_readings,
)
from ingest.errors import RowError
from ingest.replay import ReplayOptions, prepare_replay
from ingest.schema import Reading
from ingest.sources import open_source
from ingest.validation import Violation, validate
from models.data import Recording
from models.errors import DataError
from models.labels import EventLog, flag_failures, spans_of
from models.metadata import sha256_file

logger = logging.getLogger(__name__)

__all__ = [
    "RECORDED_OPTIONS",
    "FleetData",
    "read",
    "read_events",
    "spec_name",
    "write_catalogue",
]

#: The column and event options a model records in training.json, for evaluate to reuse.
RECORDED_OPTIONS: Final = (
    "format",
    "mapping",
    "device_column",
    "time_column",
    "seq_column",
    "time_format",
    "sensors",
    "settings",
    "metadata",
    "cycle_seconds",
    "base_time",
    "failures",
    "maintenance",
    "failure_column",
    "events_device_column",
    "events_time_column",
    "maintenance_keeps_age",
)
#: Those of them that name files (recorded as absolute paths).
_PATH_OPTIONS: Final = ("mapping", "failures", "maintenance")

_SHOWN = 5
_TRUE = frozenset({"1", "1.0", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "0.0", "false", "no", "n", "f", ""})


@dataclass
class FleetData:
    """A recording read for training or evaluation, and what happened on the way.

    Attributes:
        path: The recording.
        recording: Readings (``device_id``, ``event_time``, ``seq``, sensors, settings) and
            the event log.
        rows: Rows in the file.
        readings: Readings kept.
        rejected: Reason (``column/rule``, ``x.sensor/range``, ``duplicate``) -> count.
        first_rejected: ``file:line: reason`` of the first rejected rows.
        notes: What the user should know.
        options: The column and event options used (recorded in ``training.json``).
        files: Every file read (recording, logs, mapping).
    """

    path: Path
    recording: Recording
    rows: int
    readings: int
    rejected: dict[str, int]
    first_rejected: list[str]
    notes: list[str]
    options: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    metadata: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for ``training.json``."""
        return {
            "path": str(self.path),
            "rows": self.rows,
            "readings": self.readings,
            "devices": len(self.recording.devices),
            "sensors": list(self.recording.sensors),
            "settings": list(self.recording.settings),
            "rejected": self.rejected,
            "first_rejected": self.first_rejected,
            "options": self.options,
        }


def spec_name(path: Path) -> str:
    """A model-version-friendly name from the recording's file name."""
    stem = path.name.split(".")[0].lower()
    return re.sub(r"[^a-z0-9]+", "-", stem).strip("-") or "fleet"


def _base_time(args: argparse.Namespace) -> datetime:
    text = getattr(args, "base_time", None)
    if not text:
        return CMAPSS_BASE_TIME
    try:
        return parse_iso(text)
    except ValueError:
        raise DataError(f"--base-time {text!r} is not an ISO-8601 time") from None


def _mapping(args: argparse.Namespace) -> ColumnMapping | None:
    """The column mapping of the options, as ``prognos replay`` builds it."""
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
        base_time=_base_time(args),
    )


def _recorded_options(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for option in RECORDED_OPTIONS:
        value = getattr(args, option, None)
        if value in (None, False):
            continue
        if option in _PATH_OPTIONS:
            value = str(Path(value).resolve())
        out[option] = value
    return out


def read(args: argparse.Namespace) -> FleetData:
    """Read ``args.data`` and its events with the replay's column options (see the module).

    Raises:
        DataError: No usable readings, a column that fails in most rows, an unknown failure
            column, event logs that name no device of the recording, no failure at all.
        ingest.errors.InputFileError, ingest.errors.MappingError: as for a replay.
    """
    path = Path(args.data)
    options = ReplayOptions(
        fmt=args.format,
        mapping=_mapping(args),
        cmapss_base_time=_base_time(args),
        cmapss_cycle_s=args.cycle_seconds,
    )
    plan = prepare_replay(path, options)
    resolved = plan.resolved
    flag = args.failure_column
    if flag is not None:
        if flag not in plan.source.columns:
            raise DataError(
                f"{path}: --failure-column {flag!r} is not a column of the file; its columns are "
                f"{', '.join(plan.source.columns[:40])}"
            )
        if flag in resolved.sensors.values() and (args.sensors is None and not args.mapping):
            # The flag is an event, not a measurement: keep it out of the default sensors.
            kept = {n: c for n, c in resolved.sensors.items() if c != flag}
            if not kept:
                raise DataError(
                    f"{path}: no sensor column besides {flag!r}; name them with --sensors"
                )
            mapping = replace(options.mapping or plan.source.default_mapping(), sensors=kept)
            resolved = mapping.resolve(plan.source.columns, str(path))
    sensors = list(resolved.sensors)
    settings = list(resolved.settings)
    bad: Counter[str] = Counter()
    examples: dict[str, str] = {}
    first_bad: list[str] = []
    devices: list[str] = []
    times: list[float] = []
    seqs: list[int] = []
    flags: list[bool] = []
    values: dict[str, list[float]] = {name: [] for name in [*sensors, *settings]}
    rows = 0

    def reject(reason: str, text: str) -> None:
        bad[reason] += 1
        examples.setdefault(reason, text)
        if len(first_bad) < _SHOWN:
            first_bad.append(text)

    check = _validator(args)
    for item in rows_to_readings(plan.source, resolved):
        rows += 1
        if isinstance(item, RowError):
            reject(f"{item.field}/{item.rule}", str(item))
            continue
        row, reading = item
        violations = check(reading)
        if violations:
            v = violations[0]
            reject(f"{v.field}/{v.rule}", f"{row.source}: {v.field}: {v.message}")
            continue
        if flag is not None:
            truth = _flag(row, flag)
            if truth is None:
                reject(f"{flag}/flag", f"{row.source}: {flag}: {row.values.get(flag)!r} is not 0/1")
                continue
            flags.append(truth)
        devices.append(reading.device_id)
        times.append(reading.event_time.timestamp())
        seqs.append(reading.seq)
        for name in sensors:
            value = reading.sensors.get(name)
            values[name].append(math.nan if value is None else float(value))
        for name in settings:
            values[name].append(float(reading.settings.get(name, math.nan)))
    if rows == 0:
        raise DataError(f"{path}: no rows")
    _refuse_mostly_bad(path, rows, bad, examples, sensors)
    import pandas as pd

    frame = pd.DataFrame({"device_id": devices, "event_time": times, "seq": seqs, **values}).astype(
        {"event_time": np.float64}
    )
    if flag is not None:
        frame["_flag"] = flags
    before = len(frame)
    frame = frame.drop_duplicates(["device_id", "seq"], keep="first")
    if len(frame) < before:
        bad["duplicate (device, seq)"] += before - len(frame)
    frame = frame.sort_values(["device_id", "event_time"], kind="stable").reset_index(drop=True)
    if frame.empty:
        top = bad.most_common(1)[0][0] if bad else "?"
        raise DataError(f"{path}: every row was rejected (mostly {top}): {examples.get(top, '')}")
    notes = []
    if bad:
        notes.append(
            f"{path}: {sum(bad.values()):,} of {rows:,} rows not used, as the replay would "
            "dead-letter them: "
            + ", ".join(f"{reason} {n:,}" for reason, n in bad.most_common())
            + f" (first: {first_bad[0]})"
        )
    files = [path] + ([Path(args.mapping)] if args.mapping else [])
    spans = spans_of(frame)
    failures: list[tuple[str, float]] = []
    where: list[str] = []
    if flag is not None:
        failures = flag_failures(
            frame["device_id"].tolist(), frame["event_time"].tolist(), frame["_flag"].tolist()
        )
        frame = frame.drop(columns=["_flag"])
        where.append(f"{path} column {flag!r}")
    mapping = resolved.mapping
    dev_col = args.events_device_column or mapping.device
    time_col = args.events_time_column or mapping.time
    if args.failures:
        failures += read_events(Path(args.failures), dev_col, time_col, mapping, "failure")
        files.append(Path(args.failures))
        where.append(f"{args.failures} ({dev_col}, {time_col})")
    maintenance: list[tuple[str, float]] = []
    if args.maintenance:
        maintenance = read_events(Path(args.maintenance), dev_col, time_col, mapping, "maintenance")
        files.append(Path(args.maintenance))
    log = None
    if args.failures or flag is not None or args.maintenance:
        log = EventLog.build(
            failures, maintenance, maintenance_renews=not args.maintenance_keeps_age
        )
        log, event_notes = _reconcile(log, spans, " and ".join(where), args.maintenance)
        notes += event_notes
    recording = Recording(
        name=str(path),
        readings=frame,
        failure_times={d: ts[0] for d, ts in (log.failures if log else {}).items() if ts},
        data_sha256=_sha256(files),
        settings=tuple(settings),
        events=log,
    )
    return FleetData(
        path=path,
        recording=recording,
        rows=rows,
        readings=len(frame),
        rejected=dict(bad),
        first_rejected=first_bad,
        notes=notes,
        options=_recorded_options(args),
        files=files,
        metadata=tuple(resolved.metadata),
    )


def _validator(args: argparse.Namespace) -> Callable[[Reading], list[Violation]]:
    """The producer's check of a reading, with the catalogue in force.

    ``--catalogue FILE`` if given, else the model folder's ``catalogue.toml`` when
    evaluating a model that has one (the stream job validates with it), else the default.
    """
    path = getattr(args, "catalogue", None)
    if not path and getattr(args, "model", None):
        folder = Path(args.model)
        folder = folder if folder.is_dir() else folder.parent
        if (folder / "catalogue.toml").is_file():
            path = str(folder / "catalogue.toml")
    if not path:
        return validate
    try:
        from ingest.catalogue import load_catalogue
    except ImportError:
        raise DataError(
            f"--catalogue {path}: this install has no sensor catalogues (ingest.catalogue)"
        ) from None
    catalogue = load_catalogue(Path(path))
    return lambda reading: validate(reading, catalogue)


def _flag(row: RawRow, column: str) -> bool | None:
    value = row.values.get(column)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return None if math.isnan(value) else value != 0
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _refuse_mostly_bad(
    path: Path, rows: int, bad: Counter[str], examples: Mapping[str, str], sensors: list[str]
) -> None:
    """Stop when one reason rejects most rows: the mapping is wrong, not the data."""
    if not bad:
        return
    reason, count = bad.most_common(1)[0]
    if count < 0.5 * rows:
        return
    column, _, rule = reason.partition("/")
    if rule == "number":
        fix = (
            f"{column!r} is not a measurement: name the sensors with --sensors (now "
            f"{', '.join(sensors[:12])}) or map it as metadata (--metadata {column})"
        )
    elif rule == "timestamp":
        fix = "give the time column's format with --time-format (iso, epoch_s, epoch_ms, cycle)"
    elif rule == "range":
        fix = (
            "the range rule in force does not fit this sensor: declare its range in a "
            "catalogue, or map it under another name"
        )
    else:
        fix = "check the column options (--device-column, --time-column, --sensors, --mapping)"
    raise DataError(
        f"{path}: {count:,} of {rows:,} rows are rejected for {reason} (e.g. "
        f"{examples[reason]}); {fix}"
    )


def _event_time(value: Any, mapping: ColumnMapping) -> float:
    """An event log's time, read as the recording's time column is."""
    if isinstance(value, datetime):
        t = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return t.timestamp()
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("empty")
    number: float | None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if mapping.time_format == "iso" or number is None:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is a number; the recording's times are ISO-8601")
        return parse_iso(value).timestamp()
    if mapping.time_format == "cycle":
        return (mapping.base_time + timedelta(seconds=number * mapping.cycle_s)).timestamp()
    return number / 1000.0 if mapping.time_format == "epoch_ms" else number


def _device(value: Any, mapping: ColumnMapping) -> str:
    if "{:" in mapping.device_format:
        return mapping.device_format.format(int(float(value)))
    return mapping.device_format.format(str(value).strip())


def read_events(
    path: Path, device_column: str, time_column: str, mapping: ColumnMapping, kind: str
) -> list[tuple[str, float]]:
    """``(device, time)`` of each row of an event log (CSV, Parquet, JSON lines).

    Raises:
        DataError: A column is missing, or a row has no device or an unreadable time (the
            message names ``file:line``, the column and the fix).
    """
    source = open_source(path)
    for column, option in ((device_column, "device"), (time_column, "time")):
        if column not in source.columns:
            raise DataError(
                f"{path}: the {kind} log has no column {column!r} (its columns are "
                f"{', '.join(source.columns[:20])}); name its {option} column with "
                f"--events-{option}-column"
            )
    out: list[tuple[str, float]] = []
    for row in source:
        if isinstance(row, RowError):
            raise DataError(f"{kind} log {row}; fix the row or remove it") from None
        device = row.values.get(device_column)
        if device is None or not str(device).strip():
            raise DataError(f"{row.source}: {device_column}: no device id in this {kind} row")
        try:
            t = _event_time(row.values.get(time_column), mapping)
        except (ValueError, OverflowError, OSError) as exc:
            raise DataError(
                f"{row.source}: {time_column}: {row.values.get(time_column)!r} is not a time "
                f"({exc}); write it as the recording's times are written "
                f"({mapping.time_format}), e.g. 2026-01-31 or 2026-01-31T12:00:00Z"
            ) from None
        try:
            out.append((_device(device, mapping), t))
        except (ValueError, TypeError):
            raise DataError(
                f"{row.source}: {device_column}: {device!r} does not fit the device format "
                f"{mapping.device_format!r}"
            ) from None
    return out


def _reconcile(
    log: EventLog,
    spans: Mapping[str, tuple[float, float]],
    failures_from: str,
    maintenance_from: str | None,
) -> tuple[EventLog, list[str]]:
    """The log without devices the recording lacks; notes on what does not fit."""
    notes: list[str] = []
    known = set(spans)
    start = min(s[0] for s in spans.values())
    end = max(s[1] for s in spans.values())
    for kind, events, origin in (
        ("failure", log.failures, failures_from),
        ("maintenance", log.maintenance, maintenance_from),
    ):
        if not events or origin is None:
            continue
        unknown = sorted(set(events) - known)
        if unknown and len(unknown) == len(events):
            raise DataError(
                f"{origin}: none of the {len(events)} devices of the {kind} log (e.g. "
                f"{', '.join(unknown[:3])}) is in the recording (its devices are e.g. "
                f"{', '.join(sorted(known)[:3])}); check --events-device-column and "
                "--device-column"
            )
        if unknown:
            count = sum(len(events[d]) for d in unknown)
            notes.append(
                f"{origin}: {count} {kind}(s) of {len(unknown)} device(s) the recording does not "
                f"have are left out (e.g. {', '.join(unknown[:_SHOWN])})"
            )
        before = [(d, t) for d in events if d in known for t in events[d] if t < spans[d][0]]
        if before:
            notes.append(
                f"{origin}: {len(before)} {kind}(s) before their device's first reading (e.g. "
                f"{before[0][0]} at {_iso(before[0][1])}) end no recorded run and are not "
                "counted; check the log's times and time zone"
            )
        after = [(d, t) for d in events if d in known for t in events[d] if t > end]
        if after:
            notes.append(
                f"{origin}: {len(after)} {kind}(s) after the recording ends ({_iso(end)}; e.g. "
                f"{after[0][0]} at {_iso(after[0][1])}): they label their device's last "
                "readings; check the log's times if they should fall inside"
            )
        if start > 0 and not any(t >= spans[d][0] for d in events if d in known for t in events[d]):
            logger.warning("no %s of %s falls within the recording", kind, origin)
    kept = log.restrict(known)
    if log.failures and kept.n_failures == 0:
        raise DataError(f"{failures_from}: no failure of a device in the recording")
    return kept, notes


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sha256(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def write_catalogue(out: Path, args: argparse.Namespace, data: FleetData) -> dict[str, Any] | None:
    """Write the catalogue the model was trained with as ``out/catalogue.toml``.

    The user's ``--catalogue FILE`` if given, else one inferred from the training data
    (:func:`ingest.infer.infer_from_values`: ranges from robust quantiles with a margin,
    units left for the user to fill). The stream job validates with it unless given
    another. Returns what was written (for ``training.json``), or None where this install
    has no catalogue support.
    """
    try:
        from ingest.catalogue import load_catalogue
        from ingest.infer import infer_from_values, sampling_period
    except ImportError:
        return None
    target = out / "catalogue.toml"
    if getattr(args, "catalogue", None):
        chosen = load_catalogue(Path(args.catalogue))
        chosen.save(target, header=f"{args.catalogue}, the catalogue this model was trained with")
        return {"file": "catalogue.toml", "from": str(args.catalogue), "notes": []}
    frame = data.recording.readings
    times = {d: g.to_numpy() for d, g in frame.groupby("device_id")["event_time"]}
    notes: list[str] = []
    inferred = infer_from_values(
        {s: frame[s].to_numpy(np.float64) for s in data.recording.sensors},
        {s: frame[s].to_numpy(np.float64) for s in data.recording.settings},
        source=str(data.path),
        metadata=tuple(data.metadata),
        sampling_period_s=sampling_period(times),
        notes=notes,
    )
    inferred.save(target, header=f"inferred from {data.path} when this model was trained")
    return {"file": "catalogue.toml", "from": f"inferred from {data.path}", "notes": notes}

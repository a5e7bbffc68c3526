"""Replay recordings to Kafka: CSV, Parquet, JSON lines, and NASA C-MAPSS text files.

A :class:`ColumnMapping` says which column holds the device, the time, the sequence
number, each sensor, setting and metadata entry, so a recording with other column names
replays without code. Without one, a file uses the default mapping: ``device_id``,
``event_time``, ``seq`` (optional), settings named in
:data:`ingest.validation.SETTING_RULES` that are present (``load``, ``regime``...),
``machine_type`` as metadata, and every other column as a sensor. (That is the layout
``prognos simulate --record`` writes, so simulator recordings replay as they are.)

A mapping file is JSON or TOML with the same keys as :class:`ColumnMapping`::

    {"device": "machine", "time": "ts", "time_format": "epoch_ms",
     "sensors": {"vibration": "vib_mm_s", "bearing_temp": "t_bearing"},
     "settings": ["load"], "metadata": ["site"]}

``sensors``/``settings`` may be a list (same names) or an object (reading name ->
column). Time formats: ``iso`` (ISO-8601; a time without offset is taken as UTC), ``epoch_s``,
``epoch_ms``, or ``cycle`` (``base_time + value * cycle_s``).

**C-MAPSS** (``--format cmapss``, or a ``*_FD00N.txt`` file): 26 whitespace-separated
columns, ``unit cycle setting1..3 s1..s21``. The device id is ``<subset>-<unit:03d>``
with the subset from the file name (``train_FD001.txt``, unit 7 -> ``FD001-007``), ``seq`` is
the cycle, ``event_time`` is ``base_time + cycle * cycle_s`` (default 2026-01-01T00:00:00Z
and 10 minutes per cycle), sensors ``s1``..``s21`` and ``cycle`` (the engine's age in
cycles, which the default model reads), settings ``setting1``..``setting3``, metadata ``{"source": "cmapss", "subset": "FD001"}``. Rows are replayed in time order
(cycle by cycle across engines), each engine's cycles in order.

A row that cannot be turned into a reading is, with ``strict``, a
:class:`~ingest.errors.RowError` naming ``file:line``; otherwise it is counted, logged with
``file:line`` and sent, as its original bytes, to the dead-letter topic.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from ingest.errors import InputFileError, MappingError, RowError
from ingest.schema import Reading
from ingest.validation import SETTING_RULES, Violation

if TYPE_CHECKING:
    from ingest.producer import ReadingProducer

logger = logging.getLogger(__name__)

__all__ = [
    "CMAPSS_BASE_TIME",
    "CMAPSS_CYCLE_S",
    "FORMATS",
    "ColumnMapping",
    "RawRow",
    "ReplayOptions",
    "ReplayPlan",
    "ReplayReport",
    "cmapss_mapping",
    "detect_format",
    "prepare_replay",
    "read_rows",
    "replay_file",
    "rows_to_readings",
]

FORMATS: Final = ("csv", "parquet", "jsonl", "cmapss")
CMAPSS_BASE_TIME: Final = datetime(2026, 1, 1, tzinfo=UTC)
CMAPSS_CYCLE_S: Final = 600.0
CMAPSS_COLUMNS: Final = (
    "unit",
    "cycle",
    "setting1",
    "setting2",
    "setting3",
    *(f"s{i}" for i in range(1, 22)),
)
_TIME_FORMATS: Final = ("iso", "epoch_s", "epoch_ms", "cycle")
_SUBSET: Final = re.compile(r"(FD\d{3})", re.IGNORECASE)
_MAX_LOGGED_BAD_ROWS: Final = 20


@dataclass(frozen=True)
class RawRow:
    """One row of a recording before mapping.

    Attributes:
        source: ``file:line`` (a Parquet row counts from 1 like a line).
        values: column name -> value (str from text formats, typed from Parquet/JSON).
        raw: the original bytes, for the dead-letter topic.
    """

    source: str
    values: Mapping[str, Any]
    raw: bytes


@dataclass(frozen=True)
class ColumnMapping:
    """Which column is which field of a reading.

    Attributes:
        device: the device id column.
        time: the event time column.
        seq: the sequence column; None uses a ``seq`` column when there is one, else
            numbers each device's rows 0, 1, 2...
        sensors: reading name -> column; None means every column not used otherwise.
        settings: reading name -> column; None means the present columns named in
            :data:`~ingest.validation.SETTING_RULES`.
        metadata: reading name -> column (values become strings); None maps a
            ``machine_type`` column, when present, to ``type``.
        time_format: ``iso``, ``epoch_s``, ``epoch_ms`` or ``cycle``.
        base_time: origin of ``cycle`` times (UTC).
        cycle_s: seconds per cycle for ``cycle`` times.
        device_format: a ``str.format`` pattern for the device id, ``{}`` is the value
            (``"FD001-{:03d}"`` makes ints from the column first).
        static_metadata: metadata added to every reading.
    """

    device: str = "device_id"
    time: str = "event_time"
    seq: str | None = None
    sensors: Mapping[str, str] | None = None
    settings: Mapping[str, str] | None = None
    metadata: Mapping[str, str] | None = None
    time_format: str = "iso"
    base_time: datetime = CMAPSS_BASE_TIME
    cycle_s: float = CMAPSS_CYCLE_S
    device_format: str = "{}"
    static_metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.time_format not in _TIME_FORMATS:
            raise MappingError(
                f"time_format {self.time_format!r}: use one of {', '.join(_TIME_FORMATS)}"
            )
        if self.cycle_s <= 0:
            raise MappingError(f"cycle_s={self.cycle_s}: must be > 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "mapping") -> ColumnMapping:
        """Build from a mapping file's content.

        Raises:
            MappingError: an unknown key or a value of the wrong kind.
        """
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise MappingError(f"{origin}: unknown keys {unknown}; allowed: {sorted(allowed)}")
        values: dict[str, Any] = dict(data)
        for key in ("sensors", "settings", "metadata", "static_metadata"):
            if key in values and values[key] is not None:
                value = values[key]
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    values[key] = {v: v for v in value}
                elif isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
                    values[key] = dict(value)
                else:
                    raise MappingError(
                        f"{origin}: {key} must be a list of column names or an object name -> column"
                    )
        if "base_time" in values:
            try:
                values["base_time"] = _parse_iso(str(values["base_time"]))
            except ValueError:
                raise MappingError(
                    f"{origin}: base_time {values['base_time']!r} is not an ISO-8601 time"
                ) from None
        try:
            return cls(**values)
        except TypeError as exc:
            raise MappingError(f"{origin}: {exc}") from None

    @classmethod
    def load(cls, path: Path) -> ColumnMapping:
        """Read a JSON (``.json``) or TOML (``.toml``) mapping file.

        Raises:
            MappingError: the file is missing or malformed.
        """
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise MappingError(f"--mapping {path}: cannot read it ({exc.strerror})") from None
        try:
            if path.suffix.lower() == ".toml":
                import tomllib

                data = tomllib.loads(text.decode())
            else:
                data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MappingError(
                f"--mapping {path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}"
            ) from None
        if not isinstance(data, dict):
            raise MappingError(f"--mapping {path}: must be an object of settings")
        return cls.from_dict(data, origin=f"--mapping {path}")

    def resolve(self, columns: Iterable[str], origin: str) -> _Resolved:
        """Check the mapping against a file's columns and fill in the defaults.

        Raises:
            MappingError: a mapped column is not in the file (names the column and the file).
        """
        present = list(columns)
        have = set(present)

        def need(column: str, what: str) -> None:
            if column not in have:
                raise MappingError(
                    f"{origin}: the {what} column {column!r} is not in the file; its columns are "
                    f"{', '.join(present[:40])}. Fix the mapping (--mapping or the --*-column options)."
                )

        need(self.device, "device")
        need(self.time, "time")
        if self.seq is None:
            seq = "seq" if "seq" in have else None
        else:
            need(self.seq, "seq")
            seq = self.seq
        if self.metadata is None:
            metadata = {"type": "machine_type"} if "machine_type" in have else {}
        else:
            metadata = dict(self.metadata)
            for name, column in metadata.items():
                need(column, f"metadata {name!r}")
        if self.settings is None:
            settings = {c: c for c in present if c in SETTING_RULES}
        else:
            settings = dict(self.settings)
            for name, column in settings.items():
                need(column, f"setting {name!r}")
        used = {
            self.device,
            self.time,
            *(c for c in (seq,) if c),
            *metadata.values(),
            *settings.values(),
        }
        if self.sensors is None:
            sensors = {c: c for c in present if c not in used}
        else:
            sensors = dict(self.sensors)
            for name, column in sensors.items():
                need(column, f"sensor {name!r}")
        if not sensors:
            raise MappingError(
                f"{origin}: no sensor columns left after mapping; name them with --sensors"
            )
        return _Resolved(self, seq, sensors, settings, metadata)


def cmapss_mapping(
    subset: str, base_time: datetime = CMAPSS_BASE_TIME, cycle_s: float = CMAPSS_CYCLE_S
) -> ColumnMapping:
    """The mapping of a C-MAPSS subset file (see the module docstring)."""
    return ColumnMapping(
        device="unit",
        time="cycle",
        seq="cycle",
        sensors={**{f"s{i}": f"s{i}" for i in range(1, 22)}, "cycle": "cycle"},
        settings={f"setting{i}": f"setting{i}" for i in range(1, 4)},
        metadata={},
        time_format="cycle",
        base_time=base_time,
        cycle_s=cycle_s,
        device_format=subset.upper() + "-{:03d}",
        static_metadata={"source": "cmapss", "subset": subset.upper()},
    )


@dataclass(frozen=True)
class _Resolved:
    mapping: ColumnMapping
    seq: str | None
    sensors: dict[str, str]
    settings: dict[str, str]
    metadata: dict[str, str]


def _parse_iso(text: str) -> datetime:
    t = datetime.fromisoformat(text.strip().replace("z", "Z"))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


# -- reading files -------------------------------------------------------------------------
def detect_format(path: Path, given: str | None = None) -> str:
    """The format of ``path``: ``given``, else from the file name.

    Raises:
        InputFileError: unknown format.
    """
    if given:
        if given not in FORMATS:
            raise InputFileError(f"--format {given!r}: use one of {', '.join(FORMATS)}")
        return given
    name = path.name.lower()
    if name.endswith(".txt") and _SUBSET.search(name):
        return "cmapss"
    for suffix, fmt in (
        (".parquet", "parquet"),
        (".csv", "csv"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
    ):
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return fmt
    raise InputFileError(
        f"{path}: cannot tell the format from the name; give --format ({', '.join(FORMATS)})"
    )


def _open_text(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        import gzip

        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputFileError(f"{path}: no such file; check the path (relative to {Path.cwd()})")
    if not path.is_file():
        raise InputFileError(f"{path}: not a file")


def count_rows(path: Path, fmt: str) -> int | None:
    """How many rows the file has (for the progress bar), or None when costly to know."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if path.name.endswith(".gz"):
            return None
        with open(path, "rb") as f:
            lines = sum(1 for line in f if line.strip())
        return lines - 1 if fmt == "csv" else lines
    except OSError:
        return None


def read_rows(path: Path, fmt: str) -> tuple[list[str], Iterator[RawRow | RowError]]:
    """The columns of ``path`` and its rows; a row that cannot be parsed is a RowError item.

    Raises:
        InputFileError: the file is missing or unreadable.
    """
    _check_file(path)
    try:
        if fmt == "csv":
            return _read_csv(path)
        if fmt == "jsonl":
            return _read_jsonl(path)
        if fmt == "parquet":
            return _read_parquet(path)
        if fmt == "cmapss":
            return list(CMAPSS_COLUMNS), _read_cmapss(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read it ({exc})") from None
    raise InputFileError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")


def _read_csv(path: Path) -> tuple[list[str], Iterator[RawRow | RowError]]:
    f = _open_text(path)
    header_line = f.readline()
    if not header_line.strip():
        f.close()
        raise InputFileError(f"{path}: empty file, expected a header line")
    header = next(csv.reader([header_line]))

    def rows() -> Iterator[RawRow | RowError]:
        with f:
            for number, line in enumerate(f, start=2):
                if not line.strip():
                    continue
                source = f"{path}:{number}"
                raw = line.rstrip("\r\n").encode()
                try:
                    fields = next(csv.reader([line]))
                except csv.Error as exc:
                    yield RowError(source, "row", "csv", str(exc), raw)
                    continue
                if len(fields) != len(header):
                    yield RowError(
                        source,
                        "row",
                        "columns",
                        f"{len(fields)} fields, header has {len(header)}",
                        raw,
                    )
                    continue
                yield RawRow(source, dict(zip(header, fields, strict=True)), raw)

    return header, rows()


def _read_jsonl(path: Path) -> tuple[list[str], Iterator[RawRow | RowError]]:
    f = _open_text(path)
    columns: list[str] = []
    first: list[tuple[int, str]] = []
    for number, line in enumerate(f, start=1):
        if line.strip():
            first.append((number, line))
            try:
                doc = json.loads(line)
                if isinstance(doc, dict):
                    columns = list(doc)
                    break
            except ValueError:
                pass
            if len(first) > 100:
                break

    def rows() -> Iterator[RawRow | RowError]:
        def lines() -> Iterator[tuple[int, str]]:
            yield from first
            number = first[-1][0] if first else 0
            for line in f:
                number += 1
                yield number, line

        with f:
            for number, line in lines():
                if not line.strip():
                    continue
                source = f"{path}:{number}"
                raw = line.rstrip("\r\n").encode()
                try:
                    doc = json.loads(line)
                except ValueError as exc:
                    yield RowError(source, "row", "json", f"not JSON: {exc}", raw)
                    continue
                if not isinstance(doc, dict):
                    yield RowError(source, "row", "object", "a line must be a JSON object", raw)
                    continue
                yield RawRow(source, doc, raw)

    return columns, rows()


def _read_parquet(path: Path) -> tuple[list[str], Iterator[RawRow | RowError]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends
        raise InputFileError(f"{path}: not a readable Parquet file ({exc})") from None
    columns = list(parquet.schema_arrow.names)

    def rows() -> Iterator[RawRow | RowError]:
        number = 0
        for batch in parquet.iter_batches(batch_size=10_000):
            for record in batch.to_pylist():
                number += 1
                raw = json.dumps(record, default=str, separators=(",", ":")).encode()
                yield RawRow(f"{path}:{number}", record, raw)

    return columns, rows()


def _read_cmapss(path: Path) -> Iterator[RawRow | RowError]:
    """C-MAPSS rows in time order: cycle by cycle, engine by engine."""
    good: list[tuple[float, float, RawRow]] = []
    with open(path, encoding="ascii", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            source = f"{path}:{number}"
            raw = line.rstrip("\r\n").encode()
            parts = line.split()
            if len(parts) != len(CMAPSS_COLUMNS):
                yield RowError(
                    source, "row", "columns", f"{len(parts)} fields, C-MAPSS rows have 26", raw
                )
                continue
            row = RawRow(source, dict(zip(CMAPSS_COLUMNS, parts, strict=True)), raw)
            try:
                good.append((float(parts[1]), float(parts[0]), row))
            except ValueError:
                yield row  # the mapping step reports which column is not a number
    good.sort(key=lambda item: (item[0], item[1]))
    for _, _, row in good:
        yield row


# -- rows to readings ----------------------------------------------------------------------
def _number(value: Any, source: str, column: str, raw: bytes, allow_empty: bool) -> float | None:
    # Fast path first: nearly every cell is a well-formed number.
    cls = value.__class__
    if cls is float:
        return value  # type: ignore[no-any-return]
    if cls is str:
        try:
            return float(value)
        except ValueError:
            pass
    if value is None or (isinstance(value, str) and value.strip() in ("", "NA", "null", "None")):
        if allow_empty:
            return None
        raise RowError(source, column, "required", "empty", raw)
    if isinstance(value, bool):
        raise RowError(source, column, "number", f"{value!r} is not a number", raw)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RowError(source, column, "number", f"{value!r} is not a number", raw) from None


def _to_reading(
    row: RawRow, r: _Resolved, counters: dict[str, int], shift: timedelta | None
) -> Reading:
    m = r.mapping
    v = row.values
    src, raw = row.source, row.raw
    device_value = v.get(m.device)
    if device_value is None or str(device_value).strip() == "":
        raise RowError(src, m.device, "required", "no device id", raw)
    if "{:" in m.device_format:
        number = _number(device_value, src, m.device, raw, False)
        assert number is not None
        if number != int(number):
            raise RowError(src, m.device, "number", f"{device_value!r} is not an integer unit", raw)
        device = m.device_format.format(int(number))
    else:
        device = m.device_format.format(str(device_value).strip())
    t_value = v.get(m.time)
    try:
        if isinstance(t_value, datetime):
            event_time = (
                t_value.replace(tzinfo=UTC) if t_value.tzinfo is None else t_value.astimezone(UTC)
            )
        elif m.time_format == "iso":
            if not isinstance(t_value, str):
                raise ValueError("not text")
            event_time = _parse_iso(t_value)
        else:
            number = _number(t_value, src, m.time, raw, False)
            assert number is not None
            if m.time_format == "cycle":
                event_time = m.base_time + timedelta(seconds=number * m.cycle_s)
            else:
                event_time = datetime.fromtimestamp(
                    number / (1000.0 if m.time_format == "epoch_ms" else 1.0), UTC
                )
    except (ValueError, OverflowError, OSError) as exc:
        raise RowError(
            src, m.time, "timestamp", f"{t_value!r} is not a {m.time_format} time ({exc})", raw
        ) from None
    if shift is not None:
        event_time += shift
    if r.seq is not None:
        seq_number = _number(v.get(r.seq), src, r.seq, raw, False)
        assert seq_number is not None
        if seq_number != int(seq_number) or not math.isfinite(seq_number):
            raise RowError(src, r.seq, "number", f"{v.get(r.seq)!r} is not an integer", raw)
        seq = int(seq_number)
    else:
        seq = counters.get(device, 0)
        counters[device] = seq + 1
    sensors: dict[str, float | None] = {}
    for name, col in r.sensors.items():
        cell = v.get(col)
        if cell.__class__ is str:
            try:
                sensors[name] = float(cell)
                continue
            except ValueError:
                pass
        sensors[name] = _number(cell, src, col, raw, True)
    settings: dict[str, float] = {}
    for name, col in r.settings.items():
        value = _number(v.get(col), src, col, raw, True)
        if value is not None:
            settings[name] = value
    metadata = dict(m.static_metadata)
    for name, col in r.metadata.items():
        if v.get(col) is not None:
            metadata[name] = str(v[col])
    return Reading(device, event_time, seq, sensors, settings, metadata)


def rows_to_readings(
    rows: Iterable[RawRow | RowError],
    resolved: _Resolved,
    shift_to: datetime | None = None,
) -> Iterator[tuple[RawRow, Reading] | RowError]:
    """Map rows to readings; a row that does not map is yielded as a RowError."""
    counters: dict[str, int] = {}
    shift: timedelta | None = None
    for row in rows:
        if isinstance(row, RowError):
            yield row
            continue
        try:
            if shift_to is not None and shift is None:
                first = _to_reading(row, resolved, {}, None)
                shift = shift_to - first.event_time
            yield row, _to_reading(row, resolved, counters, shift)
        except RowError as exc:
            yield exc


# -- replay --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayOptions:
    """How to replay.

    Attributes:
        fmt: the file format (None: from the file name).
        mapping: the column mapping (None: the format's default).
        speed: recorded seconds per wall second; None = as fast as possible.
        shift_to_now: move timestamps so the first reading is "now" (else keep them).
        strict: stop at the first bad row (RowError) instead of dead-lettering it.
        limit: replay at most this many rows.
        progress: draw a progress bar on stderr (None: when stderr is a terminal).
        cmapss_base_time: origin of C-MAPSS cycle times.
        cmapss_cycle_s: seconds per C-MAPSS cycle.
    """

    fmt: str | None = None
    mapping: ColumnMapping | None = None
    speed: float | None = None
    shift_to_now: bool = False
    strict: bool = False
    limit: int | None = None
    progress: bool | None = None
    cmapss_base_time: datetime = CMAPSS_BASE_TIME
    cmapss_cycle_s: float = CMAPSS_CYCLE_S


@dataclass(frozen=True)
class ReplayReport:
    """What a replay did.

    Attributes:
        path: the file.
        rows: rows read.
        sent: readings sent to the readings topic.
        bad_rows: rows that did not parse or map, by ``column/rule`` (dead-lettered).
        invalid: readings that broke a validation rule, by ``field/rule`` (dead-lettered).
        seconds: wall time.
        interrupted: Ctrl-C ended it early.
        first_bad: ``file:line: reason`` of the first bad rows (up to 20).
    """

    path: Path
    rows: int
    sent: int
    bad_rows: dict[str, int]
    invalid: dict[str, int]
    seconds: float
    interrupted: bool = False
    first_bad: tuple[str, ...] = ()

    @property
    def dead_lettered(self) -> int:
        return sum(self.bad_rows.values()) + sum(self.invalid.values())

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """A one-line progress bar with rate and ETA, drawn at most 5 times a second."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(frac * 24)
            eta = (self.total - done) / rate if rate > 0 else 0.0
            text = (
                f"\r{self.label} [{bar:<24}] {done:,}/{self.total:,} {frac:4.0%} "
                f"{rate:,.0f}/s ETA {int(eta) // 60}:{int(eta) % 60:02d}"
            )
        else:
            text = f"\r{self.label} {done:,} {rate:,.0f}/s"
        self.stream.write(text)
        self.stream.flush()

    def close(self, done: int) -> None:
        self.update(done, force=True)
        self.stream.write("\n")
        self.stream.flush()


@dataclass(frozen=True)
class ReplayPlan:
    """A checked replay: the file exists, its format is known and the mapping fits."""

    path: Path
    fmt: str
    rows: Iterator[RawRow | RowError]
    resolved: _Resolved
    total: int | None
    options: ReplayOptions


def prepare_replay(path: Path, options: ReplayOptions | None = None) -> ReplayPlan:
    """Check ``path`` and the mapping before anything is sent.

    Raises:
        InputFileError: the file is missing, unreadable or of an unknown format.
        MappingError: the mapping names a column the file does not have.
    """
    opts = options or ReplayOptions()
    fmt = detect_format(path, opts.fmt)
    columns, rows = read_rows(path, fmt)
    if opts.mapping is not None:
        mapping = opts.mapping
    elif fmt == "cmapss":
        match = _SUBSET.search(path.name)
        mapping = cmapss_mapping(
            match.group(1) if match else "CMAPSS", opts.cmapss_base_time, opts.cmapss_cycle_s
        )
    else:
        mapping = ColumnMapping()
    resolved = mapping.resolve(columns, str(path))
    total = count_rows(path, fmt)
    if opts.limit is not None:
        total = min(total, opts.limit) if total is not None else opts.limit
    return ReplayPlan(path, fmt, rows, resolved, total, opts)


def replay_file(
    path: Path | ReplayPlan, producer: ReadingProducer, options: ReplayOptions | None = None
) -> ReplayReport:
    """Replay ``path`` (or a prepared plan) through ``producer``.

    Raises:
        InputFileError: the file is missing, unreadable or of an unknown format.
        MappingError: the mapping names a column the file does not have.
        RowError: with ``strict``, the first bad row (names file:line, column and rule).
    """
    plan = path if isinstance(path, ReplayPlan) else prepare_replay(path, options)
    opts, path, rows, resolved, total = (
        plan.options,
        plan.path,
        plan.rows,
        plan.resolved,
        plan.total,
    )
    show = sys.stderr.isatty() if opts.progress is None else opts.progress
    bar = Progress(f"replay {path.name}", total) if show else None
    shift_to = datetime.now(UTC) if opts.shift_to_now else None

    bad: Counter[str] = Counter()
    invalid_before = Counter(producer.stats().dead_letters)
    first_bad: list[str] = []
    done = sent = 0
    started = time.monotonic()
    first_time: datetime | None = None
    interrupted = False
    try:
        for item in rows_to_readings(rows, resolved, shift_to):
            if opts.limit is not None and done >= opts.limit:
                break
            done += 1
            if isinstance(item, RowError):
                if opts.strict:
                    raise item
                bad[f"{item.field}/{item.rule}"] += 1
                if len(first_bad) < _MAX_LOGGED_BAD_ROWS:
                    first_bad.append(str(item))
                    logger.warning("bad row %s", item)
                producer.dead_letter(
                    item.raw, None, [Violation(item.field, item.rule, item.reason)], item.source
                )
            else:
                row, reading = item
                if opts.speed is not None:
                    if first_time is None:
                        first_time = reading.event_time
                    due = started + (reading.event_time - first_time).total_seconds() / opts.speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # pacing, not synchronisation
                if producer.send(reading, source=row.source):
                    sent += 1
            if bar is not None:
                bar.update(done)
    except KeyboardInterrupt:
        interrupted = True
        logger.warning("replay of %s interrupted after %d rows", path, done)
    finally:
        if bar is not None:
            bar.close(done)
    after = Counter(producer.stats().dead_letters)
    after.subtract(invalid_before)
    after.subtract(Counter({k: n for k, n in bad.items()}))
    invalid = {k: n for k, n in after.items() if n > 0}
    return ReplayReport(
        path,
        done,
        sent,
        dict(bad),
        invalid,
        time.monotonic() - started,
        interrupted,
        tuple(first_bad),
    )

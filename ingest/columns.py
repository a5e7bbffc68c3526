"""Which column of a recording is which field of a reading, and the mapping of rows to readings.

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
column). Time formats: ``iso`` (ISO-8601; a time without offset is taken as UTC),
``epoch_s``, ``epoch_ms``, or ``cycle`` (``base_time + value * cycle_s``).

**C-MAPSS** (:func:`cmapss_mapping`): the device id is ``<subset>-<unit:03d>`` with the
subset from the file name (``train_FD001.txt``, unit 7 -> ``FD001-007``), ``seq`` is the
cycle, ``event_time`` is ``base_time + cycle * cycle_s`` (default 2026-01-01T00:00:00Z and
10 minutes per cycle), sensors ``s1``..``s21`` and ``cycle`` (the engine's age in cycles,
which the default model reads), settings ``setting1``..``setting3``, metadata
``{"source": "cmapss", "subset": "FD001"}``.

:meth:`ColumnMapping.resolve` checks a mapping against a file's columns once, before
anything is sent; :func:`rows_to_readings` then turns each :class:`RawRow` into a
:class:`~ingest.schema.Reading`, or into a :class:`~ingest.errors.RowError` that names
``file:line``, the column and the rule.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from ingest.errors import MappingError, RowError
from ingest.schema import Reading
from ingest.validation import SETTING_RULES

logger = logging.getLogger(__name__)

__all__ = [
    "CMAPSS_BASE_TIME",
    "CMAPSS_CYCLE_S",
    "TIME_FORMATS",
    "ColumnMapping",
    "RawRow",
    "ResolvedMapping",
    "cmapss_mapping",
    "mapping_from_options",
    "name_columns",
    "parse_iso",
    "rows_to_readings",
]

CMAPSS_BASE_TIME: Final = datetime(2026, 1, 1, tzinfo=UTC)
CMAPSS_CYCLE_S: Final = 600.0
TIME_FORMATS: Final = ("iso", "epoch_s", "epoch_ms", "cycle")


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


def parse_iso(text: str) -> datetime:
    """An ISO-8601 time in UTC; a time without an offset is taken as UTC.

    >>> parse_iso("2026-01-01T00:10:00Z")
    datetime.datetime(2026, 1, 1, 0, 10, tzinfo=datetime.timezone.utc)
    >>> parse_iso("2026-01-01 02:00:00+02:00").hour
    0

    Raises:
        ValueError: ``text`` is not an ISO-8601 time (callers turn it into their own
            error, naming the option or the row).
    """
    t = datetime.fromisoformat(text.strip().replace("z", "Z"))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


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
        if self.time_format not in TIME_FORMATS:
            raise MappingError(
                f"time_format {self.time_format!r}: use one of {', '.join(TIME_FORMATS)}"
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
                values["base_time"] = parse_iso(str(values["base_time"]))
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

    def resolve(self, columns: Iterable[str], origin: str) -> ResolvedMapping:
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
        return ResolvedMapping(self, seq, sensors, settings, metadata)


@dataclass(frozen=True)
class ResolvedMapping:
    """A :class:`ColumnMapping` checked against a file's columns, defaults filled in.

    Build with :meth:`ColumnMapping.resolve`.

    Attributes:
        mapping: the mapping it was resolved from.
        seq: the sequence column, or None to number each device's rows.
        sensors: reading name -> column.
        settings: reading name -> column.
        metadata: reading name -> column.
    """

    mapping: ColumnMapping
    seq: str | None
    sensors: dict[str, str]
    settings: dict[str, str]
    metadata: dict[str, str]


def cmapss_mapping(
    subset: str, base_time: datetime = CMAPSS_BASE_TIME, cycle_s: float = CMAPSS_CYCLE_S
) -> ColumnMapping:
    """The mapping of a C-MAPSS subset file (see the module docstring).

    >>> cmapss_mapping("fd001").device_format
    'FD001-{:03d}'
    """
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
    row: RawRow, r: ResolvedMapping, counters: dict[str, int], shift: timedelta | None
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
            event_time = parse_iso(t_value)
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
    resolved: ResolvedMapping,
    shift_to: datetime | None = None,
) -> Iterator[tuple[RawRow, Reading] | RowError]:
    """Map rows to readings; a row that does not map is yielded as a RowError.

    Args:
        rows: a source's rows (a RowError passes through as it is).
        resolved: the mapping, resolved against the source's columns.
        shift_to: move every event time by the same amount so that the first row's
            time is this one (None keeps the recorded times).

    Yields:
        ``(row, reading)`` for a row that maps, else the RowError naming ``file:line``,
        the column and the rule.
    """
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


def name_columns(text: str | None) -> dict[str, str] | None:
    """``NAME`` or ``NAME=COLUMN`` items, comma-separated, as name -> column.

    >>> name_columns("vib=vib_mm_s, temp")
    {'vib': 'vib_mm_s', 'temp': 'temp'}
    """
    if not text:
        return None
    out: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if item:
            name, _, column = item.partition("=")
            out[name.strip()] = (column or name).strip()
    return out


def mapping_from_options(
    *,
    mapping_file: str | Path | None = None,
    device: str | None = None,
    time: str | None = None,
    seq: str | None = None,
    time_format: str | None = None,
    sensors: str | None = None,
    settings: str | None = None,
    metadata: str | None = None,
    cycle_s: float = CMAPSS_CYCLE_S,
    base_time: datetime = CMAPSS_BASE_TIME,
) -> ColumnMapping | None:
    """The column mapping of ``prognos replay``'s column options (and of ``train``'s, which
    reads recordings the same way); None when no option is given (the format's default).

    Raises:
        MappingError: the mapping file is malformed.
    """
    overrides: dict[str, Any] = {
        "device": device,
        "time": time,
        "seq": seq,
        "time_format": time_format,
        "sensors": name_columns(sensors),
        "settings": name_columns(settings),
        "metadata": name_columns(metadata),
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if mapping_file:
        mapping = ColumnMapping.load(Path(mapping_file))
    elif overrides:
        mapping = ColumnMapping(cycle_s=cycle_s, base_time=base_time)
    else:
        return None
    return replace(mapping, **overrides) if overrides else mapping

"""Propose a catalogue for a recording: ``prognos catalogue infer``.

:func:`infer_catalogue` reads a recording as ``prognos replay`` does (the same
:class:`~ingest.replay.ReplayOptions`: format, column mapping) and proposes a
:class:`~ingest.catalogue.Catalogue`: every sensor and setting with a range from its
values, units left empty for the user to fill in, the metadata fields, the sampling
period, and ``unknown = "dead-letter"``. :func:`infer_from_values` does the same from
values already in memory.

**The range rule** (:func:`proposed_range`), for a sensor's finite values:

1. ``q_lo``, ``q_hi``: the 0.1% and 99.9% quantiles; the robust span ``q_hi - q_lo``
   (when it is 0, a tenth of the largest ``|q|``, at least 1).
2. ``low = min(q_lo - m, min)`` and ``high = max(q_hi + m, max)`` with the margin ``m``
   half the robust span: beyond the bulk of the values by half its width, and never
   excluding an observed value, outliers included, so a replay of the same recording with
   the proposed catalogue sends no reading to the dead-letter topic. A value far beyond
   the bulk (more than three spans) is named in a note: a sentinel or a fault the user may
   want to exclude by narrowing the range.
3. A quantity never seen below zero keeps ``low >= 0`` (counts, speeds, absolute
   pressures), and both ends are rounded outwards to the margin's order of magnitude, so
   the file reads ``0 .. 60000`` rather than ``-18733.4 .. 56200.9``.

**The sampling period**: the median spacing of consecutive readings of a device, over all
devices (None when no device has two readings at different times).

>>> temperatures = [20.0 + i % 6 for i in range(1000)]  # 20 to 25
>>> proposed_range(temperatures), proposed_range([*temperatures, 400.0])
((17.0, 28.0), (17.0, 400.0))
>>> sampling_period({"pump-1": [0.0, 600.0, 1200.0], "pump-2": [300.0, 900.0]})
600.0
"""

from __future__ import annotations

import logging
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import median
from typing import Any, Final

import numpy as np

from ingest.catalogue import DEFAULT_LIMITS, Catalogue, SensorRule, format_duration
from ingest.columns import rows_to_readings
from ingest.errors import MappingError, RowError
from ingest.replay import ReplayOptions, prepare_replay
from ingest.validation import NAME_PATTERN, rules_for

logger = logging.getLogger(__name__)

__all__ = [
    "MARGIN",
    "QUANTILES",
    "Inference",
    "infer_catalogue",
    "infer_from_values",
    "proposed_range",
    "sampling_period",
]

QUANTILES: Final = (0.001, 0.999)
"""The quantiles that bound the bulk of a sensor's values."""
MARGIN: Final = 0.5
"""The margin beyond the bulk, as a share of its span."""
_FAR: Final = 3.0  # a value beyond the bulk by more than this many spans is noted


@dataclass(frozen=True)
class Inference:
    """A proposed catalogue and what was learnt on the way.

    Attributes:
        catalogue: the proposal (units empty, ``unknown = "dead-letter"``).
        rows: rows read.
        readings: rows that became readings.
        devices: distinct devices.
        bad_rows: rows that did not map to a reading, by ``column/rule``: the replay
            dead-letters them whatever the catalogue.
        notes: things the user should look at (outliers, sensors without values).
        rejected: readings the proposed catalogue's rules still refuse, by ``field/rule``
            (checked by reading the recording again; empty when not checked).
    """

    catalogue: Catalogue
    rows: int
    readings: int
    devices: int
    bad_rows: dict[str, int]
    notes: tuple[str, ...]
    rejected: dict[str, int]


def _round_out(value: float, step: float, up: bool) -> float:
    count = math.ceil(value / step) if up else math.floor(value / step)
    return float(f"{count * step:.12g}")


def proposed_range(values: Iterable[float]) -> tuple[float, float] | None:
    """The range the rule of the module docstring proposes for ``values`` (NaN and
    infinities ignored); None when there is no finite value."""
    v = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    q_lo, q_hi = (float(q) for q in np.quantile(v, QUANTILES))
    smallest, largest = float(v.min()), float(v.max())
    span = q_hi - q_lo
    if span <= 0:
        span = max(abs(q_lo), abs(q_hi)) * 0.1 or 1.0
    margin = MARGIN * span
    low = min(q_lo - margin, smallest)
    high = max(q_hi + margin, largest)
    if smallest >= 0 and low < 0:
        low = 0.0
    step = 10.0 ** math.floor(math.log10(margin))
    low, high = _round_out(low, step, up=False), _round_out(high, step, up=True)
    # Rounding to 12 digits may move an end back inside by a hair: one more step then.
    while low > smallest:
        low = _round_out(low - step, step, up=False)
    while high < largest:
        high = _round_out(high + step, step, up=True)
    return low, high


def _describe(name: str, v: np.ndarray, source: str, notes: list[str]) -> str:
    q_lo, q_hi = (float(q) for q in np.quantile(v, QUANTILES))
    smallest, largest = float(v.min()), float(v.max())
    span = q_hi - q_lo
    for end, value, bulk in (("largest", largest, q_hi), ("smallest", smallest, q_lo)):
        if span > 0 and abs(value - bulk) > _FAR * span:
            notes.append(
                f"{name}: the {end} value, {value:.10g}, is far from the rest (99.8% lie "
                f"between {q_lo:.6g} and {q_hi:.6g}): a sentinel or a fault? The range includes "
                "it, so the replay dead-letters nothing; narrow it if such values are faults."
            )
    return (
        f"observed {smallest:.6g} to {largest:.6g} (0.1%-99.9%: {q_lo:.6g} to {q_hi:.6g}) "
        f"in {v.size:,} values of {source}"
    )


def sampling_period(times_by_device: Mapping[Any, Sequence[float]]) -> float | None:
    """The median spacing, in seconds, of consecutive readings of a device, over all
    devices (readings at the same time skipped); None without two distinct times.

    >>> sampling_period({"a": [0.0, 60.0, 120.0], "b": [30.0, 90.0, 100.0]})
    60.0
    """
    gaps: list[float] = []
    for times in times_by_device.values():
        ordered = np.sort(np.asarray(times, dtype=np.float64))
        diffs = np.diff(ordered)
        gaps.extend(float(d) for d in diffs[diffs > 0])
    return float(median(gaps)) if gaps else None


def infer_from_values(
    sensors: Mapping[str, Iterable[float]],
    settings: Mapping[str, Iterable[float]] | None = None,
    *,
    source: str = "the recording",
    metadata: Sequence[str] = (),
    sampling_period_s: float | None = None,
    notes: list[str] | None = None,
) -> Catalogue:
    """A catalogue for these values of each sensor and setting (NaN: no value).

    Args:
        sensors: sensor name -> its values.
        settings: setting name -> its values.
        source: names the data in descriptions and messages.
        metadata: the metadata fields the readings carry.
        sampling_period_s: the sampling period (see :func:`sampling_period`), if known.
        notes: where to append what the user should look at (outliers, empty sensors).

    Returns:
        The proposal: ranges by :func:`proposed_range`, units empty, ``unknown =
        "dead-letter"``, a sensor or setting without any value left out (with a note).
    """
    notes = [] if notes is None else notes
    entries: dict[str, list[SensorRule]] = {"sensor": [], "setting": []}
    for kind, table in (("sensor", sensors), ("setting", settings or {})):
        for name, raw in table.items():
            v = np.asarray(raw if isinstance(raw, np.ndarray) else list(raw), dtype=np.float64)
            v = v[np.isfinite(v)]
            bounds = proposed_range(v)
            if bounds is None:
                notes.append(
                    f"{name}: no value in {source}; left out of the catalogue (declare it "
                    "once you know its range, or leave the column out)"
                )
                continue
            description = _describe(name, v, source, notes)
            entries[kind].append(SensorRule(name, "", bounds[0], bounds[1], description))
    limits = DEFAULT_LIMITS
    if len(entries["sensor"]) > limits.max_sensors or len(entries["setting"]) > limits.max_settings:
        limits = replace(
            limits,
            max_sensors=max(limits.max_sensors, len(entries["sensor"])),
            max_settings=max(limits.max_settings, len(entries["setting"])),
        )
    return Catalogue(
        sensors=tuple(entries["sensor"]),
        settings=tuple(entries["setting"]),
        metadata=tuple(metadata),
        sampling_period_s=sampling_period_s,
        unknown="dead-letter",
        limits=limits,
        description=f"proposed by prognos catalogue infer from {source}; fill in the units "
        "and review the ranges",
        origin=f"catalogue inferred from {source}",
    )


def _refuse_bad_columns(path: Path, rows: int, bad: Counter[str], examples: dict[str, str]) -> None:
    """A column that fails in most rows is a mapping mistake: say which and the fix."""
    for reason, count in bad.most_common():
        if count * 2 <= rows:
            break
        column, _, rule = reason.rpartition("/")
        fix = {
            "number": f"map it as metadata (--metadata {column}) or leave it out "
            f"(--ignore {column}, or name the sensors with --sensors)",
            "timestamp": "give the time's format (--time-format iso|epoch_s|epoch_ms|cycle) "
            "or the right column (--time-column)",
            "required": f"check that {column!r} is the column you meant (--device-column, "
            "--time-column)",
        }.get(rule, "check the column options (--mapping, --device-column, --time-column...)")
        raise MappingError(
            f"{path}: column {column!r} breaks rule {rule!r} in {count:,} of {rows:,} rows "
            f"(e.g. {examples[reason]}); {fix}"
        )


def _check_names(path: Path, kind: str, names: Iterable[str]) -> None:
    import re

    pattern = re.compile(NAME_PATTERN)
    for name in names:
        if pattern.fullmatch(name) is None:
            raise MappingError(
                f"{path}: the {kind} name {name!r} is not 1-64 of [A-Za-z0-9_.:/-], so readings "
                f"cannot carry it; name it in the mapping, e.g. --{kind}s "
                f"{re.sub(r'[^A-Za-z0-9_.:/-]', '_', name)[:64]}={name}"
            )


def infer_catalogue(
    path: Path, options: ReplayOptions | None = None, check: bool = True
) -> Inference:
    """Propose a catalogue for the recording at ``path``, read as a replay would read it.

    Args:
        path: the recording.
        options: its format and column mapping (and ``limit``: read at most that many rows).
        check: read the recording again and validate every reading with the proposal's
            rules (what a replay with it would dead-letter goes to ``rejected``).

    Raises:
        InputFileError: the file is missing, unreadable or of an unknown format.
        MappingError: the mapping does not fit the file; most rows fail on one column (a
            text column taken as a sensor, a wrong time format); a name readings cannot
            carry. The message names the file, the column and the fix.
    """
    opts = options or ReplayOptions()
    plan = prepare_replay(path, opts)
    resolved = plan.resolved
    _check_names(path, "sensor", resolved.sensors)
    _check_names(path, "setting", resolved.settings)
    values: dict[str, array[float]] = {
        n: array("d") for n in [*resolved.sensors, *resolved.settings]
    }
    times: dict[str, array[float]] = {}
    bad: Counter[str] = Counter()
    examples: dict[str, str] = {}
    rows = readings = 0
    for item in _limited(rows_to_readings(plan.source, resolved), opts.limit):
        rows += 1
        if isinstance(item, RowError):
            reason = f"{item.field}/{item.rule}"
            bad[reason] += 1
            examples.setdefault(reason, f"{item.source}: {item.reason}")
            continue
        reading = item[1]
        readings += 1
        for name, value in reading.sensors.items():
            if value is not None:
                values[name].append(value)
        for name, value in reading.settings.items():
            values[name].append(value)
        times.setdefault(reading.device_id, array("d")).append(reading.event_time.timestamp())
    if rows == 0:
        raise MappingError(f"{path}: no rows to infer a catalogue from")
    _refuse_bad_columns(path, rows, bad, examples)
    notes: list[str] = []
    if bad:
        notes.append(
            f"{sum(bad.values()):,} rows do not map to readings ("
            + ", ".join(f"{reason} {n:,}" for reason, n in bad.most_common(5))
            + "); a replay dead-letters them whatever the catalogue"
        )
    period = sampling_period(times)
    if period is None:
        notes.append("no device has two readings at different times: no sampling period")
    metadata = [
        *resolved.metadata,
        *(k for k in resolved.mapping.static_metadata if k not in resolved.metadata),
    ]
    catalogue = infer_from_values(
        {n: values[n] for n in resolved.sensors},
        {n: values[n] for n in resolved.settings},
        source=path.name,
        metadata=metadata,
        sampling_period_s=period,
        notes=notes,
    )
    rejected: Counter[str] = Counter()
    if check:
        rules = rules_for(catalogue)
        items = _limited(rows_to_readings(plan.source, resolved), opts.limit)
        for item in items:
            if not isinstance(item, RowError):
                violations = rules.validate(item[1])
                if violations:
                    rejected[f"{violations[0].field}/{violations[0].rule}"] += 1
    logger.info(
        "inferred a catalogue from %s: %d rows, %d sensors, %d settings, sampling period %s",
        path,
        rows,
        len(catalogue.sensors),
        len(catalogue.settings),
        format_duration(period) if period else "unknown",
    )
    return Inference(catalogue, rows, readings, len(times), dict(bad), tuple(notes), dict(rejected))


def _limited(items: Iterable[Any], limit: int | None) -> Iterable[Any]:
    from itertools import islice

    return items if limit is None else islice(items, limit)

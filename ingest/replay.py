"""Replay a recording to Kafka: a source's rows, mapped to readings, published at a pace.

The pieces live in their own modules: :mod:`ingest.sources` reads the file (CSV,
Parquet, JSON lines, NASA C-MAPSS), :mod:`ingest.columns` maps its rows to readings
(:class:`~ingest.columns.ColumnMapping`), :mod:`ingest.publish` paces, draws the
progress bar and handles Ctrl-C. This module joins them: :func:`prepare_replay` checks the
file and the mapping before anything is sent, :func:`replay_file` publishes.

A row that cannot be turned into a reading is, with ``strict``, a
:class:`~ingest.errors.RowError` naming ``file:line``; otherwise it is counted, logged with
``file:line`` and sent, as its original bytes, to the dead-letter topic.
"""

from __future__ import annotations

import logging
import math
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ingest.columns import (
    CMAPSS_BASE_TIME,
    CMAPSS_CYCLE_S,
    ColumnMapping,
    RawRow,
    ResolvedMapping,
    rows_to_readings,
)
from ingest.errors import RowError
from ingest.publish import Progress, publish
from ingest.schema import Reading
from ingest.sources import Source, open_source
from ingest.validation import Violation

if TYPE_CHECKING:
    from ingest.producer import ReadingProducer

logger = logging.getLogger(__name__)

__all__ = [
    "CMAPSS_CYCLE_S",
    "ReplayOptions",
    "ReplayPlan",
    "ReplayReport",
    "prepare_replay",
    "replay_file",
]

_MAX_LOGGED_BAD_ROWS: Final = 20


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
        sort_by_time: read the whole recording and send it in event-time order across
            devices, as a live fleet sends (a file sorted by device otherwise reaches the
            stream job out of event-time order, and readings behind its watermark are
            dropped as late); holds the recording in memory.
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
    sort_by_time: bool = False


#: A reading sent this far behind the latest event time already sent counts as out of order.
OUT_OF_ORDER_S: Final = 3600.0


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
        out_of_order: readings sent more than :data:`OUT_OF_ORDER_S` behind the latest
            event time already sent (a file not in time order across devices).
    """

    path: Path
    rows: int
    sent: int
    bad_rows: dict[str, int]
    invalid: dict[str, int]
    seconds: float
    interrupted: bool = False
    first_bad: tuple[str, ...] = ()
    out_of_order: int = 0

    @property
    def dead_lettered(self) -> int:
        """Rows and readings sent to the dead-letter topic."""
        return sum(self.bad_rows.values()) + sum(self.invalid.values())

    @property
    def rate(self) -> float:
        """Rows per second of wall time."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ReplayPlan:
    """A checked replay: the file exists, its format is known and the mapping fits.

    Attributes:
        path: the file.
        source: the open recording.
        resolved: the mapping, checked against the file's columns.
        total: how many rows will be replayed, if known (for the progress bar).
        options: the options it was prepared with.
    """

    path: Path
    source: Source
    resolved: ResolvedMapping
    total: int | None
    options: ReplayOptions


def prepare_replay(path: Path, options: ReplayOptions | None = None) -> ReplayPlan:
    """Check ``path`` and the mapping before anything is sent.

    Raises:
        InputFileError: the file is missing, unreadable or of an unknown format.
        MappingError: the mapping names a column the file does not have.
    """
    opts = options or ReplayOptions()
    source = open_source(path, opts.fmt)
    mapping = opts.mapping or source.default_mapping(opts.cmapss_base_time, opts.cmapss_cycle_s)
    resolved = mapping.resolve(source.columns, str(path))
    total = source.count()
    if opts.limit is not None:
        total = min(total, opts.limit) if total is not None else opts.limit
    return ReplayPlan(path, source, resolved, total, opts)


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
    opts = plan.options
    show = sys.stderr.isatty() if opts.progress is None else opts.progress
    shift_to = datetime.now(UTC) if opts.shift_to_now else None
    bad: Counter[str] = Counter()
    first_bad: list[str] = []
    sent = 0

    latest = float("-inf")
    behind = 0
    behind_s = 0.0

    def handle(item: tuple[RawRow, Reading] | RowError) -> None:
        nonlocal sent, latest, behind, behind_s
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
            t = reading.event_time.timestamp()
            if t < latest - OUT_OF_ORDER_S:
                behind += 1
                behind_s = max(behind_s, latest - t)
            latest = max(latest, t)
            if producer.send(reading, source=row.source):
                sent += 1

    def clock(item: tuple[RawRow, Reading] | RowError) -> float | None:
        return None if isinstance(item, RowError) else item[1].event_time.timestamp()

    rows: Iterable[tuple[RawRow, Reading] | RowError] = rows_to_readings(
        plan.source, plan.resolved, shift_to
    )
    if opts.limit is not None:
        rows = islice(rows, opts.limit)
    if opts.sort_by_time:  # bad rows first (they only go to the dead-letter topic)
        rows = sorted(rows, key=lambda it: -math.inf if (t := clock(it)) is None else t)
    run = publish(
        rows,
        handle,
        speed=opts.speed,
        clock=clock,
        producer=producer,
        progress=Progress(f"replay {plan.path.name}", plan.total) if show else None,
        label=f"replay of {plan.path}",
        unit="rows",
    )
    invalid = Counter(run.dead_letters)
    invalid.subtract(bad)
    if behind:
        logger.warning(
            "%d readings of %s were sent more than an hour (up to %.1f h) behind the latest "
            "event time already sent: the file is not in event-time order across devices, and "
            "a stream job's watermark may drop such readings as late. Replay with "
            "--sort-by-time to send them as a live fleet would.",
            behind,
            plan.path,
            behind_s / 3600,
        )
    return ReplayReport(
        plan.path,
        run.items,
        sent,
        dict(bad),
        {reason: n for reason, n in invalid.items() if n > 0},
        run.seconds,
        run.interrupted,
        tuple(first_bad),
        out_of_order=behind,
    )

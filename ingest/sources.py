"""Recordings read row by row: CSV, Parquet, JSON lines and NASA C-MAPSS text files.

Every format is one :class:`Source` subclass; :func:`open_source` picks it from
``--format`` or the file name (:func:`detect_format`). A source only reads: it yields
:class:`~ingest.columns.RawRow` items (or a :class:`~ingest.errors.RowError` for a row
that cannot be parsed), and :mod:`ingest.columns` turns them into readings.

* ``csv`` (:class:`CsvSource`, ``*.csv``): a header line, then one row a line;
* ``parquet`` (:class:`ParquetSource`, ``*.parquet``): one row a record, typed by its schema;
* ``jsonl`` (:class:`JsonLinesSource`, ``*.jsonl``, ``*.ndjson``): one JSON object a line;
* ``cmapss`` (:class:`CmapssSource`, ``*_FD00N.txt``): 26 numbers a line, no header.

CSV and JSON lines may be gzipped (``*.csv.gz``...). **C-MAPSS**: 26 whitespace-separated
columns, ``unit cycle setting1..3 s1..s21`` (:data:`CMAPSS_COLUMNS`); rows are yielded in
time order (cycle by cycle across engines), each engine's cycles in order, and the subset
(``FD001``) comes from the file name.

>>> import tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> folder = Path(tmp.name)
>>> _ = (folder / "plant.csv").write_text("device_id,event_time,vibration\\nm1,2026-01-01T00:00:00Z,1.5\\n")
>>> source = open_source(folder / "plant.csv")
>>> source.columns, source.count()
(['device_id', 'event_time', 'vibration'], 1)
>>> [row.values["vibration"] for row in source if isinstance(row, RawRow)]
['1.5']
>>> tmp.cleanup()
"""

from __future__ import annotations

import abc
import csv
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Final, TextIO

from ingest.columns import (
    CMAPSS_BASE_TIME,
    CMAPSS_CYCLE_S,
    ColumnMapping,
    RawRow,
    cmapss_mapping,
)
from ingest.errors import InputFileError, RowError

logger = logging.getLogger(__name__)

__all__ = [
    "CMAPSS_COLUMNS",
    "FORMATS",
    "CmapssSource",
    "CsvSource",
    "JsonLinesSource",
    "ParquetSource",
    "Source",
    "detect_format",
    "open_source",
]

CMAPSS_COLUMNS: Final = (
    "unit",
    "cycle",
    "setting1",
    "setting2",
    "setting3",
    *(f"s{i}" for i in range(1, 22)),
)
_SUBSET: Final = re.compile(r"(FD\d{3})", re.IGNORECASE)


class Source(abc.ABC):
    """A recording, read row by row. One subclass per file format.

    The contract every implementation keeps (``tests/unit/ingest/test_sources.py``
    checks it for each):

    * **Opening checks the file.** The constructor checks that ``path`` is a readable
      file of this format and reads what it needs to know its columns (a header, a
      schema, the first object), so every file error comes before anything is sent. It
      raises :class:`~ingest.errors.InputFileError`, naming the path and the fix, for a
      missing path, a folder, or a file it cannot read or whose start is not in this
      format (a CSV file without a header, a file pyarrow cannot open as Parquet).
    * :attr:`columns` is the list of the file's column names, in the file's order.
    * **Iterating yields every row**, in the file's order (:class:`CmapssSource`: in
      time order), as a :class:`~ingest.columns.RawRow` whose ``source`` is ``file:line``
      (Parquet rows count from 1 like lines) and whose ``raw`` holds the row's original
      bytes for the dead-letter topic. A row that cannot be parsed (wrong field count,
      not JSON) is yielded as a :class:`~ingest.errors.RowError` naming ``file:line``,
      never raised; checking values (numbers, times) is the mapping's job. Each
      iteration reads the file from the start; a read failure part-way raises
      :class:`~ingest.errors.InputFileError`.
    * :meth:`count` says how many rows there are, for a progress bar, or None when
      that costs a second read it cannot afford (a gzipped file).
    * :meth:`default_mapping` is the column mapping to use when the user gives none.

    A new format is one subclass that sets :attr:`format` and :attr:`suffixes`,
    implements :meth:`_open` and :meth:`_rows`, and is listed in :data:`_SOURCES`.

    Attributes:
        format: the ``--format`` name.
        suffixes: the file-name endings :func:`detect_format` recognises (also gzipped).
        path: the file.
        columns: the file's column names.
    """

    format: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise InputFileError(f"{path}: no such file; check the path (relative to {Path.cwd()})")
        if not path.is_file():
            raise InputFileError(f"{path}: not a file")
        try:
            self.columns: list[str] = self._open()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"{path}: cannot read it ({exc})") from None

    @classmethod
    def matches(cls, name: str) -> bool:
        """Whether a file called ``name`` (lower case) is in this format."""
        return any(name.endswith(s) or name.endswith(s + ".gz") for s in cls.suffixes)

    def __iter__(self) -> Iterator[RawRow | RowError]:
        try:
            yield from self._rows()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"{self.path}: cannot read it ({exc})") from None

    def count(self) -> int | None:
        """How many rows the file has (for the progress bar), or None when costly to know."""
        if self.path.name.endswith(".gz"):
            return None
        try:
            with open(self.path, "rb") as f:
                return sum(1 for line in f if line.strip())
        except OSError:
            return None

    def default_mapping(
        self, base_time: datetime = CMAPSS_BASE_TIME, cycle_s: float = CMAPSS_CYCLE_S
    ) -> ColumnMapping:
        """The mapping for this file when none is given.

        Args:
            base_time: origin of cycle times, for formats whose time is a cycle count.
            cycle_s: seconds per cycle, likewise.
        """
        return ColumnMapping(base_time=base_time, cycle_s=cycle_s)

    @abc.abstractmethod
    def _open(self) -> list[str]:
        """Check the file's start and return its columns (may raise InputFileError)."""

    @abc.abstractmethod
    def _rows(self) -> Iterator[RawRow | RowError]:
        """The rows, from the start of the file."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


def _open_text(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        import gzip

        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


class CsvSource(Source):
    """Comma-separated values with a header line; line numbers count the header as 1."""

    format = "csv"
    suffixes = (".csv",)

    def _open(self) -> list[str]:
        with _open_text(self.path) as f:
            header_line = f.readline()
        if not header_line.strip():
            raise InputFileError(f"{self.path}: empty file, expected a header line")
        return next(csv.reader([header_line]))

    def count(self) -> int | None:
        lines = super().count()
        return None if lines is None else lines - 1

    def _rows(self) -> Iterator[RawRow | RowError]:
        header = self.columns
        with _open_text(self.path) as f:
            f.readline()
            for number, line in enumerate(f, start=2):
                if not line.strip():
                    continue
                source = f"{self.path}:{number}"
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


class JsonLinesSource(Source):
    """One JSON object a line; the columns are the keys of the first object."""

    format = "jsonl"
    suffixes = (".jsonl", ".ndjson")

    def _open(self) -> list[str]:
        # The first object among the first 100 non-blank lines names the columns.
        seen = 0
        with _open_text(self.path) as f:
            for line in f:
                if not line.strip():
                    continue
                seen += 1
                try:
                    doc = json.loads(line)
                except ValueError:
                    doc = None
                if isinstance(doc, dict):
                    return list(doc)
                if seen > 100:
                    break
        return []

    def _rows(self) -> Iterator[RawRow | RowError]:
        with _open_text(self.path) as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                source = f"{self.path}:{number}"
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


class ParquetSource(Source):
    """An Apache Parquet file; each record is a row, its ``raw`` bytes are the record as JSON."""

    format = "parquet"
    suffixes = (".parquet",)

    def _open(self) -> list[str]:
        return list(self._file().schema_arrow.names)

    def _file(self) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises ArrowInvalid and friends
            raise InputFileError(f"{self.path}: not a readable Parquet file ({exc})") from None

    def count(self) -> int | None:
        try:
            return int(self._file().metadata.num_rows)
        except InputFileError:
            return None

    def _rows(self) -> Iterator[RawRow | RowError]:
        number = 0
        for batch in self._file().iter_batches(batch_size=10_000):
            for record in batch.to_pylist():
                number += 1
                raw = json.dumps(record, default=str, separators=(",", ":")).encode()
                yield RawRow(f"{self.path}:{number}", record, raw)


class CmapssSource(Source):
    """A NASA C-MAPSS text file (``train_FD001.txt``...), rows in time order.

    The rows are sorted by (cycle, unit) once the whole file is read; a row that does
    not parse is yielded as it is read, so before every good row.

    Attributes:
        subset: the subset named in the file name, upper case (``FD001``), else ``CMAPSS``.
    """

    format = "cmapss"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        match = _SUBSET.search(path.name)
        self.subset = match.group(1).upper() if match else "CMAPSS"

    @classmethod
    def matches(cls, name: str) -> bool:
        return name.endswith(".txt") and _SUBSET.search(name) is not None

    def _open(self) -> list[str]:
        return list(CMAPSS_COLUMNS)

    def default_mapping(
        self, base_time: datetime = CMAPSS_BASE_TIME, cycle_s: float = CMAPSS_CYCLE_S
    ) -> ColumnMapping:
        return cmapss_mapping(self.subset, base_time, cycle_s)

    def _rows(self) -> Iterator[RawRow | RowError]:
        # The whole file is read before the first row: time order needs every engine's
        # cycles (a C-MAPSS subset is at most a few MB).
        good: list[tuple[float, float, RawRow]] = []
        with open(self.path, encoding="ascii", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                source = f"{self.path}:{number}"
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


_SOURCES: Final[tuple[type[Source], ...]] = (
    CsvSource,
    ParquetSource,
    JsonLinesSource,
    CmapssSource,
)
FORMATS: Final = tuple(s.format for s in _SOURCES)


def detect_format(path: Path, given: str | None = None) -> str:
    """The format of ``path``: ``given``, else from the file name.

    >>> detect_format(Path("data/train_FD001.txt")), detect_format(Path("x.ndjson.gz"))
    ('cmapss', 'jsonl')

    Raises:
        InputFileError: unknown format.
    """
    if given:
        if given not in FORMATS:
            raise InputFileError(f"--format {given!r}: use one of {', '.join(FORMATS)}")
        return given
    name = path.name.lower()
    for source in _SOURCES:
        if source.matches(name):
            return source.format
    raise InputFileError(
        f"{path}: cannot tell the format from the name; give --format ({', '.join(FORMATS)})"
    )


def open_source(path: Path, fmt: str | None = None) -> Source:
    """Open ``path`` as a recording of format ``fmt`` (None: from the file name).

    Raises:
        InputFileError: the format is unknown, or the file is missing or unreadable.
    """
    fmt = detect_format(path, fmt)
    return next(s for s in _SOURCES if s.format == fmt)(path)

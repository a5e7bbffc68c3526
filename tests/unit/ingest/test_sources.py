"""The Source contract: every recording format passes the same assertions (river's way).

Each case writes the same three readings (two devices, two times, one sensor) in its
format; the assertions do not know which format they look at. A new Source subclass
needs a case here, which ``test_every_source_has_a_contract_case`` enforces.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.columns import RawRow, rows_to_readings
from ingest.errors import InputFileError, RowError
from ingest.sources import (
    CMAPSS_COLUMNS,
    FORMATS,
    CmapssSource,
    CsvSource,
    JsonLinesSource,
    ParquetSource,
    Source,
    detect_format,
    open_source,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MALFORMED = None  # a row that cannot be parsed at all, in the case's own way

# (device number, time step, sensor value): the same readings in every format.
Row = tuple[int, int, object] | None
GOOD: list[Row] = [(1, 0, 1.5), (2, 0, 2.5), (1, 1, 1.6)]
BAD_VALUE: list[Row] = [(1, 0, 1.5), (2, 0, "oops"), (1, 1, 1.6)]
WITH_MALFORMED: list[Row] = [(1, 0, 1.5), MALFORMED, (1, 1, 1.6)]


def _iso(step: int) -> str:
    return (T0 + timedelta(minutes=10 * step)).isoformat().replace("+00:00", "Z")


def _text(path: Path, lines: Sequence[str]) -> None:
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    lines = ["device_id,event_time,vibration"]
    for row in rows:
        lines.append(
            f"{row[0]},{_iso(row[1])},{row[2]}"
            if row is not None
            else "1,2026-01-01T00:00:00Z,1.0,extra"
        )
    _text(path, lines)


def write_jsonl(path: Path, rows: Sequence[Row]) -> None:
    _text(
        path,
        [
            json.dumps({"device_id": str(row[0]), "event_time": _iso(row[1]), "vibration": row[2]})
            if row is not None
            else '{"device_id": "1", "event_time"'
            for row in rows
        ],
    )


def write_parquet(path: Path, rows: Sequence[Row]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert all(row is not None for row in rows), "a Parquet file has no malformed rows"
    values = [row[2] for row in rows if row is not None]
    table = pa.table(
        {
            "device_id": [str(row[0]) for row in rows if row is not None],
            "event_time": [_iso(row[1]) for row in rows if row is not None],
            "vibration": values
            if all(isinstance(v, float) for v in values)
            else [str(v) for v in values],
        }
    )
    pq.write_table(table, path)


def write_cmapss(path: Path, rows: Sequence[Row]) -> None:
    rest = " ".join(["0.0"] * 20)
    _text(
        path,
        [
            f"{row[0]} {row[1] + 1} 0.0 0.0 100.0 {row[2]} {rest}" if row is not None else "1 7 0.1"
            for row in rows
        ],
    )


@dataclass(frozen=True)
class Case:
    """How one format writes the shared rows, and what its rows are called.

    Attributes:
        cls: the Source subclass.
        name: the file name (its format detectable from it).
        write: writes rows (a MALFORMED row where the format can have one).
        columns: the columns the file has.
        first_line: the line of the first row (2 after a CSV header).
        devices: the device ids the default mapping gives the three rows.
        sensor: the reading's name for the sensor column.
        count: what ``count()`` says for three rows (None: too costly, e.g. gzip).
        malformed: whether the format can hold a row that does not parse.
    """

    cls: type[Source]
    name: str
    write: Callable[[Path, Sequence[Row]], None]
    columns: Sequence[str]
    first_line: int
    devices: Sequence[str] = ("1", "2", "1")
    sensor: str = "vibration"
    count: int | None = 3
    malformed: bool = True


PLAIN = ("device_id", "event_time", "vibration")
CASES = [
    Case(CsvSource, "plant.csv", write_csv, PLAIN, first_line=2),
    Case(CsvSource, "plant.csv.gz", write_csv, PLAIN, first_line=2, count=None),
    Case(JsonLinesSource, "plant.jsonl", write_jsonl, PLAIN, first_line=1),
    Case(JsonLinesSource, "plant.ndjson.gz", write_jsonl, PLAIN, first_line=1, count=None),
    Case(ParquetSource, "plant.parquet", write_parquet, PLAIN, first_line=1, malformed=False),
    Case(
        CmapssSource,
        "train_FD001.txt",
        write_cmapss,
        CMAPSS_COLUMNS,
        first_line=1,
        devices=("FD001-001", "FD001-002", "FD001-001"),
        sensor="s1",
    ),
]


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


def written(case: Case, folder: Path, rows: Sequence[Row]) -> Path:
    path = folder / case.name
    case.write(path, rows)
    return path


def test_every_source_has_a_contract_case() -> None:
    assert {c.cls for c in CASES} == set(Source.__subclasses__())
    assert set(FORMATS) == {c.format for c in Source.__subclasses__()}


def test_the_format_is_told_from_the_name_and_opens_as_its_source(
    case: Case, tmp_path: Path
) -> None:
    path = written(case, tmp_path, GOOD)
    assert detect_format(path) == case.cls.format
    assert detect_format(tmp_path / "anything.bin", case.cls.format) == case.cls.format
    source = open_source(path)
    assert type(source) is case.cls and source.path == path


def test_columns_are_the_files_in_order(case: Case, tmp_path: Path) -> None:
    assert case.cls(written(case, tmp_path, GOOD)).columns == list(case.columns)


def test_rows_come_in_order_with_file_line_and_raw_bytes(case: Case, tmp_path: Path) -> None:
    path = written(case, tmp_path, GOOD)
    source = case.cls(path)
    rows = list(source)
    assert all(isinstance(row, RawRow) for row in rows)
    assert [row.source for row in rows] == [f"{path}:{case.first_line + i}" for i in range(3)]
    assert all(isinstance(row.raw, bytes) and row.raw for row in rows)
    resolved = source.default_mapping().resolve(source.columns, str(path))
    readings = [item[1] for item in rows_to_readings(rows, resolved) if isinstance(item, tuple)]
    assert [r.device_id for r in readings] == list(case.devices)
    assert [r.sensors[case.sensor] for r in readings] == [1.5, 2.5, 1.6]
    assert readings[0].event_time < readings[2].event_time


def test_each_iteration_reads_from_the_start(case: Case, tmp_path: Path) -> None:
    source = case.cls(written(case, tmp_path, GOOD))
    assert list(source) == list(source)


def test_a_bad_value_is_a_row_error_naming_file_line(case: Case, tmp_path: Path) -> None:
    path = written(case, tmp_path, BAD_VALUE)
    source = case.cls(path)
    resolved = source.default_mapping().resolve(source.columns, str(path))
    items = list(rows_to_readings(source, resolved))
    errors = [item for item in items if isinstance(item, RowError)]
    assert len(items) == 3 and len(errors) == 1
    [error] = errors
    assert error.source == f"{path}:{case.first_line + 1}" and error.rule == "number"
    assert str(error).startswith(f"{path}:{case.first_line + 1}: ")


def test_a_malformed_row_is_yielded_as_a_row_error_naming_file_line(
    case: Case, tmp_path: Path
) -> None:
    if not case.malformed:
        pytest.skip(f"{case.cls.__name__}: the file's schema types every cell, no row is malformed")
    path = written(case, tmp_path, WITH_MALFORMED)
    items = list(case.cls(path))
    errors = [item for item in items if isinstance(item, RowError)]
    assert len(items) == 3 and len(errors) == 1  # (C-MAPSS yields it first: rows are sorted)
    [error] = errors
    assert error.source == f"{path}:{case.first_line + 1}" and error.field == "row"
    content = path.read_bytes()
    assert error.raw and error.raw in (gzip.decompress(content) if case.count is None else content)


def test_a_missing_file_or_a_folder_is_an_input_file_error(case: Case, tmp_path: Path) -> None:
    missing = tmp_path / case.name
    with pytest.raises(InputFileError) as info:
        case.cls(missing)
    assert str(missing) in str(info.value) and "no such file" in str(info.value)
    with pytest.raises(InputFileError, match="no such file"):
        open_source(missing)
    with pytest.raises(InputFileError, match="not a file"):
        case.cls(tmp_path)


def test_count_is_the_number_of_rows_or_none(case: Case, tmp_path: Path) -> None:
    assert case.cls(written(case, tmp_path, GOOD)).count() == case.count


# -- format-specific rules on top of the contract ---------------------------------------
def test_an_unknown_format_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="--format"):
        detect_format(tmp_path / "data.xyz")
    with pytest.raises(InputFileError, match="use one of csv, parquet, jsonl, cmapss"):
        detect_format(tmp_path / "plant.csv", "xlsx")


def test_a_csv_file_without_a_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("\n")
    with pytest.raises(InputFileError, match="header"):
        CsvSource(path)


def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plant.parquet"
    path.write_text("device_id,event_time\n")
    with pytest.raises(InputFileError, match="not a readable Parquet file"):
        ParquetSource(path)


def test_cmapss_rows_come_in_time_order_and_the_subset_from_the_name(tmp_path: Path) -> None:
    path = tmp_path / "test_fd003.txt"
    write_cmapss(path, [(1, 0, 1.0), (1, 1, 2.0), (2, 0, 3.0), (2, 1, 4.0)])
    source = CmapssSource(path)
    assert source.subset == "FD003"
    assert [row.source for row in source if isinstance(row, RawRow)] == [
        f"{path}:{line}" for line in (1, 3, 2, 4)
    ]

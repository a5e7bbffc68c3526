"""Replay without a broker: formats, column mappings, C-MAPSS adapter, bad rows, CLI errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.errors import InputFileError, MappingError, RowError
from ingest.producer import ProducerStats
from ingest.replay import ColumnMapping, ReplayOptions, replay_file
from ingest.schema import Reading
from ingest.validation import Violation, validate


class FakeProducer:
    """Records what a ReadingProducer would send (validates like the real one)."""

    def __init__(self) -> None:
        self.sent: list[Reading] = []
        self.dead: list[tuple[bytes, str, str, str]] = []  # value, field, rule, source
        self.reasons: dict[str, int] = {}

    def send(self, reading: Reading, source: str | None = None) -> bool:
        violations = validate(reading)
        if violations:
            self.dead_letter(b"", None, violations, source or "producer")
            return False
        self.sent.append(reading)
        return True

    def dead_letter(
        self, value: bytes, key: bytes | None, violations: Sequence[Violation], source: str
    ) -> None:
        v = violations[0]
        self.dead.append((value, v.field, v.rule, source))
        self.reasons[f"{v.field}/{v.rule}"] = self.reasons.get(f"{v.field}/{v.rule}", 0) + 1

    def stats(self) -> ProducerStats:
        return ProducerStats(len(self.sent), 0, dict(self.reasons), None)


def run(path: Path, **options: object) -> tuple[FakeProducer, object]:
    producer = FakeProducer()
    report = replay_file(path, producer, ReplayOptions(progress=False, **options))  # type: ignore[arg-type]
    return producer, report


CSV = """machine,ts,vib,temp,site
m1,2026-01-01T00:00:00Z,1.5,40.0,north
m2,2026-01-01T00:00:01Z,2.5,41.0,south
m1,2026-01-01T00:00:02Z,1.6,,north
"""


def test_csv_with_a_json_mapping_file(tmp_path: Path) -> None:
    data = tmp_path / "plant.csv"
    data.write_text(CSV)
    mapping = tmp_path / "map.json"
    mapping.write_text(
        json.dumps(
            {
                "device": "machine",
                "time": "ts",
                "sensors": {"vibration": "vib", "bearing_temp": "temp"},
                "metadata": ["site"],
            }
        )
    )
    producer, report = run(data, mapping=ColumnMapping.load(mapping))
    assert [(r.device_id, r.seq) for r in producer.sent] == [("m1", 0), ("m2", 0), ("m1", 1)]
    first = producer.sent[0]
    assert first.event_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert first.sensors == {"vibration": 1.5, "bearing_temp": 40.0}
    assert first.metadata == {"site": "north"}
    assert producer.sent[2].sensors["bearing_temp"] is None  # empty cell = dropout
    assert report.sent == 3 and report.dead_lettered == 0  # type: ignore[attr-defined]


def test_toml_mapping_with_epoch_millis(tmp_path: Path) -> None:
    data = tmp_path / "x.jsonl"
    data.write_text(
        '{"id": "a", "ms": 1767225600000, "vibration": 3.0}\n{"id": "a", "ms": 1767225601000, "vibration": 3.1}\n'
    )
    mapping = tmp_path / "m.toml"
    mapping.write_text('device = "id"\ntime = "ms"\ntime_format = "epoch_ms"\n')
    producer, _ = run(data, mapping=ColumnMapping.load(mapping))
    assert [r.event_time for r in producer.sent] == [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
    ]


def test_unknown_column_in_the_mapping_is_named(tmp_path: Path) -> None:
    data = tmp_path / "plant.csv"
    data.write_text(CSV)
    with pytest.raises(MappingError) as info:
        run(
            data,
            mapping=ColumnMapping(
                device="machine", time="ts", sensors={"vibration": "vibration_mm_s"}
            ),
        )
    assert "'vibration_mm_s'" in str(info.value) and "plant.csv" in str(info.value)


def test_bad_mapping_file_keys_are_refused(tmp_path: Path) -> None:
    mapping = tmp_path / "m.json"
    mapping.write_text('{"device_column": "x"}')
    with pytest.raises(MappingError, match="unknown keys"):
        ColumnMapping.load(mapping)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        run(tmp_path / "nope.csv")
    odd = tmp_path / "data.xyz"
    odd.write_text("a")
    with pytest.raises(InputFileError, match="--format"):
        run(odd)


BAD_CSV = """device_id,event_time,vibration
a,2026-01-01T00:00:00Z,1.0
a,2026-01-01T00:00:01Z,oops
a,not-a-time,1.0
a,2026-01-01T00:00:03Z,1.0,extra
a,2026-01-01T00:00:04Z,500
a,2026-01-01T00:00:05Z,2.0
"""


def test_bad_rows_are_counted_dead_lettered_with_file_line_and_valid_ones_kept(
    tmp_path: Path,
) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(BAD_CSV)
    producer, report = run(data)
    assert [r.sensors["vibration"] for r in producer.sent] == [1.0, 2.0]
    assert [(f, r, s) for _, f, r, s in producer.dead] == [
        ("vibration", "number", f"{data}:3"),
        ("event_time", "timestamp", f"{data}:4"),
        ("row", "columns", f"{data}:5"),
        ("x.vibration", "range", f"{data}:6"),
    ]
    assert producer.dead[0][0] == b"a,2026-01-01T00:00:01Z,oops"  # the original bytes
    assert report.bad_rows == {"vibration/number": 1, "event_time/timestamp": 1, "row/columns": 1}  # type: ignore[attr-defined]
    assert report.invalid == {"x.vibration/range": 1}  # type: ignore[attr-defined]


def test_strict_stops_at_the_first_bad_row(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(BAD_CSV)
    with pytest.raises(RowError) as info:
        run(data, strict=True)
    assert info.value.source == f"{data}:3" and info.value.field == "vibration"


def test_cmapss_adapter(cmapss_dir: Path) -> None:
    producer, report = run(cmapss_dir / "train_FD001.txt", limit=300)
    first = producer.sent[0]
    assert first.device_id == "FD001-001" and first.seq == 1
    assert first.event_time == datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    assert first.settings == {"setting1": -0.0007, "setting2": -0.0004, "setting3": 100.0}
    assert (
        first.sensors["s2"] == 641.82
        and first.sensors["s21"] == 23.4190
        and first.sensors["cycle"] == 1.0
        and len(first.sensors) == 22
    )
    assert first.metadata == {"source": "cmapss", "subset": "FD001"}
    # Time order: cycle 1 of all 100 engines, then cycle 2...
    assert [r.device_id for r in producer.sent[:3]] == ["FD001-001", "FD001-002", "FD001-003"]
    assert producer.sent[100].seq == 2
    assert report.rows == 300  # type: ignore[attr-defined]


def test_cmapss_cycle_period_is_configurable(cmapss_dir: Path) -> None:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    producer, _ = run(
        cmapss_dir / "train_FD001.txt", limit=1, cmapss_base_time=base, cmapss_cycle_s=60.0
    )
    assert producer.sent[0].event_time == base + timedelta(minutes=1)


def test_cmapss_malformed_rows(tmp_path: Path, cmapss_dir: Path) -> None:
    lines = (cmapss_dir / "train_FD001.txt").read_text().splitlines()[:5]
    bad = tmp_path / "train_FD001.txt"
    bad.write_text("\n".join([*lines, "1 6 0.1 0.2", lines[0].replace("518.67", "abc"), ""]))
    producer, _ = run(bad)
    assert len(producer.sent) == 5
    assert [(f, r, s) for _, f, r, s in producer.dead] == [
        ("row", "columns", f"{bad}:6"),
        ("s1", "number", f"{bad}:7"),
    ]


def test_shift_to_now(tmp_path: Path) -> None:
    data = tmp_path / "plant.csv"
    data.write_text(CSV)
    mapping = ColumnMapping(device="machine", time="ts", sensors={"vibration": "vib"})
    before = datetime.now(UTC)
    producer, _ = run(data, mapping=mapping, shift_to_now=True)
    assert before <= producer.sent[0].event_time <= datetime.now(UTC)
    assert producer.sent[2].event_time - producer.sent[0].event_time == timedelta(seconds=2)


def test_paced_replay_follows_recorded_times(tmp_path: Path) -> None:
    data = tmp_path / "plant.csv"
    data.write_text(CSV)
    mapping = ColumnMapping(device="machine", time="ts", sensors={"vibration": "vib"})
    _, report = run(data, mapping=mapping, speed=10.0)  # 2 recorded seconds -> 0.2 s
    assert 0.18 <= report.seconds < 2.0  # type: ignore[attr-defined]


def test_simulator_recording_replays_with_the_default_mapping(tmp_path: Path) -> None:
    from simulator.config import FleetConfig
    from simulator.fleet import Fleet
    from simulator.run import run_fleet

    run_fleet(Fleet(FleetConfig(machines=4, seed=3)), steps=25, record=tmp_path / "rec")
    expected = list(Fleet(FleetConfig(machines=4, seed=3)).steps(25))
    producer, _ = run(tmp_path / "rec" / "readings.parquet")
    assert len(producer.sent) == len(expected) == 100
    for got, want in zip(producer.sent, expected, strict=True):
        assert (got.device_id, got.event_time, got.seq, got.settings, got.metadata) == (
            want.device_id,
            want.event_time,
            want.seq,
            want.settings,
            want.metadata,
        )
        assert {k: v for k, v in got.sensors.items() if k in want.sensors} == want.sensors


def test_cli_reports_bad_input_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deploy.cli import main

    assert main(["replay", str(tmp_path / "missing.csv")]) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
    data = tmp_path / "plant.csv"
    data.write_text(CSV)
    assert main(["replay", str(data), "--device-column", "nope"]) == 1
    assert "'nope'" in capsys.readouterr().err


def test_a_file_sorted_by_device_is_named_out_of_order_and_sort_by_time_fixes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A recording sorted by device reaches the stream job out of event-time order (its
    watermark then drops readings as late); the replay says so, and --sort-by-time sends
    the readings as a live fleet would."""
    rows = ["device_id,event_time,vibration"]
    for device in ("d1", "d2", "d3"):
        for day in range(1, 6):
            rows.append(f"{device},2026-01-0{day}T00:00:00Z,{day}.0")
    path = tmp_path / "by_device.csv"
    path.write_text("\n".join(rows) + "\n")

    with caplog.at_level("WARNING", logger="ingest.replay"):
        producer, report = run(path)
    assert report.out_of_order == 8  # d2's and d3's first four days came after d1's fifth
    assert "not in event-time order across devices" in caplog.text
    assert "--sort-by-time" in caplog.text

    producer, report = run(path, sort_by_time=True)
    times = [r.event_time for r in producer.sent]
    assert len(times) == 15 and times == sorted(times) and report.out_of_order == 0
    assert [r.device_id for r in producer.sent[:3]] == ["d1", "d2", "d3"]

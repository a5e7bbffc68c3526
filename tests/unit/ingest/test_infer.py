"""``prognos catalogue infer``: ranges from robust quantiles with a margin, the sampling
period, and no false dead letters when the same recording is replayed with the proposal."""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.cli import main
from ingest.catalogue import Catalogue
from ingest.cli import _options, register
from ingest.columns import ColumnMapping, rows_to_readings
from ingest.errors import MappingError, RowError
from ingest.infer import infer_catalogue, infer_from_values, proposed_range, sampling_period
from ingest.producer import ProducerStats
from ingest.replay import ReplayOptions, prepare_replay, replay_file
from ingest.schema import Reading
from ingest.validation import Violation, rules_for

ROOT = Path(__file__).resolve().parents[3]
BACKBLAZE_DIR = ROOT.parent / "shared" / "data" / "backblaze"
SMART = ("smart_1_raw", "smart_5_raw", "smart_9_raw", "smart_194_raw", "smart_197_raw")


@pytest.fixture(scope="module")
def backblaze() -> Path:
    """The Backblaze sample (3,000 drives; cite Backblaze, see its README)."""
    path = BACKBLAZE_DIR / "drives_sample3000.csv"
    if not path.is_file():
        pytest.fail(f"Backblaze data not found at {path}; the repo expects ../shared beside it")
    return path


def _disk_mapping() -> ColumnMapping:
    return ColumnMapping(
        device="serial_number",
        time="date",
        metadata={"model": "model", "capacity_bytes": "capacity_bytes"},
        sensors={name: name for name in SMART},  # failure is a label, not a sensor
    )


# -- the range rule --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=300,
    )
)
def test_the_range_holds_every_observed_value(values: list[float]) -> None:
    bounds = proposed_range(values)
    assert bounds is not None
    low, high = bounds
    assert low <= min(values) and high >= max(values)
    if min(values) >= 0:
        assert low >= 0  # a quantity never seen below zero stays non-negative


def test_the_range_is_the_bulk_widened_by_half_its_span_and_rounded_outwards() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(500.0, 10.0, 20_000)
    q_lo, q_hi = np.quantile(values, [0.001, 0.999])
    low, high = proposed_range(values)  # type: ignore[misc]
    margin = 0.5 * (q_hi - q_lo)
    assert q_lo - margin - 10 <= low <= q_lo - margin
    assert q_hi + margin <= high <= q_hi + margin + 10
    assert low == round(low, -1) and high == round(high, -1)  # the margin's magnitude: tens


def test_an_outlier_is_kept_in_the_range_and_named_in_a_note() -> None:
    values = [20.0 + i % 6 for i in range(1000)] + [4294967295.0]
    notes: list[str] = []
    catalogue = infer_from_values({"temp": values}, source="x.csv", notes=notes)
    rule = catalogue.sensor("temp")
    assert rule is not None and rule.high >= 4294967295.0 and rule.low == 17.0
    assert any("temp: the largest value, 4294967295, is far from the rest" in n for n in notes)


def test_edge_values() -> None:
    assert proposed_range([]) is None
    assert proposed_range([math.nan, math.inf]) is None
    assert proposed_range([5.0]) == (4.7, 5.3)
    assert proposed_range([0.0] * 100) == (0.0, 0.5)
    assert proposed_range([-3.0, -2.0]) == (-3.5, -1.5)


def test_sampling_period_is_the_median_spacing_of_a_devices_readings() -> None:
    assert sampling_period({"a": [0, 10, 20, 30], "b": [100, 100, 160]}) == 10.0
    assert sampling_period({"a": [0.0], "b": [5.0]}) is None
    assert sampling_period({"a": [30.0, 0.0, 10.0, 20.0]}) == 10.0  # order does not matter


def test_a_sensor_without_values_is_left_out_with_a_note() -> None:
    notes: list[str] = []
    catalogue = infer_from_values(
        {"a": [1.0, math.nan, 2.0], "empty": [math.nan, math.nan]},
        {"load": [0.5, 0.7]},
        notes=notes,
        metadata=["site"],
        sampling_period_s=60.0,
    )
    assert [s.name for s in catalogue.sensors] == ["a"]
    assert [s.name for s in catalogue.settings] == ["load"]
    assert all(s.unit == "" for s in (*catalogue.sensors, *catalogue.settings))
    assert (catalogue.unknown, catalogue.metadata, catalogue.sampling_period_s) == (
        "dead-letter",
        ("site",),
        60.0,
    )
    assert any(n.startswith("empty: no value") for n in notes)
    assert Catalogue.loads(catalogue.dumps()) == catalogue


# -- a real recording: Backblaze -------------------------------------------------------------


def test_backblaze_replays_with_no_false_dead_letters(backblaze: Path) -> None:
    """Every row of the recording passes the rules of the catalogue inferred from it."""
    result = infer_catalogue(backblaze, ReplayOptions(mapping=_disk_mapping()), check=False)
    catalogue = result.catalogue
    assert [s.name for s in catalogue.sensors] == list(SMART)
    assert catalogue.sampling_period_s == 86_400.0  # daily snapshots
    assert catalogue.metadata == ("model", "capacity_bytes")
    assert (result.rows, result.devices, result.bad_rows) == (112_299, 3_000, {})
    temperature = catalogue.sensor("smart_194_raw")
    assert temperature is not None and 0 <= temperature.low <= 11 and 45 <= temperature.high <= 100
    # The independent check: every row, read again, validated with the Python rules.
    plan = prepare_replay(backblaze, ReplayOptions(mapping=_disk_mapping()))
    rules = rules_for(Catalogue.loads(catalogue.dumps()))  # as a replay would load the file
    refused: Counter[str] = Counter()
    readings = 0
    for item in rows_to_readings(plan.source, plan.resolved):
        assert not isinstance(item, RowError), item
        readings += 1
        for v in rules.validate(item[1])[:1]:
            refused[f"{v.field}/{v.rule}"] += 1
    assert readings == 112_299 and refused == Counter()
    # The default catalogue, by contrast, refuses the 4294967295 sentinel of smart_1_raw.
    sentinel = Reading("d", datetime(2013, 4, 20, tzinfo=UTC), 0, {"smart_1_raw": 4294967295.0})
    assert [v.rule for v in rules_for(None).validate(sentinel)] == ["range"]


class _Producer:
    """What replay_file needs of a producer, validating with a catalogue."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.rules = rules_for(catalogue)
        self.sent = 0
        self.dead: Counter[str] = Counter()

    def send(self, reading: Reading, source: str | None = None) -> bool:
        violations = self.rules.validate(reading)
        if violations:
            self.dead_letter(b"", None, violations, source or "")
            return False
        self.sent += 1
        return True

    def dead_letter(
        self, value: bytes, key: bytes | None, violations: Sequence[Violation], source: str
    ) -> None:
        self.dead[f"{violations[0].field}/{violations[0].rule}"] += 1

    def stats(self) -> ProducerStats:
        return ProducerStats(self.sent, 0, dict(self.dead), None)


def test_the_cli_proposes_a_catalogue_and_a_replay_with_it_sends_no_dead_letter(
    backblaze: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "disks.toml"
    columns = ["--device-column", "serial_number", "--time-column", "date"]
    options = ["--metadata", "model,capacity_bytes", "--ignore", "failure", "--limit", "20000"]
    code = main(["catalogue", "infer", str(backblaze), *columns, *options, "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: 5 sensors, 0 settings, metadata model, capacity_bytes" in printed
    assert "sampling period 1d" in printed and 'unknown = "dead-letter"' in printed
    assert "check: a replay of this recording with it dead-letters no reading" in printed
    assert "reminder: fill in the units (5 left empty" in printed
    catalogue = Catalogue.load(out)
    assert out.read_text().startswith(
        "# Proposed by `prognos catalogue infer drives_sample3000.csv`"
    )
    # The replay's own path, with the catalogue deciding the mapping: its metadata fields
    # are metadata, and the undeclared failure column is not sent.
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["replay", str(backblaze), *columns, "--limit", "20000"])
    producer = _Producer(catalogue)
    report = replay_file(backblaze, producer, _options(args, catalogue, progress=False))  # type: ignore[arg-type]
    assert (report.rows, report.sent, report.dead_lettered) == (20_000, 20_000, 0)
    # Refusing to overwrite, and a text column taken as a sensor, are named with the fix.
    assert main(["catalogue", "infer", str(backblaze), *columns, "--out", str(out)]) == 1
    assert "the file exists" in capsys.readouterr().err
    assert main(["catalogue", "infer", str(backblaze), *columns, "--limit", "100"]) == 1
    err = capsys.readouterr().err
    assert "column 'model' breaks rule 'number' in 100 of 100 rows" in err
    assert "--metadata model" in err and "Traceback" not in err


def test_a_column_name_readings_cannot_carry_is_refused_with_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "plant.csv"
    data.write_text("device_id,event_time,bearing temp\nm1,2026-01-01T00:00:00Z,40.0\n")
    with pytest.raises(MappingError, match=r"--sensors bearing_temp=bearing temp"):
        infer_catalogue(data)


def test_cmapss_gives_its_cycle_as_the_sampling_period(cmapss_dir: Path) -> None:
    result = infer_catalogue(cmapss_dir / "train_FD001.txt", ReplayOptions(limit=3000))
    catalogue = result.catalogue
    assert catalogue.sampling_period_s == 600.0
    assert [s.name for s in catalogue.settings] == ["setting1", "setting2", "setting3"]
    assert catalogue.metadata == ("source", "subset")
    assert result.rejected == {}


def test_show_prints_a_catalogue(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["catalogue", "show", "simulator"]) == 0
    text = capsys.readouterr().out
    assert Catalogue.loads(text).sensor("vibration") is not None
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sensor]]\nname = "p"\nunit = "bar"\nlow = 9\nhigh = 1\n')
    assert main(["catalogue", "show", str(bad)]) == 1
    assert "low 9 is above high 1; swap them" in capsys.readouterr().err

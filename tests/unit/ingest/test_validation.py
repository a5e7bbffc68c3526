"""Validation rules: ranges, finiteness, sizes, required fields, unknown names, C-MAPSS coverage."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.codec import encode
from ingest.columns import cmapss_mapping, rows_to_readings
from ingest.schema import Reading
from ingest.sources import CmapssSource
from ingest.validation import (
    SENSOR_RULES,
    SETTING_RULES,
    Limits,
    Violation,
    check_size,
    rules_as_dict,
    validate,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def reading(sensors: dict[str, float | None] | None = None, **kw: object) -> Reading:
    base: dict[str, object] = {
        "device_id": "pump-0001",
        "event_time": T0,
        "seq": 0,
        "sensors": {"vibration": 2.0, "bearing_temp": 50.0} if sensors is None else sensors,
    }
    base.update(kw)
    return Reading(**base)  # type: ignore[arg-type]


def rules(violations: list[Violation]) -> list[tuple[str, str]]:
    return [(v.field, v.rule) for v in violations]


def test_a_plausible_reading_is_valid() -> None:
    assert validate(reading(settings={"load": 0.7}, metadata={"type": "pump"})) == []


def test_a_dropout_is_valid() -> None:
    assert validate(reading({"vibration": None, "speed": 1500.0})) == []


@pytest.mark.parametrize(
    ("sensors", "expected"),
    [
        ({"vibration": 150.0}, [("x.vibration", "range")]),
        ({"vibration": -0.1}, [("x.vibration", "range")]),
        ({"bearing_temp": math.nan}, [("x.bearing_temp", "finite")]),
        ({"bearing_temp": math.inf}, [("x.bearing_temp", "finite")]),
        ({"s3": 1e6, "s4": 1400.0}, [("x.s3", "range")]),
        ({"bad name!": 1.0}, [("x.bad name!", "name")]),
        ({}, [("x", "required")]),
    ],
)
def test_sensor_rules(sensors: dict[str, float | None], expected: list[tuple[str, str]]) -> None:
    assert rules(validate(reading(sensors))) == expected


def test_violation_message_names_value_unit_and_limits() -> None:
    [v] = validate(reading({"vibration": 150.0}))
    assert v.message == "150.0 mm/s is outside [0, 100]"


def test_required_and_scalar_fields() -> None:
    assert rules(validate(reading(device_id=""))) == [("d", "required")]
    assert rules(validate(reading(device_id="d" * 200))) == [("d", "length")]
    assert rules(validate(reading(seq=-1))) == [("s", "range")]


def test_settings_must_have_finite_in_range_values() -> None:
    assert rules(validate(reading(settings={"load": 3.0}))) == [("o.load", "range")]
    assert rules(validate(reading(settings={"setting3": math.nan}))) == [("o.setting3", "finite")]


def test_unknown_names_are_accepted_within_the_generic_bound() -> None:
    assert validate(reading({"oil_quality": 12345.0})) == []
    assert rules(validate(reading({"oil_quality": 2e9}))) == [("x.oil_quality", "range")]
    assert rules(validate(reading({"oil_quality": math.nan}))) == [("x.oil_quality", "finite")]


def test_unknown_names_can_be_refused() -> None:
    strict = Limits(allow_unknown=False)
    assert rules(validate(reading({"oil_quality": 1.0}), strict)) == [("x.oil_quality", "unknown")]
    assert validate(reading({"vibration": 1.0}), strict) == []


def test_counts_and_lengths_are_limited() -> None:
    many = {f"k{i}": 1.0 for i in range(300)}
    assert rules(validate(reading(many))) == [("x", "count")]
    assert rules(validate(reading(metadata={"note": "x" * 2000}))) == [("m.note", "length")]
    assert rules(validate(reading(metadata={f"k{i}": "v" for i in range(40)}))) == [("m", "count")]


def test_size_limit_on_encoded_bytes() -> None:
    small = encode(reading())
    assert check_size(small) is None
    v = check_size(b"x" * 70_000)
    assert v is not None and (v.field, v.rule) == ("payload", "size")
    assert check_size(small, Limits(max_message_bytes=10)) is not None


def test_every_simulator_sensor_has_a_rule() -> None:
    from simulator.config import MACHINE_TYPES

    for machine_type in MACHINE_TYPES.values():
        for name in machine_type.sensors:
            assert name in SENSOR_RULES, name
    assert {"load", "regime"} <= set(SETTING_RULES)


def test_catalogue_covers_cmapss() -> None:
    assert {f"s{i}" for i in range(1, 22)} <= set(SENSOR_RULES)
    assert {"setting1", "setting2", "setting3"} <= set(SETTING_RULES)


@pytest.mark.parametrize("name", ["train_FD001.txt", "test_FD001.txt"])
def test_every_cmapss_row_passes(cmapss_dir: Path, name: str) -> None:
    path = cmapss_dir / name
    source = CmapssSource(path)
    items = list(
        rows_to_readings(source, cmapss_mapping("FD001").resolve(source.columns, str(path)))
    )
    assert items, "no rows read"
    failures = [item for item in items if isinstance(item, Exception) or validate(item[1])]
    assert failures == []


def test_rules_as_dict_is_plain_json_data() -> None:
    data = json.loads(json.dumps(rules_as_dict()))
    assert data["sensors"]["vibration"] == {
        "unit": "mm/s",
        "low": 0.0,
        "high": 100.0,
        "description": "vibration velocity, RMS",
    }
    assert data["settings"]["setting3"]["high"] == 120.0
    assert data["limits"]["generic_bound"] == 1e9
    assert data["limits"]["max_message_bytes"] == 65536

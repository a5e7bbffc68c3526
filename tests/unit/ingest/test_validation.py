"""Validation rules: ranges, finiteness, sizes, required fields, unknown names, C-MAPSS
coverage, catalogues, and the Python forms of the rule objects."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.catalogue import Catalogue, Limits, SensorRule, default_catalogue, shipped_catalogue
from ingest.codec import encode
from ingest.columns import cmapss_mapping, rows_to_readings
from ingest.schema import Reading
from ingest.sources import CmapssSource
from ingest.validation import (
    SENSOR_RULES,
    SETTING_RULES,
    Rules,
    Violation,
    check_size,
    number_text,
    rules_as_dict,
    rules_for,
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
    assert v.message == "150.0 is outside [0, 100] mm/s"
    [v] = validate(reading({"oil_quality": 2e9}))
    assert (
        v.message == "2.0E9 is outside ±1e+09, the range of a name the catalogue does not declare"
    )


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
    strict = replace(default_catalogue(), unknown="dead-letter", origin="strict.toml")
    [v] = validate(reading({"oil_quality": 1.0}), strict)
    assert (v.field, v.rule) == ("x.oil_quality", "unknown")
    assert "strict.toml" in v.message and "[[sensor]]" in v.message
    assert validate(reading({"vibration": 1.0}), strict) == []
    assert validate(reading({"vibration": 1.0, "oil_quality": None}), strict) == []  # no value
    assert rules(validate(reading(settings={"zz": 1.0}), strict)) == [("o.zz", "unknown")]


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
    tiny = Catalogue(limits=Limits(max_message_bytes=10))
    assert rules_for(tiny).check_size(small) is not None


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
    assert data["limits"]["allow_unknown"] is True


# -- catalogues ------------------------------------------------------------------------------

PLANT = Catalogue(
    sensors=(SensorRule("pressure", "bar", 50.0, 300.0), SensorRule("temp", "", -40.0, 120.0)),
    settings=(SensorRule("load", "%", 0.0, 100.0),),
    unknown="dead-letter",
    origin="plant.toml",
)


def test_the_catalogue_in_force_decides_the_ranges() -> None:
    # 120 bar is outside the simulator's pressure range, inside this plant's.
    assert rules(validate(reading({"pressure": 120.0}))) == [("x.pressure", "range")]
    assert validate(reading({"pressure": 120.0}), PLANT) == []
    [v] = validate(reading({"pressure": 20.0}), PLANT)
    assert v.message == "20.0 is outside [50, 300] bar"
    [v] = validate(reading({"temp": 200.0}), PLANT)
    assert v.message == "200.0 is outside [-40, 120]"  # no unit filled in yet
    [v] = validate(reading({"pressure": 60.0}, settings={"load": 120.0}), PLANT)
    assert v.message == "120.0 is outside [0, 100] %"


def test_limits_come_from_the_catalogue() -> None:
    small = Catalogue(limits=Limits(max_sensors=2, generic_bound=10.0))
    assert rules(validate(reading({"a": 1.0, "b": 2.0, "c": 3.0}), small)) == [("x", "count")]
    assert rules(validate(reading({"a": 11.0}), small)) == [("x.a", "range")]


def test_the_first_violation_is_the_first_rule_broken_then_its_first_entry() -> None:
    # As the stream job decides: rule by rule, and within a rule the first entry.
    v = validate(reading({"a": math.nan, "b@d": 1.0, "c": 2e9}))
    assert rules(v) == [("x.b@d", "name"), ("x.a", "finite"), ("x.c", "range")]
    # an entry is judged by its first broken rule only
    assert rules(validate(reading({"b@d": math.nan}))) == [("x.b@d", "name")]
    # a field breaking one rule is not judged by the next
    assert rules(validate(reading(device_id=7))) == [("d", "required")]
    many = {f"k{i}": math.nan for i in range(40)}
    assert rules(validate(reading(settings=many))) == [("o", "count")]


def test_wrong_kinds_built_in_code_are_named() -> None:
    assert rules(validate(reading(seq="1"))) == [("s", "type")]
    assert rules(validate(reading({"a": "high"}))) == [("x.a", "type")]
    assert rules(validate(reading({"a": True}))) == [("x.a", "type")]
    assert rules(validate(reading({"a": 10**400}))) == [("x.a", "finite")]
    [v] = validate(reading(metadata={"k": None}))  # type: ignore[dict-item]
    assert (v.field, v.rule, v.message) == ("m.k", "type", "must be a string, got null")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (250.0, "250.0"),
        (1234567.0, "1234567.0"),
        (12345678.0, "1.2345678E7"),
        (5e10, "5.0E10"),
        (-2e9, "-2.0E9"),
        (1e-4, "1.0E-4"),
        (0.001, "0.001"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (4294967295.0, "4.294967295E9"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
    ],
)
def test_numbers_are_written_as_the_jvm_writes_them(value: float, text: str) -> None:
    # Spark 4 on Java 17 writes these so (checked in tests/integration/test_stream_consistency.py).
    assert number_text(value) == text


def _slow(catalogue: Catalogue) -> Rules:
    """The rules without the Python fast path."""
    rules = Rules(catalogue)
    rules.fields = tuple(replace(f, quick=None) for f in rules.fields)
    return rules


_NAMES = st.sampled_from(
    ["vibration", "s2", "pressure", "temp", "load", "oil", "b@d", "", "x" * 65]
)
_VALUES = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 100.0, 100.5, -1.0, 1e9, 1e9 + 1, 50.0, 300.0, 2, True, "1"]),
)


@settings(max_examples=300, deadline=None)
@given(
    sensors=st.dictionaries(_NAMES, _VALUES, max_size=5),
    setting_values=st.dictionaries(_NAMES, _VALUES, max_size=3),
    metadata=st.dictionaries(
        _NAMES, st.one_of(st.none(), st.integers(), st.text(max_size=3), st.just("v" * 1025))
    ),
    catalogue=st.sampled_from([default_catalogue(), PLANT, shipped_catalogue("cmapss")]),
)
def test_the_fast_path_changes_nothing(
    sensors: dict[str, object],
    setting_values: dict[str, object],
    metadata: dict[str, object],
    catalogue: Catalogue,
) -> None:
    r = reading(sensors, settings=setting_values, metadata=metadata)
    assert rules_for(catalogue).validate(r) == _slow(catalogue).validate(r)

"""The sensor catalogue: the file format, its checks and messages, the shipped catalogues."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.catalogue import (
    SHIPPED,
    UNITS,
    Catalogue,
    CatalogueError,
    Limits,
    SensorRule,
    default_catalogue,
    format_duration,
    load_catalogue,
    parse_duration,
    shipped_catalogue,
)
from ingest.errors import ConfigError

GOOD = """
description = "Pumps of plant 4"
sampling_period = "10m"
unknown = "dead-letter"
metadata = ["site"]
units = ["strokes/min"]

[limits]
max_sensors = 64
generic_bound = 1e6

[[sensor]]
name = "pressure"
unit = "bar"
low = 0
high = 40.5
description = "discharge pressure"

[[sensor]]
name = "strokes"
unit = "strokes/min"
low = 0.0
high = 120.0

[[setting]]
name = "load"
unit = "fraction"
low = 0.0
high = 1.5
"""


def test_a_file_loads_with_every_part() -> None:
    c = Catalogue.loads(GOOD, origin="plant4.toml")
    assert c.sensor("pressure") == SensorRule("pressure", "bar", 0.0, 40.5, "discharge pressure")
    assert [s.name for s in c.sensors] == ["pressure", "strokes"]
    assert c.setting("load") is not None and c.setting("pressure") is None
    assert (c.sampling_period_s, c.unknown, c.metadata) == (600.0, "dead-letter", ("site",))
    assert c.limits == Limits(max_sensors=64, generic_bound=1e6)
    assert c.name == "plant4" and c.origin == "plant4.toml"


def test_dumps_writes_toml_that_reads_back_equal() -> None:
    c = Catalogue.loads(GOOD)
    text = c.dumps(header="a header\nover two lines")
    assert text.startswith("# a header\n# over two lines\n")
    tomllib.loads(text)  # plain TOML
    assert Catalogue.loads(text) == c
    odd = replace(
        c,
        description='quotes " and \\ and \x7f and é',
        sensors=(SensorRule("n", "-", -1e-9, 1e20, "line\nbreak"),),
    )
    assert Catalogue.loads(odd.dumps()) == odd


def test_save_and_load_a_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    Catalogue.loads(GOOD).save(path)
    assert Catalogue.load(path) == Catalogue.loads(GOOD)
    assert load_catalogue(path).origin == str(path)
    assert load_catalogue(str(path)) == Catalogue.loads(GOOD)


def _error(text: str) -> str:
    with pytest.raises(CatalogueError) as info:
        Catalogue.loads(text, origin="fleet.toml")
    return str(info.value)


def _entry(**fields: object) -> str:
    lines = ["[[sensor]]"] + [f"{k} = {v!r}".replace("'", '"') for k, v in fields.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _entry(name="pressure", unit="bar", low=50, high=40),
            [
                'fleet.toml:1: [[sensor]] "pressure"'.replace('"', "'"),
                "low 50 is above high 40",
                "swap",
            ],
        ),
        (_entry(name="pressure", unit="bar", low=0), ["missing high", "largest plausible value"]),
        (_entry(name="pressure", low=0, high=1), ["missing unit", "if dimensionless"]),
        (_entry(unit="bar", low=0, high=1), ["[[sensor]] number 1", "missing name"]),
        (
            _entry(name="pressure", unit="kpa", low=0, high=1),
            ["unknown unit 'kpa'", "did you mean 'kPa'", 'units = ["kpa"]'],
        ),
        (_entry(name="p", unit="bar", low="zero", high=1), ["low = 'zero' must be a number"]),
        (_entry(name="p", unit="bar", low=0, high=1, hgih=2), ["unknown field 'hgih'"]),
        (_entry(name="bad name", unit="bar", low=0, high=1), ["not 1-64 of"]),
        (
            _entry(name="p", unit="bar", low=0, high=1)
            + "\n"
            + _entry(name="p", unit="bar", low=0, high=2),
            ["'p' is declared twice"],
        ),
        ("[[sensor]\nname = 1", ["not valid TOML", "line 1"]),
        ('unknown = "reject"', ['write "accept" or "dead-letter"']),
        ('sampling_period = "often"', ["sampling_period", "30s, 10m, 1h or 1d"]),
        ('sampling_period = "10"', ["sampling_period"]),
        ("sensors = []", ["unknown key 'sensors'", "did you mean 'sensor'"]),
        ("[limits]\nmax_sensorz = 3", ["'max_sensorz' is not a limit"]),
        ("[limits]\nmax_sensors = -3", ["max_sensors = -3 must be a positive number"]),
        ("[limits]\nmax_sensors = 2.5", ["must be a whole number"]),
        ("metadata = [1]", ["metadata must be a list of strings"]),
    ],
)
def test_bad_files_are_refused_with_the_file_the_entry_and_the_fix(
    text: str, expected: list[str]
) -> None:
    message = _error(text)
    assert message.startswith("fleet.toml")
    for part in expected:
        assert part in message, (part, message)


def test_the_line_of_an_entry_is_named() -> None:
    text = (
        _entry(name="a", unit="bar", low=0, high=1)
        + "\n"
        + _entry(name="b", unit="bar", low=3, high=1)
    )
    assert "fleet.toml:7: [[sensor]] 'b'" in _error(text)


def test_catalogue_errors_are_config_errors_of_ingest() -> None:
    assert issubclass(CatalogueError, ConfigError)
    assert CatalogueError.retriable is False


def test_an_empty_unit_is_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingest.catalogue"):
        c = Catalogue.loads(
            _entry(name="smart_5_raw", unit="", low=0, high=10), origin="disks.toml"
        )
    assert c.sensor("smart_5_raw") is not None
    assert "disks.toml: no unit yet for smart_5_raw" in caplog.text


def test_dimensionless_and_the_units_of_the_shipped_catalogues_are_known() -> None:
    assert "-" in UNITS
    for name in SHIPPED:
        for rule in (*shipped_catalogue(name).sensors, *shipped_catalogue(name).settings):
            assert rule.unit in UNITS


def test_a_catalogue_built_in_code_is_checked_too() -> None:
    with pytest.raises(CatalogueError, match="low 2 is above high 1"):
        Catalogue(sensors=(SensorRule("a", "bar", 2.0, 1.0),))
    with pytest.raises(CatalogueError, match="declared twice"):
        Catalogue(settings=(SensorRule("a", "-", 0, 1), SensorRule("a", "-", 0, 1)))


def test_durations() -> None:
    assert parse_duration("1d") == 86_400 and parse_duration("1w") == 7 * 86_400
    assert parse_duration("500ms") == 0.5 and parse_duration("1h 30m") == 5400
    for bad in ("", "10", "1x", "-1s", "0s", "s"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    for seconds in (86_400.0, 3600.0, 600.0, 90.0, 1.0, 0.25, 1.5, 7 * 86_400.0):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
    assert format_duration(1.5) == "1500ms"


def test_the_shipped_catalogues_hold_what_was_hard_coded() -> None:
    simulator, cmapss = shipped_catalogue("simulator"), shipped_catalogue("cmapss")
    assert {s.name for s in simulator.sensors} >= {"vibration", "bearing_temp", "pressure"}
    assert {s.name for s in cmapss.sensors} == {f"s{i}" for i in range(1, 22)} | {"cycle"}
    assert {s.name for s in cmapss.settings} == {"setting1", "setting2", "setting3"}
    assert simulator.sensor("vibration") == SensorRule(
        "vibration", "mm/s", 0.0, 100.0, "vibration velocity, RMS"
    )
    assert cmapss.sampling_period_s == 600.0 and simulator.sampling_period_s == 1.0


def test_the_default_catalogue_is_both_shipped_ones_accepting_unknown_names() -> None:
    default = default_catalogue()
    assert default.unknown == "accept" and default.limits == Limits()
    names = {s.name for name in SHIPPED for s in shipped_catalogue(name).sensors}
    assert {s.name for s in default.sensors} == names
    assert default.sampling_period_s is None  # 1 s and 10 min do not agree
    assert load_catalogue(None) is default and load_catalogue("default") is default
    assert load_catalogue("cmapss") is shipped_catalogue("cmapss")


def test_a_name_that_is_no_file_and_no_shipped_catalogue() -> None:
    with pytest.raises(CatalogueError, match="no such file, and not a shipped catalogue"):
        load_catalogue("plant")
    with pytest.raises(CatalogueError, match="no such file; check the path"):
        load_catalogue("plant.toml")


def test_merge_refuses_a_name_declared_two_ways() -> None:
    a = Catalogue(sensors=(SensorRule("p", "bar", 0, 40),), origin="a.toml")
    b = Catalogue(sensors=(SensorRule("p", "bar", 0, 50),), origin="b.toml")
    with pytest.raises(CatalogueError, match="'p' is declared differently"):
        Catalogue.merge(a, b)
    strict = replace(a, unknown="dead-letter")
    assert Catalogue.merge(strict, strict).unknown == "dead-letter"
    assert Catalogue.merge(strict, replace(b, sensors=())).unknown == "accept"

"""The fleet simulation: determinism, monotone degradation, failure signatures, sensor faults."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from statistics import mean

import pytest

from ingest.codec import encode
from ingest.validation import validate
from simulator.config import FaultRates, FleetConfig
from simulator.errors import ConfigError
from simulator.fleet import Fleet
from simulator.run import Pace, run_fleet

QUIET = FaultRates(noise=0.0, drift=0.0, dropout=0.0, stuck=0.0)


def test_same_seed_same_readings_byte_for_byte() -> None:
    config = FleetConfig(machines=6, seed=42, fast_fail=2, fast_fail_s=60)
    a = [encode(r) for r in Fleet(config).steps(200)]
    b = [encode(r) for r in Fleet(config).steps(200)]
    assert a == b
    c = [encode(r) for r in Fleet(replace(config, seed=43)).steps(200)]
    assert a != c


def test_a_machine_does_not_depend_on_the_fleet_size() -> None:
    small = [
        r for r in Fleet(FleetConfig(machines=2, seed=5)).steps(50) if r.device_id == "motor-0001"
    ]
    large = [
        r for r in Fleet(FleetConfig(machines=9, seed=5)).steps(50) if r.device_id == "motor-0001"
    ]
    assert small == large


def test_readings_are_valid_and_carry_no_ground_truth() -> None:
    fleet = Fleet(FleetConfig(machines=9, seed=1, fast_fail=3, fast_fail_s=120, step_s=5.0))
    readings = list(fleet.steps(400))
    assert all(validate(r) == [] for r in readings)
    assert {k for r in readings for k in r.settings} == {"load", "regime"}
    assert {k for r in readings for k in r.metadata} == {"type"}
    per_device: dict[str, list[int]] = {}
    for r in readings:
        per_device.setdefault(r.device_id, []).append(r.seq)
    assert all(seqs == list(range(len(seqs))) for seqs in per_device.values())


def test_health_is_monotone_until_maintenance() -> None:
    fleet = Fleet(
        FleetConfig(machines=3, seed=2, fast_fail=3, fast_fail_s=3000, step_s=10.0, faults=QUIET)
    )
    machine = fleet.machines[0]
    healths = []
    for _ in range(150):
        healths.append(machine.health(fleet.now))
        fleet.step()
    assert healths[0] == 1.0 and healths[-1] < 0.9
    assert all(b <= a for a, b in pairwise(healths)), "health went up without maintenance"
    fleet.maintain(machine.device_id)
    assert machine.health(fleet.now) == 1.0
    assert [life.end_reason for life in machine.lives] == ["maintenance", "running"]


def test_fast_failing_machines_fail_in_time_and_are_renewed_after_repair() -> None:
    config = FleetConfig(
        machines=4, seed=9, fast_fail=2, fast_fail_s=300, step_s=5.0, repair_s=100.0
    )
    fleet = Fleet(config)
    list(fleet.steps(120))  # 600 simulated seconds
    truth = fleet.ground_truth()
    failed = [life for life in truth if life.end_reason == "failure"]
    assert {life.device_id for life in failed} == {"pump-0000", "motor-0001"}
    for life in failed:
        assert life.end_time is not None
        assert (life.end_time - config.start).total_seconds() <= 300 + config.step_s
        assert life.end_time >= life.failure_time
    assert sum(1 for life in truth if life.device_id == "pump-0000") == 2  # renewed after repair


def test_scheduled_maintenance_resets_health() -> None:
    fleet = Fleet(FleetConfig(machines=2, seed=4, step_s=60.0, maintenance_interval_s=3600.0))
    list(fleet.steps(200))
    reasons = [life.end_reason for life in fleet.ground_truth()]
    assert reasons.count("maintenance") >= 4


SIGNATURE_SENSORS = (
    "vibration",
    "bearing_temp",
    "winding_temp",
    "motor_current",
    "pressure",
    "flow",
)


def _healthy_and_failing(mode: str) -> tuple[dict[str, float], dict[str, float]]:
    """Mean sensor values of a pump at steady load when healthy and just before failure."""
    config = FleetConfig(
        machines=1,
        seed=11,
        types=("pump",),
        failure_modes=(mode,),
        fast_fail=1,
        fast_fail_s=40_000,
        step_s=20.0,
        regime_dwell_s=1e12,
        faults=QUIET,
    )
    fleet = Fleet(config)
    machine = fleet.machines[0]
    healthy: list[dict[str, float]] = []
    failing: list[dict[str, float]] = []
    while machine.life.end_reason == "running":
        health = machine.health(fleet.now)
        elapsed = (fleet.now - config.start).total_seconds()
        for r in fleet.step():
            values = {k: v for k, v in r.sensors.items() if v is not None}
            if health == 1.0 and elapsed > 3000:  # temperatures settled, no damage yet
                healthy.append(values)
            elif health < 0.05:
                failing.append(values)
    assert healthy and failing
    return (
        {k: mean(v[k] for v in healthy) for k in SIGNATURE_SENSORS},
        {k: mean(v[k] for v in failing) for k in SIGNATURE_SENSORS},
    )


def _changes(mode: str) -> dict[str, float]:
    healthy, failing = _healthy_and_failing(mode)
    return {k: failing[k] / healthy[k] for k in SIGNATURE_SENSORS}


@pytest.mark.parametrize(
    ("mode", "up", "down", "flat"),
    [
        (
            "bearing_wear",
            {"vibration": 4.0, "bearing_temp": 1.4},
            {},
            ("winding_temp", "pressure", "flow"),
        ),
        (
            "overheating",
            {"winding_temp": 1.5, "motor_current": 1.15},
            {},
            ("vibration", "pressure", "flow"),
        ),
        (
            "imbalance",
            {"vibration": 3.0},
            {},
            ("winding_temp", "motor_current", "pressure", "flow"),
        ),
        ("seal_leak", {"motor_current": 1.05}, {"pressure": 0.7, "flow": 0.75}, ("winding_temp",)),
    ],
)
def test_each_failure_mode_shows_its_signature(
    mode: str, up: dict[str, float], down: dict[str, float], flat: tuple[str, ...]
) -> None:
    ratio = _changes(mode)
    for name, at_least in up.items():
        assert ratio[name] >= at_least, (
            f"{mode}: {name} changed x{ratio[name]:.2f}, expected >= x{at_least}"
        )
    for name, at_most in down.items():
        assert ratio[name] <= at_most, (
            f"{mode}: {name} changed x{ratio[name]:.2f}, expected <= x{at_most}"
        )
    for name in flat:
        assert 0.9 <= ratio[name] <= 1.12, (
            f"{mode}: {name} changed x{ratio[name]:.2f}, expected about x1"
        )


def _values(faults: FaultRates, steps: int = 300) -> list[list[float | None]]:
    fleet = Fleet(FleetConfig(machines=3, seed=8, faults=faults))
    return [list(r.sensors.values()) for r in fleet.steps(steps)]


def test_no_faults_no_gaps() -> None:
    assert all(v is not None for row in _values(QUIET) for v in row)


def test_dropouts_at_the_configured_rate() -> None:
    values = [v for row in _values(replace(QUIET, noise=1.0, dropout=0.2)) for v in row]
    share = sum(v is None for v in values) / len(values)
    assert 0.17 < share < 0.23


def test_stuck_sensors_repeat_their_last_value() -> None:
    fleet = Fleet(
        FleetConfig(
            machines=1,
            seed=8,
            types=("motor",),
            faults=FaultRates(noise=1.0, drift=0.0, dropout=0.0, stuck=0.01, stuck_steps=20),
        )
    )
    series = [r.sensors["speed"] for r in fleet.steps(2000)]
    repeats = sum(1 for a, b in pairwise(series) if a == b)
    assert repeats > 50  # with noise, a healthy sensor never repeats exactly
    noisy = [
        r.sensors["speed"]
        for r in Fleet(
            FleetConfig(machines=1, seed=8, types=("motor",), faults=replace(QUIET, noise=1.0))
        ).steps(2000)
    ]
    assert sum(1 for a, b in pairwise(noisy) if a == b) < 5


def test_drift_moves_a_sensor_away_from_its_clean_value() -> None:
    base = FleetConfig(machines=1, seed=3, types=("motor",), step_s=60.0, regime_dwell_s=1e12)
    clean = [r.sensors["speed"] for r in Fleet(replace(base, faults=QUIET)).steps(600)]
    drifting = [
        r.sensors["speed"]
        for r in Fleet(replace(base, faults=replace(QUIET, drift=1.0))).steps(600)
    ]
    assert clean[0] == drifting[0] or abs(clean[0] - drifting[0]) < 5
    assert abs(drifting[-1] - clean[-1]) > 0.1 * clean[-1]


def test_record_writes_readings_and_ground_truth(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    fleet = Fleet(FleetConfig(machines=5, seed=1, fast_fail=2, fast_fail_s=100, step_s=5.0))
    report = run_fleet(fleet, duration_s=500, record=tmp_path / "rec")
    readings = pq.read_table(tmp_path / "rec" / "readings.parquet")
    truth = pq.read_table(tmp_path / "rec" / "ground_truth.parquet").to_pylist()
    assert report.steps == 100
    assert readings.num_rows == report.readings
    assert 300 < report.readings < 500  # the two fast-failing machines are down after failing
    assert {"device_id", "event_time", "seq", "vibration", "pressure"} <= set(readings.column_names)
    assert "failure_mode" not in readings.column_names
    failed = [row for row in truth if row["end_reason"] == "failure"]
    assert {row["device_id"] for row in failed} == {"pump-0000", "motor-0001"}
    assert all(row["failure_mode"] and row["failure_time"] for row in truth)


@pytest.mark.parametrize(
    ("text", "speed"), [("max", None), ("realtime", 1.0), ("x60", 60.0), ("X2.5", 2.5)]
)
def test_pace_parse(text: str, speed: float | None) -> None:
    assert Pace.parse(text).speed == speed


@pytest.mark.parametrize("text", ["fast", "x0", "x-1", "60"])
def test_pace_parse_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="--rate"):
        Pace.parse(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"machines": 0},
        {"fast_fail": 3, "machines": 2},
        {"types": ("boiler",)},
        {"step_s": 0},
        {"failure_modes": ("rust",)},
        {"types": ("fan",), "failure_modes": ("seal_leak",)},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FleetConfig(**kwargs)  # type: ignore[arg-type]

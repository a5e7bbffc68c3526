"""The turbofan type: C-MAPSS-like readings whose levels and drift follow NASA FD001."""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from statistics import fmean, pstdev

import numpy as np
import pytest

from ingest.codec import encode
from ingest.schema import Reading
from ingest.validation import validate
from simulator.config import CMAPSS_SENSORS, FaultRates, FleetConfig
from simulator.errors import ConfigError
from simulator.fleet import Fleet
from simulator.run import TURBOFAN_COLUMNS, run_fleet
from simulator.turbofan import CALIBRATION, LIFE_DECILES, Turbofan, curves, shape

CYCLE = 600.0
NO_FAULTS = FaultRates(noise=1.0, drift=0.0, dropout=0.0, stuck=0.0)
DRIFTING = tuple(name for name, cal in CALIBRATION.items() if cal.rate)


def turbofans(machines: int, seed: int = 0, **kwargs: object) -> FleetConfig:
    options: dict[str, object] = {
        "types": ("turbofan",),
        "step_s": CYCLE,
        "cycle_s": CYCLE,
        "faults": NO_FAULTS,
        "repair_s": 1e9,  # one life each
        **kwargs,
    }
    return FleetConfig(machines=machines, seed=seed, **options)  # type: ignore[arg-type]


def first_lives(config: FleetConfig) -> dict[str, list[Reading]]:
    """Each engine's readings from new to failure (its first life)."""
    fleet = Fleet(config)
    out: dict[str, list[Reading]] = {}
    for _ in range(int(max(LIFE_DECILES)) + 2):
        for reading in fleet.step():
            out.setdefault(reading.device_id, []).append(reading)
    assert all(life.end_reason == "failure" for life in fleet.ground_truth())
    return out


@pytest.fixture(scope="module")
def fleet_to_failure() -> dict[str, list[Reading]]:
    """100 engines (as FD001's training set) run to failure."""
    return first_lives(turbofans(100, seed=1))


def healthy_and_failing(
    lives: dict[str, list[list[float]]],
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the cycles with remaining life > 150, and of each life's last 5 cycles."""
    healthy = [row for rows in lives.values() for row in rows[: max(0, len(rows) - 151)]]
    failing = [row for rows in lives.values() for row in rows[-5:]]
    return np.array(healthy), np.array(failing)


def simulated(lives: dict[str, list[Reading]]) -> dict[str, list[list[float]]]:
    return {
        dev: [[float(r.sensors[name]) for name in CMAPSS_SENSORS] for r in rows]  # type: ignore[arg-type]
        for dev, rows in lives.items()
    }


def test_readings_are_valid_cmapss_cycles() -> None:
    config = turbofans(4, seed=3, faults=FaultRates(), fast_fail=1, repair_s=1800.0)
    readings = list(Fleet(config).steps(120))
    assert readings and all(validate(r) == [] for r in readings)
    assert {k for r in readings for k in r.sensors} == {*CMAPSS_SENSORS, "cycle"}
    assert all(
        list(r.settings) == ["setting1", "setting2", "setting3"] and r.settings["setting3"] == 100
        for r in readings
    )
    assert all(
        abs(r.settings["setting1"]) < 0.02 and abs(r.settings["setting2"]) < 0.002 for r in readings
    )
    assert {r.metadata["type"] for r in readings} == {"turbofan"}
    per_device: dict[str, list[Reading]] = {}
    for r in readings:
        per_device.setdefault(r.device_id, []).append(r)
    for rows in per_device.values():
        assert [r.seq for r in rows] == list(range(len(rows)))
        gaps = {(b.event_time - a.event_time).total_seconds() for a, b in pairwise(rows)}
        assert gaps <= {CYCLE, CYCLE * 4}  # one per cycle; the fast one misses 3 under repair
        assert all((r.event_time - config.start).total_seconds() % CYCLE == 0 for r in rows)
        # The age counter: 1, 2, ... per cycle of a life, back to 1 after the repair.
        ages = [r.sensors["cycle"] for r in rows]
        assert ages[0] == 1.0
        for a, b in pairwise(rows):
            gap = (b.event_time - a.event_time).total_seconds()
            assert b.sensors["cycle"] == (a.sensors["cycle"] + 1 if gap == CYCLE else 1.0)  # type: ignore[operator]
    fast = [r for r in readings if r.device_id == "turbofan-0000"]
    assert 1.0 in [r.sensors["cycle"] for r in fast[1:]]  # it failed and was repaired


def test_a_fine_step_still_gives_one_reading_per_cycle() -> None:
    config = turbofans(2, seed=4, step_s=60.0, types=("pump", "turbofan"))
    readings = [r for r in Fleet(config).steps(100) if r.device_id == "turbofan-0001"]
    assert [r.event_time for r in readings] == [
        config.start + timedelta(seconds=CYCLE * k) for k in range(10)
    ]


def test_same_seed_same_readings_byte_for_byte() -> None:
    config = turbofans(5, seed=42, faults=FaultRates(), fast_fail=2)
    a = [encode(r) for r in Fleet(config).steps(150)]
    assert a == [encode(r) for r in Fleet(config).steps(150)]
    assert a != [encode(r) for r in Fleet(replace(config, seed=43)).steps(150)]
    small = [r for r in Fleet(replace(config, machines=3)).steps(150) if r.device_id.endswith("2")]
    assert small == [r for r in Fleet(config).steps(150) if r.device_id.endswith("2")]


def test_healthy_cycles_match_the_calibration_table(
    fleet_to_failure: dict[str, list[Reading]],
) -> None:
    healthy, _ = healthy_and_failing(simulated(fleet_to_failure))
    assert len(healthy) > 3000
    for j, name in enumerate(CMAPSS_SENSORS):
        cal = CALIBRATION[name]
        values = healthy[:, j]
        if cal.noise == 0.0:  # FD001 constant: the value, tiny noise
            assert values.mean() == pytest.approx(cal.healthy, rel=1e-5), name
            assert 0 < values.std() < 1e-4 * cal.healthy, name
            continue
        pooled = math.hypot(cal.noise, cal.spread)
        assert abs(values.mean() - cal.healthy) < 0.4 * pooled, name
        assert values.std() == pytest.approx(pooled, rel=0.2), name


def test_drifting_sensors_move_in_fd001_direction(
    fleet_to_failure: dict[str, list[Reading]],
) -> None:
    lives = simulated(fleet_to_failure)
    for j, name in enumerate(CMAPSS_SENSORS):
        cal = CALIBRATION[name]
        if not cal.rate:
            continue
        sign = math.copysign(1.0, cal.failure - cal.healthy)
        # Moving average over a fifth of each life, at 0-20 %, 20-40 %, ... 80-100 %,
        # averaged over the fleet, in FD001's direction of change.
        fifths = np.zeros(5)
        for rows in lives.values():
            series = sign * np.array([row[j] for row in rows])
            fifths += [part.mean() for part in np.array_split(series, 5)]
        fifths /= len(lives)
        shift = abs(cal.failure - cal.healthy)
        # s9 and s14 fan out near failure (FD001's engines end far apart): allow for it.
        slack = 0.02 * shift + 2 * cal.failure_spread / math.sqrt(len(lives))
        assert all(b - a > -slack for a, b in pairwise(fifths)), (name, fifths)
        assert fifths[-1] - fifths[0] > 0.3 * shift, name  # about 0.55 expected for s14


def test_health_falls_to_failure_and_maintenance_renews() -> None:
    fleet = Fleet(turbofans(1, seed=5, repair_s=0.0))
    engine = fleet.machines[0]
    assert isinstance(engine, Turbofan)
    healths = []
    while engine.life.end_reason == "running":
        healths.append(engine.health(fleet.now))
        fleet.step()
    assert 1.0 - shape(0.2, 4.38) <= healths[0] <= 1.0  # initial wear in [0, 0.2]
    assert healths[-1] < 0.05
    assert all(b <= a for a, b in pairwise(healths))
    assert engine.life.failure_mode == "hpc_degradation"
    fleet.step()  # back in service, renewed: no initial wear
    assert engine.health(engine.life.start_time) == 1.0 > engine.health(fleet.now)
    list(fleet.steps(30))
    fleet.maintain(engine.device_id)
    assert engine.health(fleet.now) == 1.0
    assert [life.end_reason for life in engine.lives] == ["failure", "maintenance", "running"]


def test_scheduled_maintenance_resets_turbofans() -> None:
    fleet = Fleet(turbofans(2, seed=4, maintenance_interval_s=40 * CYCLE))
    list(fleet.steps(200))
    reasons = [life.end_reason for life in fleet.ground_truth()]
    assert reasons.count("maintenance") >= 8 and "failure" not in reasons


def test_fast_failing_turbofans_fail_within_their_short_life() -> None:
    config = turbofans(4, seed=9, fast_fail=2)
    fleet = Fleet(config)
    counts: dict[str, int] = {}
    for reading in fleet.steps(91):
        counts[reading.device_id] = counts.get(reading.device_id, 0) + 1
    truth = {life.device_id: life for life in fleet.ground_truth()}
    for device in ("turbofan-0000", "turbofan-0001"):
        life = truth[device]
        assert life.end_reason == "failure" and life.end_time is not None
        assert 60 <= counts[device] <= 90
        assert life.end_time == config.start + timedelta(seconds=CYCLE * counts[device])
    assert {truth[d].end_reason for d in ("turbofan-0002", "turbofan-0003")} == {"running"}


def test_fast_failing_turbofans_reach_fd001_failure_levels() -> None:
    lives = simulated(first_lives(turbofans(40, seed=2, fast_fail=40)))
    assert all(60 <= len(rows) <= 90 for rows in lives.values())
    _, failing = healthy_and_failing(lives)
    for j, name in enumerate(CMAPSS_SENSORS):
        cal = CALIBRATION[name]
        if cal.rate:
            error = 3 * cal.failure_spread / math.sqrt(len(lives))  # of a 40-engine mean
            tolerance = 0.15 * abs(cal.failure - cal.healthy) + error
            assert abs(failing[:, j].mean() - cal.failure) < tolerance, name


def test_life_lengths_are_drawn_like_fd001(fleet_to_failure: dict[str, list[Reading]]) -> None:
    lengths = [len(rows) for rows in fleet_to_failure.values()]
    assert min(lengths) >= 128 and max(lengths) <= 362
    assert 190 < fmean(lengths) < 225 and 30 < pstdev(lengths) < 60


def test_curves_reproduce_the_table_in_expectation() -> None:
    for name, curve in curves().items():
        cal = CALIBRATION[name]
        if not cal.rate:
            assert (curve.base, curve.shift) == (cal.healthy, 0.0)
        else:  # a new engine reads a little before FD001's healthy mean, a failed one past it
            assert abs(curve.base - cal.healthy) < 0.1 * abs(cal.failure - cal.healthy)
            assert abs(curve.base + curve.shift - cal.failure) < 0.1 * abs(curve.shift)


def test_simulated_levels_match_fd001(
    cmapss_dir: Path, fleet_to_failure: dict[str, list[Reading]]
) -> None:
    """The honest check: FD001's own healthy and near-failure statistics, read in place."""
    data = np.loadtxt(cmapss_dir / "train_FD001.txt")
    real: dict[str, list[list[float]]] = {}
    for row in data:
        real.setdefault(str(int(row[0])), []).append(row[5:26].tolist())
    assert len(real) == 100
    real_healthy, real_failing = healthy_and_failing(real)
    sim_healthy, sim_failing = healthy_and_failing(simulated(fleet_to_failure))
    for j, name in enumerate(CMAPSS_SENSORS):
        spread = real_healthy[:, j].std()
        if spread < 1e-9:  # an FD001 constant
            spread = 1e-5 * abs(real_healthy[:, j].mean())
        assert abs(sim_healthy[:, j].mean() - real_healthy[:, j].mean()) < 0.4 * spread, name
        if name in DRIFTING:
            shift = real_failing[:, j].mean() - real_healthy[:, j].mean()
            # Both are means over 100 engines' last 5 cycles; s9 and s14 end far apart.
            error = 3 * math.sqrt(2 / 100) * CALIBRATION[name].failure_spread
            difference = abs(sim_failing[:, j].mean() - real_failing[:, j].mean())
            assert difference < 0.1 * abs(shift) + error, name
            assert sim_healthy[:, j].std() == pytest.approx(spread, rel=0.2), name
            assert sim_failing[:, j].std() == pytest.approx(real_failing[:, j].std(), rel=0.35)
        else:
            assert abs(sim_failing[:, j].mean() - real_failing[:, j].mean()) < 0.4 * spread


def test_record_turbofans_as_cmapss_columns(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    fleet = Fleet(turbofans(3, seed=1, faults=FaultRates(), fast_fail=1, repair_s=600.0))
    report = run_fleet(fleet, steps=100, record=tmp_path / "rec")
    table = pq.read_table(tmp_path / "rec" / "readings.parquet")
    assert table.column_names == [
        "device_id",
        "event_time",
        "seq",
        "machine_type",
        *TURBOFAN_COLUMNS,
    ]
    assert table.num_rows == report.readings
    truth = pq.read_table(tmp_path / "rec" / "ground_truth.parquet").to_pylist()
    assert any(
        row["failure_mode"] == "hpc_degradation" and row["end_reason"] == "failure" for row in truth
    )


def test_cli_steps_one_cycle_at_a_time_for_turbofans(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from simulator.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["simulate", "--types", "turbofan", "--machines", "2", "--fast-fail", "1", "--steps", "5",
         "--rate", "max", "--no-publish", "--record", str(tmp_path / "rec")]
    )  # fmt: skip
    assert args.handler(args) == 0
    rows = pq.read_table(tmp_path / "rec" / "readings.parquet").to_pylist()
    assert len(rows) == 10
    times = sorted({row["event_time"] for row in rows})
    assert [(b - a).total_seconds() for a, b in pairwise(times)] == [600.0] * 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cycle_s": 0.0},
        {"cycle_s": 30.0, "step_s": 60.0},
        {"fast_fail_cycles": 2},
        {"failure_modes": ("seal_leak",)},
    ],
)
def test_bad_turbofan_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FleetConfig(types=("turbofan",), **kwargs)  # type: ignore[arg-type]

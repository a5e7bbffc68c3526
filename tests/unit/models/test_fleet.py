"""A user's fleet: defaults chosen from the data, the checks, the split, scoring windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.data import Recording
from models.errors import DataError
from models.features import FeatureSpec, NormStats
from models.fleet import (
    RULES,
    FleetOptions,
    applicable_rules,
    choose_regimes,
    constant_sensors,
    plan_training,
    profile,
    rule_risk,
    score_windows,
    split_devices,
)
from models.labels import EventLog

HOUR, DAY = 3600.0, 86400.0
T0 = 19676 * DAY  # 2023-11-15, a whole number of days since the epoch


def fleet(
    devices: int = 10, days: float = 20.0, step: float = HOUR, fail_every: float = 8.0
) -> Recording:
    """Hourly readings; each device fails every ``fail_every`` days (offset per device)."""
    rng = np.random.default_rng(0)
    rows, failures = [], []
    for d in range(devices):
        t = np.arange(0.0, days * DAY, step) + T0
        name = f"m{d:02d}"
        fails = [
            t[0] + (fail_every * (k + 1) - 0.3 * d) * DAY for k in range(int(days // fail_every))
        ]
        failures += [(name, f) for f in fails if f <= t[-1]]
        rows.append(pd.DataFrame({
            "device_id": name, "event_time": t,
            "temp": rng.normal(60, 2, t.size), "const": 1.0, "flat": 21.6 + 1e-12 * (np.arange(t.size) % 2),
            "rpm": 2388.0 + rng.normal(0, 0.05, t.size),
        }))  # fmt: skip
    frame = pd.concat(rows, ignore_index=True)
    return Recording("plant.csv", frame, {}, "0" * 64, events=EventLog.build(failures))


def test_defaults_come_from_the_sampling_period_and_the_runs_to_failure() -> None:
    rec = fleet()
    prof = profile(rec)
    assert prof.period == HOUR and prof.median_run is not None
    plan = plan_training(rec, FleetOptions(test_fraction=0.2))
    spec = plan.spec
    run = profile(rec.restrict(plan.train_devices)).median_run  # about 8 days
    assert run is not None
    # W: run / 40 (4.6 h) rounded down to a round duration; H 15% of the run; K 25%.
    assert spec.window_seconds == 3 * HOUR
    assert spec.horizon_windows == round(0.15 * run / spec.window_seconds)
    assert spec.sequence_length == 10  # 25% of 8 days is 16 windows of 3 h: at most 10
    assert plan.phases == 3  # three readings a window
    assert spec.statistics == ("mean", "std", "min", "max", "last", "slope")
    assert spec.sensors == ("temp", "rpm")  # const and flat dropped; rpm moves by little
    assert any("'const' dropped: constant (1)" in n for n in plan.notes)
    assert any("'flat' dropped: constant up to rounding" in n for n in plan.notes)
    assert plan.regimes == 1 and plan.choices["regimes"]["reason"] == "no setting columns"
    for choice in ("window", "horizon", "sequence_length", "statistics", "phases", "test_devices"):
        assert plan.choices[choice]["reason"]
    assert len(plan.test_devices) == 2 and not set(plan.test_devices) & set(plan.train_devices)


def test_what_the_user_gives_is_kept_and_rounded_to_whole_windows() -> None:
    plan = plan_training(fleet(), FleetOptions(window_s=HOUR, horizon_s=DAY + 600,
                                               sequence_s=12 * HOUR))  # fmt: skip
    assert plan.spec.window_seconds == HOUR and plan.spec.horizon_windows == 24
    assert plan.spec.sequence_length == 12
    assert "rounded to 24 whole windows" in plan.choices["horizon"]["reason"]


def test_about_one_reading_per_window_keeps_the_mean_only() -> None:
    plan = plan_training(fleet(step=DAY, days=40, fail_every=20), FleetOptions())
    assert plan.spec.window_seconds == DAY and plan.spec.statistics == ("mean",)
    assert plan.phases == 1


def test_one_reading_per_device_is_refused_with_the_fix() -> None:
    frame = pd.DataFrame({"device_id": ["a", "b"], "event_time": [0.0, 1.0], "v": [1.0, 2.0]})
    rec = Recording("one.csv", frame, {}, "0" * 64, events=EventLog.build([("a", 0.0)]))
    with pytest.raises(
        DataError, match=r"one\.csv: every device has a single reading.*--device-column"
    ):
        plan_training(rec)


def test_no_failures_is_refused_with_the_options_that_give_them() -> None:
    rec = fleet()
    with pytest.raises(
        DataError, match=r"plant\.csv: no failures.*--failures FILE.*--failure-column"
    ):
        plan_training(Recording(rec.name, rec.readings, {}, rec.data_sha256))
    outside = EventLog.build([("m00", 1.0)])  # long before the data
    with pytest.raises(DataError, match=r"none of the 1 failures falls within"):
        plan_training(Recording(rec.name, rec.readings, {}, rec.data_sha256, events=outside))


def test_a_horizon_longer_than_any_history_names_one_that_fits() -> None:
    with pytest.raises(DataError, match=r"--horizon 60d is longer than every device's history "
                       r"\(the longest is 19d23h\).*Try --horizon 1d"):  # fmt: skip
        plan_training(fleet(), FleetOptions(horizon_s=60 * DAY))


def test_a_sequence_longer_than_any_history_names_one_that_fits() -> None:
    with pytest.raises(DataError, match=r"--sequence-length of 200 windows.*try --sequence-length"):
        plan_training(fleet(), FleetOptions(sequence_windows=200, window_s=3 * HOUR))


def test_a_sensor_missing_on_some_devices_is_noted_with_the_file() -> None:
    rec = fleet()
    frame = rec.readings.copy()
    frame.loc[frame["device_id"].isin(["m01", "m02"]), "temp"] = np.nan
    rec = Recording(rec.name, frame, {}, rec.data_sha256, events=rec.events)
    plan = plan_training(rec, FleetOptions(test_fraction=0.0))
    assert any(
        "'temp' has no value on 2 device(s) of plant.csv (e.g. m01, m02)" in n for n in plan.notes
    )


def test_mixed_sampling_sizes_windows_for_the_slower_devices() -> None:
    rec = fleet(devices=10)
    frame = rec.readings
    slow = frame["device_id"].isin(["m00", "m01"])
    frame = frame[~slow | ((frame["event_time"] - T0) % (6 * HOUR) == 0)].reset_index(drop=True)
    plan = plan_training(Recording(rec.name, frame, {}, rec.data_sha256, events=rec.events))
    assert any(n.startswith("mixed sampling") for n in plan.notes)
    assert plan.spec.window_seconds >= 6 * HOUR


def test_split_holds_out_failed_and_other_devices_alike() -> None:
    devices = [f"d{i:02d}" for i in range(50)]
    failed = set(devices[:10])
    train, test = split_devices(devices, failed, 0.2, 7)
    assert len(test) == 10 and len(set(test) & failed) == 2
    assert split_devices(devices, failed, 0.2, 7) == (train, test)  # the seed fixes it
    assert split_devices(devices, failed, 0.2, 8) != (train, test)
    with pytest.raises(DataError, match="need at least 5"):
        split_devices(devices[:5], set(), 0.5, 7)


def test_regimes_are_found_where_the_settings_cluster() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0, 100.0], [10.0, 0.25, 100.0], [20.0, 0.7, 100.0],
                        [25.0, 0.62, 60.0], [35.0, 0.84, 100.0], [42.0, 0.84, 100.0]])  # fmt: skip
    settings = centres[rng.integers(0, 6, 5000)] + rng.normal(0, 1e-3, (5000, 3))
    n, found, why = choose_regimes(settings, ("alt", "mach", "tra"))
    assert n == 6 and found is not None and "6 clusters" in why
    assert np.allclose(np.asarray(found), centres, atol=0.01)  # sorted like the centres
    # Continuous settings, constant ones, none: no regimes.
    assert choose_regimes(rng.uniform(0, 1, (3000, 2)), ("a", "b"))[0] == 1
    assert choose_regimes(np.ones((100, 1)), ("a",))[2] == "the settings are constant"
    assert choose_regimes(np.empty((10, 0)), ())[2] == "no setting columns"


def test_constant_sensors_are_judged_within_each_regime() -> None:
    frame = pd.DataFrame({"device_id": "d", "event_time": np.arange(6.0),
                          "s1": [1.0, 1.0, 1.0, 5.0, 5.0, 5.0], "s2": [np.nan] * 6})  # fmt: skip
    rec = Recording("r", frame, {}, "0" * 64)
    assert constant_sensors(rec, ["s1", "s2"]) == {"s2": "no value in any reading"}
    within = constant_sensors(rec, ["s1"], np.array([0, 0, 0, 1, 1, 1]))
    assert within == {"s1": "constant within each regime (1 to 5 across them)"}


def test_score_windows_scores_what_the_stream_would_and_labels_it() -> None:
    rec = fleet(devices=3, days=10, fail_every=5)
    spec = FeatureSpec(("temp",), window_seconds=6 * HOUR, sequence_length=4, horizon_windows=4,
                       statistics=("mean",))  # fmt: skip
    norm = NormStats((60.0,), (2.0,))
    seen: list[tuple[int, ...]] = []

    def score(x: np.ndarray) -> np.ndarray:
        seen.append(x.shape)
        return np.full(len(x), 0.25)

    scored = score_windows(score, norm, spec, rec, batch=50)
    assert len(scored) == 3 * (40 - 3)  # 40 windows a device, the first K-1 wait
    assert seen[0] == (50, 4, 1) and all(s[1:] == (4, 1) for s in seen)
    assert np.all(scored.window_end - scored.window_start == spec.window_seconds)
    assert set(np.unique(scored.y)) <= {-1, 0, 1} and (scored.y == 1).any()
    assert (scored.risk == 0.25).all() and set(scored.spans) == {"m00", "m01", "m02"}
    with pytest.raises(DataError, match=r"reads sensor\(s\) pressure.*--sensors NAME=COLUMN"):
        score_windows(score, norm, FeatureSpec(("pressure",), 60.0, 2, 1), rec)


def test_the_backblaze_rule_flags_windows_with_a_reading_above_zero() -> None:
    frame = pd.DataFrame({
        "device_id": ["a"] * 4, "event_time": [0.0, 10.0, 20.0, 30.0],
        "smart_5_raw": [0.0, 0.0, 3.0, 0.0], "smart_197_raw": [0.0, np.nan, 0.0, 8.0],
    })  # fmt: skip
    rec = Recording("disks", frame, {}, "0" * 64, events=EventLog.build([]))
    rule = RULES["backblaze-smart-5-197"]
    assert applicable_rules(["smart_5_raw", "smart_197_raw", "x"]) == [rule]
    assert applicable_rules(["smart_5_raw"]) == []
    spec = FeatureSpec(("smart_5_raw",), 10.0, 2, 1, statistics=("mean",))
    scored = score_windows(lambda x: np.zeros(len(x)), NormStats((0.0,), (1.0,)), spec, rec)
    assert rule_risk(rule, rec, scored, spec).tolist() == [0.0, 1.0, 1.0]


def test_heavy_tailed_counters_are_read_on_a_log_scale() -> None:
    rec = fleet()
    rng = np.random.default_rng(5)
    frame = rec.readings.assign(sectors=np.where(rng.random(len(rec.readings)) < 0.02,
                                                 rng.integers(1, 5000, len(rec.readings)), 0))  # fmt: skip
    rec = Recording(rec.name, frame, {}, rec.data_sha256, events=rec.events)
    plan = plan_training(rec)
    assert plan.spec.transforms == (("sectors", "log1p"),)
    assert "sectors" in plan.choices["log_scale"]["reason"]
    assert plan_training(rec, FleetOptions(log_scale="none")).spec.transforms == ()
    chosen = plan_training(rec, FleetOptions(log_scale=("temp",))).spec.transforms
    assert chosen == (("temp", "log1p"),)
    with pytest.raises(DataError, match="--log-scale names vib"):
        plan_training(rec, FleetOptions(log_scale=("vib",)))

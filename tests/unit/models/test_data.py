"""Loaders, windows and labels: C-MAPSS FD001 (read in place) and simulator Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.data import (
    check_trainable,
    cmapss_spec,
    load_cmapss,
    load_data,
    load_sim_recording,
    make_sequences,
    window_features,
)
from models.errors import DataError
from models.features import FeatureSpec


def test_cmapss_spec_is_50_cycles_horizon_30() -> None:
    spec = cmapss_spec()
    cycle = 600.0
    assert spec.window_seconds == 5 * cycle and spec.sequence_length == 10
    assert spec.sequence_length * spec.window_seconds == 50 * cycle
    assert spec.horizon_seconds == 30 * cycle
    assert "s1" not in spec.sensors and "s6" not in spec.sensors and len(spec.sensors) == 15
    assert spec.sensors[-1] == "cycle"  # the engine's age, as the published LSTM reads it
    with pytest.raises(DataError, match="multiple"):
        cmapss_spec(horizon_cycles=31)


def test_cmapss_train_loader(cmapss_dir: Path) -> None:
    rec = load_cmapss(cmapss_dir, cycle_seconds=60.0, base_time=1000.0)
    r = rec.readings
    assert len(r) == 20631 and len(rec.devices) == 100 and rec.devices[0] == "FD001-001"
    first = r.iloc[0]
    assert first["event_time"] == 1000.0 + 60.0 and first["seq"] == 1 and first["s2"] == 641.82
    # A training engine fails at its last cycle.
    last = r[r["device_id"] == "FD001-001"]["event_time"].max()
    assert rec.failure_times["FD001-001"] == last
    assert len(rec.data_sha256) == 64


def test_cmapss_protocol_93_engines_25_positive(cmapss_dir: Path) -> None:
    spec = cmapss_spec()
    test = load_cmapss(cmapss_dir, split="test")
    windows = window_features(test, spec, align_end=True)
    last = make_sequences(windows, spec, test.failure_times, last_only=True,
                          min_history_seconds=49 * 600.0)  # fmt: skip
    assert len(last) == 93 and int(last.y.sum()) == 25
    rul = np.loadtxt(cmapss_dir / "RUL_FD001.txt")
    assert last.rul_seconds[0] / 600 == rul[int(last.device[0][-3:]) - 1]
    # The last window holds exactly the engine's last 5 cycles.
    assert not np.isnan(last.x[:, -1, :]).any()


def test_labels_are_fails_within_horizon() -> None:
    spec = FeatureSpec(sensors=("a",), window_seconds=10, sequence_length=2, horizon_windows=3)
    t = np.arange(0, 100, 1.0)
    frame = pd.DataFrame({"device_id": "d1", "event_time": t, "a": t})
    from models.data import Recording

    rec = Recording("test", frame, {"d1": 99.0}, "0" * 64)
    seqs = make_sequences(window_features(rec, spec), spec, rec.failure_times)
    # Windows end at t = 9, 19, ..., 99; sequences need 2 windows: ends 19..99.
    assert seqs.t_end.tolist() == [19.0, 29.0, 39.0, 49.0, 59.0, 69.0, 79.0, 89.0, 99.0]
    assert seqs.y.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]  # 99 - t_end <= 30, inclusive
    assert seqs.x.shape == (9, 2, 6)
    assert seqs.x[0, 1, 0] == pytest.approx(14.5)  # mean of 10..19


def test_censored_device_labelled_only_where_known() -> None:
    spec = FeatureSpec(sensors=("a",), window_seconds=10, sequence_length=1, horizon_windows=2)
    frame = pd.DataFrame({"device_id": "d", "event_time": np.arange(50.0), "a": 1.0})
    from models.data import Recording

    seqs = make_sequences(window_features(Recording("t", frame, {}, ""), spec), spec, {})
    # Seen until t=49: windows ending 9, 19, 29 survived 20 s more; 39, 49 unknown.
    assert seqs.t_end.tolist() == [9.0, 19.0, 29.0] and seqs.y.tolist() == [0, 0, 0]


def test_gaps_become_missing_windows() -> None:
    spec = FeatureSpec(sensors=("a",), window_seconds=10, sequence_length=3, horizon_windows=1)
    t = np.array([0.0, 1.0, 25.0, 31.0])  # window 1 (10..20) is empty
    frame = pd.DataFrame({"device_id": "d", "event_time": t, "a": [1.0, 2.0, 3.0, 4.0]})
    from models.data import Recording

    seqs = make_sequences(window_features(Recording("t", frame, {"d": 31.0}, ""), spec), spec,
                          {"d": 31.0})  # fmt: skip
    # Sequences end at windows 2 and 3; window 1 is missing in both.
    assert seqs.t_end.tolist() == [25.0, 31.0]
    assert np.isnan(seqs.x[0, 1]).all() and np.isnan(seqs.x[1, 0]).all()
    assert (seqs.x[0, 0, 0], seqs.x[1, 2, 0]) == (1.5, 4.0)


def _write_sim(folder: Path, failures: bool) -> None:
    rows = []
    for d in range(6):
        for i in range(40):
            rows.append({"device_id": f"dev-{d}", "event_time": pd.Timestamp("2025-01-01", tz="UTC")
                         + pd.Timedelta(seconds=60 * i), "seq": i, "temp": 20.0 + i * (d % 2),
                         "vib": float(d)})  # fmt: skip
    pd.DataFrame(rows).to_parquet(folder / "readings.parquet")
    if failures:
        end = pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(seconds=60 * 39)
        pd.DataFrame({"device_id": ["dev-1", "dev-3"], "failure_time": [end, end]}).to_parquet(
            folder / "failures.parquet"
        )


def test_sim_recording_loader(tmp_path: Path) -> None:
    _write_sim(tmp_path, failures=True)
    rec = load_data(f"sim:{tmp_path}")
    assert rec.sensors == ("temp", "vib") and len(rec.devices) == 6
    assert rec.readings["event_time"].iloc[1] - rec.readings["event_time"].iloc[0] == 60.0
    assert set(rec.failure_times) == {"dev-1", "dev-3"} and rec.step_seconds == 60.0
    spec = FeatureSpec(
        sensors=rec.sensors, window_seconds=300, sequence_length=2, horizon_windows=2
    )
    seqs = make_sequences(window_features(rec, spec), spec, rec.failure_times)
    check_trainable(seqs, spec, rec.name)
    assert seqs.y.sum() > 0


def test_training_set_without_failures_refused(tmp_path: Path) -> None:
    _write_sim(tmp_path, failures=False)
    rec = load_sim_recording(tmp_path)
    spec = FeatureSpec(
        sensors=rec.sensors, window_seconds=300, sequence_length=2, horizon_windows=2
    )
    seqs = make_sequences(window_features(rec, spec), spec, rec.failure_times)
    with pytest.raises(DataError, match="no failures") as info:
        check_trainable(seqs, spec, rec.name)
    assert str(tmp_path) in str(info.value)


def test_bad_inputs_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_cmapss(tmp_path)
    (tmp_path / "train_FD001.txt").write_text("1 2 3\n")
    with pytest.raises(DataError, match="26"):
        load_cmapss(tmp_path)
    (tmp_path / "readings.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"readings\.parquet"):
        load_sim_recording(tmp_path)
    with pytest.raises(DataError, match="cmapss:DIR"):
        load_data("csv:/tmp/x")
    frame = pd.DataFrame({"device_id": ["d"], "event_time": [0.0], "a": [1.0]})
    from models.data import Recording

    spec = FeatureSpec(sensors=("zz",), window_seconds=1, sequence_length=1, horizon_windows=1)
    with pytest.raises(DataError, match="zz"):
        window_features(Recording("t", frame, {}, ""), spec)

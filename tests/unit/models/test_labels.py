"""Labels from an event log: repeated failures, maintenance, censoring; the stream's sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.data import Recording, window_features
from models.features import FeatureSpec
from models.labels import (
    EventLog,
    flag_failures,
    label_times,
    labelled_sequences,
    runs,
    stream_sequences,
)

H = 10.0


def test_each_failure_ends_a_run_and_labels_the_times_before_it() -> None:
    log = EventLog.build([("d", 100.0), ("d", 200.0)])
    t = [85.0, 89.0, 90.0, 95.0, 100.0, 101.0, 150.0, 190.0, 199.0]
    y, rul = label_times(log, "d", t, horizon=H, seen=400.0)
    # 85, 89: more than H before the first failure; 90..100: within it (at the failure: 0 left).
    # 101: the second run starts after the repair; 190, 199: within H of the second failure.
    assert y.tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 1]
    assert rul.tolist() == [15.0, 11.0, 10.0, 5.0, 0.0, 99.0, 50.0, 10.0, 1.0]


def test_maintenance_renews_by_default_and_censors_the_horizon_before_it() -> None:
    log = EventLog.build([("d", 100.0)], [("d", 50.0)])
    y, rul = label_times(log, "d", [30.0, 45.0, 49.0, 60.0, 95.0], horizon=H, seen=200.0)
    # 30: the maintenance at 50 comes 20 later, seen working through H: 0. 45, 49: the run
    # ends at 50, before H is seen: unknown. After it, the new run fails at 100.
    assert y.tolist() == [0, -1, -1, 0, 1]
    assert np.isinf(rul[:3]).all() and rul[3:].tolist() == [40.0, 5.0]


def test_maintenance_that_does_not_renew_is_only_recorded() -> None:
    log = EventLog.build([("d", 100.0)], [("d", 50.0)], maintenance_renews=False)
    y, _ = label_times(log, "d", [45.0, 49.0, 95.0], horizon=H, seen=200.0)
    assert y.tolist() == [0, 0, 1]
    assert log.renewals("d") == ((100.0, "failure"),)


def test_devices_that_never_fail_are_right_censored() -> None:
    log = EventLog.build([("other", 10.0)])
    y, rul = label_times(log, "healthy", [0.0, 89.0, 90.0, 95.0], horizon=H, seen=100.0)
    # No positive is invented; no negative is claimed within H of the end of the data.
    assert y.tolist() == [0, 0, 0, -1] and np.isinf(rul).all()
    y2, _ = label_times(log, "healthy", [], horizon=H, seen=100.0)
    assert y2.size == 0


def test_the_end_of_every_devices_data_is_censored_after_its_last_failure() -> None:
    log = EventLog.build([("d", 100.0)])
    y, _ = label_times(log, "d", [150.0, 195.0], horizon=H, seen=200.0)
    assert y.tolist() == [0, -1]


def test_runs_start_at_the_first_reading_and_after_each_renewal() -> None:
    log = EventLog.build([("a", 5.0), ("a", 50.0), ("a", 120.0)], [("a", 80.0)])
    got = runs({"a": (10.0, 100.0), "b": (0.0, 30.0)}, log)
    assert [(r.device, r.start, r.end, r.reason) for r in got] == [
        ("a", 10.0, 50.0, "failure"),  # the failure at 5, before the data, starts no run
        ("a", 50.0, 80.0, "maintenance"),
        ("a", 80.0, 120.0, "failure"),  # fails after its last reading: not observed to the end
        ("b", 0.0, 30.0, "censored"),
    ]


def test_a_flag_column_gives_one_failure_per_flagged_stretch() -> None:
    devices = ["a", "a", "a", "a", "a", "b", "b"]
    times = [1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0]
    flags = [False, True, True, False, True, True, False]
    assert flag_failures(devices, times, flags) == [("a", 2.0), ("a", 5.0), ("b", 1.0)]


def _recording(times: list[float], values: list[float]) -> Recording:
    frame = pd.DataFrame({"device_id": "d", "event_time": times, "v": values})
    return Recording("test", frame, {}, "0" * 64)


def test_stream_sequences_skip_empty_windows_as_the_stream_job_does() -> None:
    spec = FeatureSpec(("v",), window_seconds=10.0, sequence_length=3, horizon_windows=1,
                       statistics=("mean",))  # fmt: skip
    # Windows 0, 1, 2, then silence, then 6 and 7: the sequence at 6 is windows (1, 2, 6).
    rec = _recording([1.0, 11.0, 21.0, 61.0, 71.0], [0.0, 1.0, 2.0, 6.0, 7.0])
    windows = window_features(rec, spec)
    seqs = stream_sequences(windows, spec, 0.0)
    assert seqs.index.tolist() == [2, 6, 7]
    assert seqs.x[:, :, 0].tolist() == [[0.0, 1.0, 2.0], [1.0, 2.0, 6.0], [2.0, 6.0, 7.0]]
    assert seqs.window_end.tolist() == [30.0, 70.0, 80.0]
    assert seqs.t_end.tolist() == [21.0, 61.0, 71.0]


def test_labelled_sequences_keep_only_known_labels() -> None:
    spec = FeatureSpec(("v",), window_seconds=10.0, sequence_length=2, horizon_windows=2,
                       statistics=("mean",))  # fmt: skip
    rec = _recording([float(t) for t in range(0, 100, 5)], [float(t) for t in range(20)])
    log = EventLog.build([("d", 50.0)])
    seqs = labelled_sequences(window_features(rec, spec), spec, log, {"d": 95.0}, 0.0)
    # Scoring times 5, 15, ..., 95; H = 20 s; the last (95) is within H of the data's end.
    assert seqs.t_end.tolist() == [15.0, 25.0, 35.0, 45.0, 55.0, 65.0, 75.0]
    assert seqs.y.tolist() == [0, 0, 1, 1, 0, 0, 0]


def test_event_log_build_sorts_and_counts() -> None:
    log = EventLog.build([("b", 3.0), ("a", 2.0), ("a", 1.0), ("a", 1.0)], [("c", 5.0)])
    assert log.failures == {"a": (1.0, 2.0), "b": (3.0,)} and log.n_failures == 3
    assert log.devices == {"a", "b", "c"}
    assert log.restrict(["a"]).failures == {"a": (1.0, 2.0)}
    assert log.to_dict() == {"failures": 3, "devices_failed": 2, "maintenance": 1,
                             "maintenance_renews": True}  # fmt: skip


@pytest.mark.parametrize("renews", [True, False])
def test_a_failure_and_a_maintenance_at_the_same_time_sort_the_failure_first(renews: bool) -> None:
    log = EventLog.build([("d", 10.0)], [("d", 10.0)], maintenance_renews=renews)
    assert log.renewals("d")[0] == (10.0, "failure")

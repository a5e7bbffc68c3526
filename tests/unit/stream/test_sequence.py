"""The per-device window operator's logic, with an in-memory GroupState double.

The operator runs inside Spark under ``applyInPandasWithState``; here it is called the way
Spark calls it (one device, an iterator of frames, a state object) so window closing,
duplicates, late readings, timeouts and the sequences can be checked exactly against the
numpy feature definition. The Spark run itself is tested in
``tests/integration/test_stream_consistency.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.features import (
    FeatureSpec,
    NormStats,
    RegimeNorm,
    compute_window_features,
    normalise,
    normalise_readings,
)
from stream.sequence import LAST_WINDOW_DTYPE, PACKED_DEAD_LETTER, SEQUENCE_DTYPE, DeviceWindows

SPEC = FeatureSpec(sensors=("a", "b"), window_seconds=60.0, sequence_length=2, horizon_windows=1)
MIN = 60_000


def _norm(spec: FeatureSpec, regimes: RegimeNorm | None = None) -> NormStats:
    """Mean 1, scale 2 for every feature, clipped far out: the sequences stay readable."""
    n = spec.n_features
    return NormStats((1.0,) * n, (2.0,) * n, clip=1e6, regimes=regimes)


NORM = _norm(SPEC)


def _seq(vectors: list[np.ndarray], norm: NormStats = NORM) -> np.ndarray:
    """What the operator emits for these raw window vectors (oldest first)."""
    return normalise(np.stack(vectors), norm).reshape(-1)


class FakeState:
    """What ``applyInPandasWithState`` hands the function: the subset the operator uses."""

    def __init__(self) -> None:
        self.value: tuple[Any, ...] | None = None
        self.watermark = 0
        self.timeout: int | None = None

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> tuple[Any, ...]:
        assert self.value is not None
        return self.value

    def update(self, value: tuple[Any, ...]) -> None:
        self.value = tuple(value)

    def getCurrentWatermarkMs(self) -> int:
        return self.watermark

    def setTimeoutTimestamp(self, ms: int) -> None:
        assert ms >= self.watermark, "Spark refuses a timeout behind the watermark"
        self.timeout = ms


def _frame(
    rows: list[tuple[int, int, list[float | None] | None]],
    settings: list[list[float]] | None = None,
) -> pd.DataFrame:
    """Rows of (event ms, seq, sensor values) as Spark sends them: ``values`` one array of
    the event ms, the sensors' values (None -> NaN, as pyarrow converts a null element) and
    the settings, if any."""

    def values(ms: int, sensors: list[float | None], extra: list[float]) -> np.ndarray:
        row = [float(ms), *(np.nan if v is None else v for v in sensors), *extra]
        return np.array(row, dtype=np.float64)

    return pd.DataFrame(
        {
            "device_id": ["d"] * len(rows),
            "event_time": pd.to_datetime([ms for ms, _, _ in rows], unit="ms"),
            "seq": [seq for _, seq, _ in rows],
            "values": [
                values(ms, v if v is not None else [None] * len(SPEC.sensors), extra)
                for (ms, _, v), extra in zip(rows, settings or [[]] * len(rows), strict=True)
            ],
            PACKED_DEAD_LETTER: [None] * len(rows),
        }
    )


def _call(op: DeviceWindows, state: FakeState, rows: list[Any]) -> pd.DataFrame:
    """The operator's output for one call, its packed columns unpacked (see _unpacked)."""
    frames = [_frame(rows)] if rows else []
    out = list(op(("d",), iter(frames), state))
    return _unpacked(pd.concat(out, ignore_index=True), op) if out else pd.DataFrame()


def _unpacked(out: pd.DataFrame, op: DeviceWindows) -> pd.DataFrame:
    """``sequence`` and ``last_window`` as numpy arrays, after checking that each window's
    are bytes of K x F and F values of their packed dtypes."""
    k, f = op.k, op.f
    for name, dtype, width in (
        ("sequence", SEQUENCE_DTYPE, k * f),
        ("last_window", LAST_WINDOW_DTYPE, f),
    ):
        packed = list(out[name])
        for b in packed:
            assert b is None or (isinstance(b, bytes) and len(b) == width * dtype.itemsize), name
        out[name] = [None if b is None else np.frombuffer(b, dtype) for b in packed]
    return out


def _features(rows: list[tuple[int, int, list[float | None]]]) -> np.ndarray:
    times = [ms / 1000.0 for ms, _, _ in rows]
    values = [[np.nan if x is None else x for x in v] for _, _, v in rows]
    return compute_window_features(SPEC, times, values)


def test_windows_close_at_the_watermark_and_emit_k_window_sequences() -> None:
    op, state = DeviceWindows(SPEC, NORM), FakeState()
    w0 = [(0, 1, [1.0, 10.0]), (20_000, 2, [2.0, 11.0]), (50_000, 3, [4.0, 9.0])]
    w1 = [(MIN + 5_000, 4, [3.0, 12.0]), (MIN + 40_000, 5, [5.0, None])]
    w2 = [(2 * MIN + 1_000, 6, [6.0, 13.0])]
    assert _call(op, state, w0 + w1 + w2).empty  # watermark 0: nothing closes
    assert state.timeout == MIN - 1  # called back once the watermark passes window 0
    state.watermark = MIN  # window 0 ends at 60 s: closed, but K=2 windows not there yet
    assert _call(op, state, []).empty
    assert state.timeout == 2 * MIN - 1
    state.watermark = 2 * MIN
    out = _call(op, state, [])
    assert list(out["window_start_ms"]) == [MIN] and list(out["window_end_ms"]) == [2 * MIN]
    assert list(out["n_readings"]) == [2]
    np.testing.assert_array_equal(out["sequence"][0], _seq([_features(w0), _features(w1)]))
    assert out["sequence"][0].dtype == np.float32
    np.testing.assert_array_equal(out["last_window"][0], _features(w1))
    # b's value is missing in the last reading of window 1: "last" skips it.
    assert out["last_window"][0][SPEC.feature_names.index("b__last")] == 12.0


def test_several_windows_closing_in_one_call_each_emit_a_sequence() -> None:
    spec = FeatureSpec(sensors=("a",), window_seconds=60.0, sequence_length=3, horizon_windows=1)
    norm = _norm(spec)
    op, state = DeviceWindows(spec, norm), FakeState()
    rows = [(i * 30_000, i, [float(i * i)]) for i in range(12)]  # 6 windows, 2 readings each
    state.watermark = 5 * MIN
    out = _call(op, state, rows)
    assert list(out["window_end_ms"]) == [3 * MIN, 4 * MIN, 5 * MIN]
    vectors = [
        compute_window_features(
            spec,
            [r[0] / 1000 for r in rows[2 * j : 2 * j + 2]],
            [r[2] for r in rows[2 * j : 2 * j + 2]],
        )
        for j in range(5)
    ]
    for i, end in enumerate([3, 4, 5]):
        np.testing.assert_array_equal(out["sequence"][i], _seq(vectors[end - 3 : end], norm))
        np.testing.assert_array_equal(out["last_window"][i], vectors[end - 1])
    assert state.timeout == 6 * MIN - 1  # the sixth window is still open


def test_duplicates_are_dropped_within_a_batch_and_across_batches() -> None:
    clean_op, clean = DeviceWindows(SPEC, NORM), FakeState()
    dup_op, dup = DeviceWindows(SPEC, NORM), FakeState()
    rows = [(i * 20_000, i, [float(i), float(10 - i)]) for i in range(9)]  # 3 windows
    _call(clean_op, clean, rows[:5])
    _call(clean_op, clean, rows[5:])
    _call(dup_op, dup, rows[:5] + rows[2:4])  # twice in one batch
    _call(dup_op, dup, rows[3:])  # seq 3 and 4 again in the next batch
    clean.watermark = dup.watermark = 3 * MIN
    a, b = _call(clean_op, clean, []), _call(dup_op, dup, [])
    assert len(a) == 2
    pd.testing.assert_frame_equal(a, b)


def test_a_reading_for_a_closed_window_is_dropped() -> None:
    op, state = DeviceWindows(SPEC, NORM), FakeState()
    _call(op, state, [(0, 1, [1.0, 1.0]), (MIN, 2, [2.0, 2.0]), (2 * MIN, 3, [3.0, 3.0])])
    state.watermark = 2 * MIN
    first = _call(op, state, [])
    assert list(first["window_end_ms"]) == [2 * MIN]
    state.watermark = 3 * MIN
    # seq 9 belongs to window 0, closed long ago: it must not reopen or change anything.
    out = _call(op, state, [(10_000, 9, [100.0, 100.0])])
    np.testing.assert_array_equal(
        out["sequence"][0],
        _seq([_features([(MIN, 2, [2.0, 2.0])]), _features([(2 * MIN, 3, [3.0, 3.0])])]),
    )


def test_a_reading_without_the_models_sensors_counts_as_missing_values() -> None:
    op, state = DeviceWindows(SPEC, NORM), FakeState()
    rows = [(0, 1, None), (MIN, 2, [1.0, 2.0]), (2 * MIN, 3, [1.0, 2.0])]
    state.watermark = 2 * MIN
    out = _call(op, state, rows)
    # No statistic in window 0: normalised to 0, the training mean (never NaN to the model).
    assert (out["sequence"][0][: SPEC.n_features] == 0.0).all()
    assert out["n_readings"][0] == 1


def test_regimes_standardise_each_reading_before_windowing() -> None:
    regimes = RegimeNorm(
        settings=("o1",),
        centroids=((0.0,), (10.0,)),
        mean=((1.0, 2.0), (100.0, 200.0)),
        scale=((1.0, 1.0), (10.0, 20.0)),
    )
    norm = _norm(SPEC, regimes)
    op, state = DeviceWindows(SPEC, norm), FakeState()
    rows = [
        (0, 1, [2.0, 3.0]),
        (30_000, 2, [110.0, 240.0]),
        (MIN, 3, [1.0, 2.0]),
        (2 * MIN, 4, [1.0, 1.0]),
    ]
    frame = _frame(rows, settings=[[0.1], [9.0], [0.0], [0.0]])
    state.watermark = 2 * MIN
    out = _unpacked(next(iter(op(("d",), iter([frame]), state))), op)
    z = normalise_readings([r[2] for r in rows], [[0.1], [9.0], [0.0], [0.0]], regimes)
    expected = _seq(
        [
            compute_window_features(SPEC, [0.0, 30.0], z[:2]),
            compute_window_features(SPEC, [60.0], z[2:3]),
        ],
        norm,
    )
    np.testing.assert_allclose(out["sequence"][0], expected)


def test_state_round_trips_through_bytes_without_loss() -> None:
    op, state = DeviceWindows(SPEC, NORM), FakeState()
    _call(op, state, [(0, 1, [0.1, 1 / 3]), (MIN, 2, [np.pi, None])])
    assert all(isinstance(v, bytes) for v in state.get[1:])
    state.watermark = 2 * MIN
    out = _call(op, state, [(2 * MIN, 3, [1.0, 1.0])])
    np.testing.assert_array_equal(
        out["sequence"][0],
        _seq([_features([(0, 1, [0.1, 1 / 3])]), _features([(MIN, 2, [np.pi, None])])]),
    )
    np.testing.assert_array_equal(out["last_window"][0], _features([(MIN, 2, [np.pi, None])]))


@pytest.mark.parametrize("origin", [0.0, 15.0])
def test_windows_align_with_the_spec_origin(origin: float) -> None:
    spec = FeatureSpec(
        sensors=("a",),
        window_seconds=60.0,
        sequence_length=1,
        horizon_windows=1,
        origin_seconds=origin,
    )
    op = DeviceWindows(spec, _norm(spec))
    ms = np.array([0, 14_999, 15_000, 74_999, 75_000])
    expected = spec.window_index(ms / 1000.0) * 60_000 + int(origin * 1000) + 60_000
    np.testing.assert_array_equal(op.window_end_ms(ms), expected)


def test_a_window_closes_once_the_devices_own_readings_pass_it_by_the_delay() -> None:
    # The job passes the watermark's delay: a window closes in the batch where the device's
    # newest reading is past its end by that delay (Spark's watermark, the maximum over all
    # devices, gets there at the end of the batch), with the sequences of the slower rule.
    early_op, early = DeviceWindows(SPEC, NORM, lateness_ms=MIN), FakeState()
    late_op, late = DeviceWindows(SPEC, NORM), FakeState()
    w0 = [(0, 1, [1.0, 10.0]), (50_000, 2, [4.0, 9.0])]
    w1 = [(MIN + 5_000, 3, [3.0, 12.0]), (MIN + 40_000, 4, [5.0, 8.0])]
    w2 = [(2 * MIN + 1_000, 5, [6.0, 13.0])]
    w3 = [(3 * MIN, 6, [7.0, 14.0])]
    assert _call(early_op, early, w0 + w1 + w2).empty  # window 0 closed (K=2: no sequence)
    assert _call(late_op, late, w0 + w1 + w2).empty
    assert early.timeout == 2 * MIN - 1 and late.timeout == MIN - 1
    out = _call(early_op, early, w3)  # newest reading 3 min: window 1 (ends 2 min) closes
    assert list(out["window_end_ms"]) == [2 * MIN]
    assert early.timeout == 3 * MIN - 1  # window 2 stays open: 3 min - 1 min < its end
    # the slower rule: the same sequence, once Spark's watermark reaches 2 min
    assert _call(late_op, late, w3).empty
    late.watermark = 2 * MIN
    slow = _call(late_op, late, [])
    np.testing.assert_array_equal(out["sequence"][0], slow["sequence"][0])
    np.testing.assert_array_equal(out["sequence"][0], _seq([_features(w0), _features(w1)]))
    np.testing.assert_array_equal(out["last_window"][0], slow["last_window"][0])


def test_dead_letters_are_emitted_as_they_came_and_keep_no_state() -> None:
    from stream.sequence import DEAD_LETTER_KEY, PACKED_DEAD_LETTER, output_schema

    op, state = DeviceWindows(SPEC, NORM), FakeState()
    n = 3
    frame = pd.DataFrame(
        {
            "device_id": [DEAD_LETTER_KEY] * n,
            "event_time": [None] * n,
            "seq": [None] * n,
            "values": [None] * n,
            PACKED_DEAD_LETTER: [
                f'{{"rule": "json", "source": "kafka:t/0@{i}"}}' for i in range(n)
            ],
        }
    )
    state.watermark = 10 * MIN
    out = pd.concat(list(op((DEAD_LETTER_KEY,), iter([frame, frame.iloc[:0]]), state)))
    assert list(out.columns) == output_schema().fieldNames()
    assert list(out[PACKED_DEAD_LETTER]) == list(frame[PACKED_DEAD_LETTER])
    assert out["window_end_ms"].isna().all() and out["sequence"].isna().all()
    assert not state.exists and state.timeout is None


def test_a_window_row_has_a_null_dead_letter() -> None:
    from stream.sequence import PACKED_DEAD_LETTER, output_schema

    op, state = DeviceWindows(SPEC, NORM), FakeState()
    state.watermark = 3 * MIN
    rows = [(i * 30_000, i, [float(i), 1.0]) for i in range(6)]
    out = _call(op, state, rows)
    assert len(out) == 2 and list(out.columns) == output_schema().fieldNames()
    assert out[PACKED_DEAD_LETTER].isna().all()

"""The window operator's logic, with an in-memory double of its state handle.

The operator runs inside Spark under ``transformWithStateInPandas``; here it is called the
way Spark calls it (one bucket, an iterator of frames, its map state and timers) so window closing,
duplicates, late readings, timeouts and the sequences can be checked exactly against the
numpy feature definition. The Spark run itself is tested in
``tests/integration/test_stream_consistency.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
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
from stream.sequence import (
    BUCKET_KEYS,
    LAST_WINDOW_DTYPE,
    PACKED_DEAD_LETTER,
    SEQUENCE_DTYPE,
    STATE_BUCKETS,
    STATE_LAYOUT,
    STATE_SLICES,
    DeviceWindows,
    FleetWindows,
    bucket_of,
    slice_of,
    unpack_slice,
)

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


class FakeDues:
    """The processor's ``dues`` value state, kept in its :class:`FakeState`."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def get(self) -> tuple[list[int | None], int | None] | None:
        return self.state.dues

    def update(self, value: tuple[list[int | None], int | None]) -> None:
        dues, ttl_ms = value
        assert len(dues) == STATE_SLICES and all(d is None or isinstance(d, int) for d in dues)
        assert ttl_ms is None or isinstance(ttl_ms, int)
        self.state.dues = (list(dues), ttl_ms)

    def clear(self) -> None:
        self.state.dues = None


class FakeState:
    """What ``transformWithStateInPandas`` hands the processor for one bucket: its map state
    (slice -> packed states), its timers and the batch's watermark (the handle, the map and
    the timer values in one); ``devices`` unpacks every slice, and ``exists``, ``get`` and
    ``timeout`` look at device ``d``'s state and the bucket's timer."""

    def __init__(self) -> None:
        self.map: dict[tuple[int], tuple[str]] = {}
        self.timers: set[int] = set()
        self.watermark = 0
        self.calls = 0  # calls on the map of slices
        self.reads: list[int] = []  # the slices read, in order
        self.dues: tuple[list[int | None], int | None] | None = None  # the "dues" state

    def getMapState(self, name: str, key_schema: Any, value_schema: Any) -> FakeState:
        assert name == "slices" and key_schema.fieldNames() == ["slice"]
        # Text: Spark's state server hands a binary value to Python one character at a time.
        assert value_schema.simpleString() == "struct<states:string>", value_schema
        return self

    def getValue(self, key: tuple[int]) -> tuple[str] | None:
        self.calls += 1
        self.reads.append(key[0])
        return self.map.get(key)

    def getValueState(self, name: str, schema: Any) -> FakeDues:
        assert name == "dues"
        assert schema.simpleString() == "struct<due_ms:array<bigint>,ttl_ms:bigint>"
        return FakeDues(self)

    def updateValue(self, key: tuple[int], value: tuple[str]) -> None:
        self.calls += 1
        assert 0 <= key[0] < STATE_SLICES, key
        assert isinstance(value[0], str) and value[0].isascii(), value  # the text's fast path
        self.map[key] = tuple(value)

    def removeKey(self, key: tuple[int]) -> None:
        self.calls += 1
        del self.map[key]

    @property
    def devices(self) -> dict[tuple[str], tuple[Any, ...]]:
        """Every device's state, by ``(device,)``, from the packed slices (each device in
        the slice :func:`slice_of` gives it, and only there)."""
        out: dict[tuple[str], tuple[Any, ...]] = {}
        for (part,), (packed,) in self.map.items():
            for device, state in unpack_slice(packed).items():
                assert slice_of(device) == part and (device,) not in out, device
                assert all(isinstance(v, (bytes, int, type(None))) for v in state), state
                out[(device,)] = state
        return out

    def listTimers(self) -> Any:
        return iter(sorted(self.timers))

    def registerTimer(self, ms: int) -> None:
        assert ms > self.watermark, "a timer behind the watermark would fire at once"
        self.timers.add(ms)

    def deleteTimer(self, ms: int) -> None:
        self.timers.remove(ms)

    def getCurrentWatermarkInMs(self) -> int:
        return self.watermark

    def fire(self, op: FleetWindows) -> list[pd.DataFrame]:
        """Spark's timer step: each timer the watermark reached fires once."""
        out: list[pd.DataFrame] = []
        for ms in sorted(t for t in self.timers if t <= self.watermark):
            self.timers.remove(ms)
            out += list(op.handleExpiredTimer((0,), self, None))
        return out

    @property
    def exists(self) -> bool:
        return ("d",) in self.devices

    @property
    def get(self) -> tuple[Any, ...]:
        return self.devices[("d",)]

    @property
    def timeout(self) -> int | None:
        return min(self.timers) if self.timers else None


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


def _call(op: FleetWindows, state: FakeState, rows: list[Any]) -> pd.DataFrame:
    """The operator's output for one batch of device ``d``'s readings (no readings: the
    timers the watermark reached), its packed columns unpacked (see _unpacked)."""
    op.init(state)
    out = list(op.handleInputRows((0,), iter([_frame(rows)]), state)) if rows else state.fire(op)
    return _unpacked(pd.concat(out, ignore_index=True), op) if out else pd.DataFrame()


def _unpacked(out: pd.DataFrame, op: FleetWindows) -> pd.DataFrame:
    """``sequence`` and ``last_window`` as numpy arrays, after checking that each window's
    are bytes of K x F and F values of their packed dtypes."""
    k, f = op.windows.k, op.windows.f
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
    op, state = FleetWindows(SPEC, NORM), FakeState()
    w0 = [(0, 1, [1.0, 10.0]), (20_000, 2, [2.0, 11.0]), (50_000, 3, [4.0, 9.0])]
    w1 = [(MIN + 5_000, 4, [3.0, 12.0]), (MIN + 40_000, 5, [5.0, None])]
    w2 = [(2 * MIN + 1_000, 6, [6.0, 13.0])]
    assert _call(op, state, w0 + w1 + w2).empty  # watermark 0: nothing closes
    assert state.timeout == MIN  # called back once the watermark reaches window 0's end
    state.watermark = MIN  # window 0 ends at 60 s: closed, but K=2 windows not there yet
    assert _call(op, state, []).empty
    assert state.timeout == 2 * MIN
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
    op, state = FleetWindows(spec, norm), FakeState()
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
    assert state.timeout == 6 * MIN  # the sixth window is still open


def test_the_state_keeps_k_minus_1_normalised_windows_and_splitting_batches_changes_nothing() -> (
    None
):
    k = 5
    spec = FeatureSpec(sensors=("a",), window_seconds=60.0, sequence_length=k, horizon_windows=1)
    norm = _norm(spec)
    rows = [(i * 30_000, i, [float(i * i) / 7]) for i in range(24)]  # 12 windows, 2 readings
    whole_op, whole = FleetWindows(spec, norm), FakeState()
    whole.watermark = 11 * MIN
    expected = _call(whole_op, whole, rows)
    assert list(expected["window_end_ms"]) == [m * MIN for m in range(k, 12)]
    split_op, split = FleetWindows(spec, norm), FakeState()
    outs, sizes = [], []
    for lo in range(0, 24, 2):  # a window a batch, the one before it closing
        split.watermark = lo // 2 * MIN
        outs.append(_call(split_op, split, rows[lo : lo + 2]))
        sizes.append(len(split.get[4]) // (spec.n_features * SEQUENCE_DTYPE.itemsize))
    split.watermark = 11 * MIN
    outs.append(_call(split_op, split, []))
    got = pd.concat([o for o in outs if not o.empty], ignore_index=True)
    assert list(got["window_end_ms"]) == list(expected["window_end_ms"])
    for name in ("sequence", "last_window"):
        for x, y in zip(got[name], expected[name], strict=True):
            np.testing.assert_array_equal(x, y)
    # What travels through the state server for each device: at most K - 1 windows, float32.
    assert sizes == [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4]
    kept = np.frombuffer(split.get[4], SEQUENCE_DTYPE).reshape(k - 1, -1)
    np.testing.assert_array_equal(kept, expected["sequence"].iloc[-1].reshape(k, -1)[1:])


def test_duplicates_are_dropped_within_a_batch_and_across_batches() -> None:
    clean_op, clean = FleetWindows(SPEC, NORM), FakeState()
    dup_op, dup = FleetWindows(SPEC, NORM), FakeState()
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
    op, state = FleetWindows(SPEC, NORM), FakeState()
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


def test_a_reading_at_a_closed_windows_end_is_kept_and_one_before_it_is_late() -> None:
    op = DeviceWindows(SPEC, NORM)
    one = np.array([[1.0, 1.0]])
    state, _ = op.advance(None, np.array([0]), np.array([1]), one, watermark=0)
    state, closed = op.advance(
        state, np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 2)), watermark=MIN
    )
    assert closed is None and state[0] == MIN  # window [0, MIN) closed (K = 2: no sequence)
    # MIN - 1 is late; MIN opens the next window (kept); seq 8 comes twice (kept once);
    # seq 7 again after its late reading is a duplicate (the first of a seq decides).
    ms = np.array([MIN - 1, MIN, MIN + 5, MIN + 6, MIN + 7])
    seq = np.array([7, 9, 8, 8, 7])
    values = np.array([[9.0, 9.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0], [5.0, 5.0]])
    state, _ = op.advance(state, ms, seq, values, watermark=MIN)
    assert np.frombuffer(state[1], "<i8").tolist() == [MIN, MIN + 5]
    assert np.frombuffer(state[2], "<i8").tolist() == [9, 8]
    assert np.frombuffer(state[3], "<f8").tolist() == [2.0, 2.0, 3.0, 3.0]
    assert state[5] == 2 * MIN  # due when its oldest open window ends


def test_a_reading_without_the_models_sensors_counts_as_missing_values() -> None:
    op, state = FleetWindows(SPEC, NORM), FakeState()
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
    op, state = FleetWindows(SPEC, norm), FakeState()
    rows = [
        (0, 1, [2.0, 3.0]),
        (30_000, 2, [110.0, 240.0]),
        (MIN, 3, [1.0, 2.0]),
        (2 * MIN, 4, [1.0, 1.0]),
    ]
    frame = _frame(rows, settings=[[0.1], [9.0], [0.0], [0.0]])
    state.watermark = 2 * MIN
    op.init(state)
    out = _unpacked(next(iter(op.handleInputRows((0,), iter([frame]), state))), op)
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
    op, state = FleetWindows(SPEC, NORM), FakeState()
    _call(op, state, [(0, 1, [0.1, 1 / 3]), (MIN, 2, [np.pi, None])])
    assert all(isinstance(v, bytes) for v in state.get[1:5]) and state.get[5] == MIN
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
    early_op, early = FleetWindows(SPEC, NORM, lateness_ms=MIN), FakeState()
    late_op, late = FleetWindows(SPEC, NORM), FakeState()
    w0 = [(0, 1, [1.0, 10.0]), (50_000, 2, [4.0, 9.0])]
    w1 = [(MIN + 5_000, 3, [3.0, 12.0]), (MIN + 40_000, 4, [5.0, 8.0])]
    w2 = [(2 * MIN + 1_000, 5, [6.0, 13.0])]
    w3 = [(3 * MIN, 6, [7.0, 14.0])]
    assert _call(early_op, early, w0 + w1 + w2).empty  # window 0 closed (K=2: no sequence)
    assert _call(late_op, late, w0 + w1 + w2).empty
    assert early.timeout == 2 * MIN and late.timeout == MIN
    out = _call(early_op, early, w3)  # newest reading 3 min: window 1 (ends 2 min) closes
    assert list(out["window_end_ms"]) == [2 * MIN]
    # Window 2 stays open (3 min - 1 min < its end): the bucket's timer moves to its end at
    # once (the device's own reading closed window 1, so no sweep is left to find nothing).
    assert early.timeout == 3 * MIN
    early.watermark = 2 * MIN
    assert _call(early_op, early, []).empty and early.timeout == 3 * MIN
    # the slower rule: the same sequence, once Spark's watermark reaches 2 min
    assert _call(late_op, late, w3).empty
    late.watermark = 2 * MIN
    slow = _call(late_op, late, [])
    np.testing.assert_array_equal(out["sequence"][0], slow["sequence"][0])
    np.testing.assert_array_equal(out["sequence"][0], _seq([_features(w0), _features(w1)]))
    np.testing.assert_array_equal(out["last_window"][0], slow["last_window"][0])


def test_dead_letters_are_emitted_as_they_came_and_keep_no_state() -> None:
    from stream.sequence import (
        DEAD_LETTER_BUCKET,
        DEAD_LETTER_KEY,
        PACKED_DEAD_LETTER,
        output_schema,
    )

    op, state = FleetWindows(SPEC, NORM), FakeState()
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
    op.init(state)
    out = pd.concat(
        list(op.handleInputRows((DEAD_LETTER_BUCKET,), iter([frame, frame.iloc[:0]]), state))
    )
    assert list(out.columns) == output_schema().fieldNames()
    assert list(out[PACKED_DEAD_LETTER]) == list(frame[PACKED_DEAD_LETTER])
    assert out["window_end_ms"].isna().all() and out["sequence"].isna().all()
    assert not state.exists and state.timeout is None


def test_a_window_row_has_a_null_dead_letter() -> None:
    from stream.sequence import PACKED_DEAD_LETTER, output_schema

    op, state = FleetWindows(SPEC, NORM), FakeState()
    state.watermark = 3 * MIN
    rows = [(i * 30_000, i, [float(i), 1.0]) for i in range(6)]
    out = _call(op, state, rows)
    assert len(out) == 2 and list(out.columns) == output_schema().fieldNames()
    assert out[PACKED_DEAD_LETTER].isna().all()


def _device_frame(device: str, rows: list[tuple[int, int, list[float]]]) -> pd.DataFrame:
    frame = _frame(rows)
    frame["device_id"] = device
    return frame


def test_devices_of_one_bucket_each_keep_their_own_windows() -> None:
    # Readings of three devices arrive interleaved in one bucket's frames; each device's
    # sequences equal those of the device alone.
    op, state = FleetWindows(SPEC, NORM), FakeState()
    op.init(state)
    per_device = {
        name: [(i * 30_000, i, [float(i) * (j + 1), 2.0 - j]) for i in range(6)]
        for j, name in enumerate(["c", "a", "b"])
    }
    mixed = pd.concat(
        [_device_frame(name, [rows[i]]) for i in range(6) for name, rows in per_device.items()],
        ignore_index=True,
    )
    state.watermark = 3 * MIN
    out = pd.concat(list(op.handleInputRows((0,), iter([mixed.iloc[:7], mixed.iloc[7:]]), state)))
    out = _unpacked(out.reset_index(drop=True), op)
    assert sorted(out["device_id"]) == ["a", "a", "b", "b", "c", "c"]
    for name, rows in per_device.items():
        alone_op, alone = FleetWindows(SPEC, NORM), FakeState()
        alone.watermark = 3 * MIN
        expected = _call(alone_op, alone, rows)
        got = out[out["device_id"] == name].reset_index(drop=True)
        assert list(got["window_end_ms"]) == list(expected["window_end_ms"])
        for a, b in zip(got["sequence"], expected["sequence"], strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_silent_devices_windows_close_on_the_buckets_timer() -> None:
    # Device "d" stops reporting; the watermark (moved by other devices) passes its open
    # window: the timer's sweep closes it and emits the sequence without a new reading.
    op, state = FleetWindows(SPEC, NORM), FakeState()
    _call(op, state, [(0, 1, [1.0, 1.0]), (MIN, 2, [2.0, 2.0])])
    assert state.timeout == MIN
    state.watermark = 2 * MIN  # windows 0 and 1 both passed
    out = _call(op, state, [])
    assert list(out["window_end_ms"]) == [2 * MIN]
    np.testing.assert_array_equal(
        out["sequence"][0],
        _seq([_features([(0, 1, [1.0, 1.0])]), _features([(MIN, 2, [2.0, 2.0])])]),
    )
    assert state.exists and state.timeout is None  # nothing open, no time to live: kept


def test_a_device_silent_for_the_time_to_live_is_forgotten() -> None:
    op, state = FleetWindows(SPEC, NORM, ttl_ms=10 * MIN), FakeState()
    op.init(state)
    state.watermark = MIN
    list(op.handleInputRows((0,), iter([_device_frame("quiet", [(0, 1, [1.0, 1.0])])]), state))
    assert state.timers == {MIN + 10 * MIN}  # window 0 closed at once; forgotten at 11 min
    state.watermark = 5 * MIN
    list(op.handleInputRows((0,), iter([_device_frame("busy", [(5 * MIN, 1, [1.0, 1.0])])]), state))
    assert state.fire(op) == [] and set(state.devices) == {("quiet",), ("busy",)}
    state.watermark = 11 * MIN  # "quiet" silent 10 min since its last window; "busy" 5 min
    state.fire(op)
    assert set(state.devices) == {("busy",)}
    assert state.timers == {6 * MIN + 10 * MIN}


def test_a_time_to_live_given_on_a_restart_forgets_devices_kept_without_one() -> None:
    # A run without a time to live keeps a silent device for ever (nothing due, no timer).
    # Restarted on the same state with one, the bucket's next call marks every slice due,
    # and the sweep that follows forgets the device.
    old, state = FleetWindows(SPEC, NORM), FakeState()
    old.init(state)
    _call(old, state, [(0, 1, [1.0, 1.0])])
    state.watermark = MIN
    state.fire(old)
    assert ("d",) in state.devices and not state.timers  # closed, kept, nothing due
    new = FleetWindows(SPEC, NORM, ttl_ms=10 * MIN)
    new.init(state)
    state.watermark = 20 * MIN
    frame = _device_frame("other", [(20 * MIN, 1, [1.0, 1.0])])
    list(new.handleInputRows((0,), iter([frame]), state))
    assert state.timers == {20 * MIN + 1}  # every slice due: swept at the next watermark
    state.watermark = 21 * MIN
    state.fire(new)
    assert set(state.devices) == {("other",)}
    assert state.dues is not None and state.dues[1] == 10 * MIN


def test_a_batch_reads_and_writes_each_slice_of_its_devices_once() -> None:
    # 300 devices in one bucket: a batch costs two state calls per slice it touches, not two
    # per device, and a later batch of one device rewrites that device's slice only.
    op, state = FleetWindows(SPEC, NORM), FakeState()
    op.init(state)
    names = [f"pump-{i}" for i in range(300)]
    frame = pd.concat([_device_frame(n, [(0, 1, [1.0, 2.0])]) for n in names], ignore_index=True)
    list(op.handleInputRows((0,), iter([frame]), state))
    assert state.calls == 2 * STATE_SLICES == 2 * len(state.map)
    assert set(state.devices) == {(n,) for n in names}
    # every slice is due when its devices' windows end, and the bucket's one timer then
    assert state.dues == ([MIN] * STATE_SLICES, None) and state.timers == {MIN}
    before = dict(state.map)
    state.calls = 0
    frame = _device_frame("pump-7", [(30_000, 2, [3.0, 4.0])])
    list(op.handleInputRows((0,), iter([frame]), state))
    assert state.calls == 2
    touched = {key for key in state.map if state.map[key] != before[key]}
    assert touched == {(slice_of("pump-7"),)}
    # pump-7's slice-mates are written back with it, unchanged.
    assert set(state.devices) == {(n,) for n in names}
    mates = [n for n in names if slice_of(n) == slice_of("pump-7") and n != "pump-7"]
    old = unpack_slice(before[(slice_of("pump-7"),)][0])
    assert mates and all(state.devices[(n,)] == old[n] for n in mates)
    assert len(np.frombuffer(state.devices[("pump-7",)][1], np.int64)) == 2  # both open
    assert len(np.frombuffer(state.devices[("pump-8",)][1], np.int64)) == 1


def test_slices_are_stable_across_processes() -> None:
    # A device's slice must not change under a checkpoint, whatever salt Python's hash has.
    names = ["engine-1", "disk-ZA1F", "pump-ä"] + [f"d{i}" for i in range(200)]
    code = "import json, sys; from stream.sequence import slice_of; "
    code += "print(json.dumps([slice_of(d) for d in json.load(sys.stdin)]))"
    seen = []
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        run = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(names),
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parents[3],
            check=True,
        )
        seen.append(json.loads(run.stdout))
    assert seen[0] == seen[1] == [slice_of(d) for d in names]
    assert set(seen[0]) == set(range(STATE_SLICES))
    # Pinned: a change of the function, the encoding or STATE_SLICES moves devices between
    # slices, so it must come with a new STATE_LAYOUT (which names the slices).
    assert seen[0][:3] == [14, 10, 8] and f"-s{STATE_SLICES}" in STATE_LAYOUT


def test_a_timer_sweep_rewrites_only_the_slices_that_changed() -> None:
    # quiet and q0 share a slice, q14 has one alone, q2 another. quiet and q14 go silent
    # past their time to live: quiet's slice is rewritten without it (q0's window closes
    # too), q14's slice, left empty, is removed, and q2's, where nothing changed, is not
    # written.
    assert slice_of("quiet") == slice_of("q0")
    assert len({slice_of("quiet"), slice_of("q14"), slice_of("q2")}) == 3
    op, state = FleetWindows(SPEC, NORM, ttl_ms=10 * MIN), FakeState()
    op.init(state)
    state.watermark = MIN

    def batch(rows: list[tuple[str, int]]) -> None:
        frames = [_device_frame(d, [(ms, 1, [1.0, 1.0])]) for d, ms in rows]
        list(op.handleInputRows((0,), iter([pd.concat(frames, ignore_index=True)]), state))

    batch([("quiet", 0), ("q14", 0)])
    state.watermark = 5 * MIN
    batch([("q0", 5 * MIN), ("q2", 11 * MIN)])
    assert set(state.devices) == {("quiet",), ("q0",), ("q14",), ("q2",)}
    before = dict(state.map)
    state.watermark = 11 * MIN  # quiet and q14 silent for 10 min since their last windows
    state.calls, state.reads = 0, []
    assert state.fire(op) == []  # K = 2: q0's one window emits no sequence yet
    assert state.devices[("q0",)][0] == 6 * MIN  # but it closed
    assert set(state.devices) == {("q0",), ("q2",)}
    assert (slice_of("q14"),) not in state.map
    assert state.map[(slice_of("q2"),)] == before[(slice_of("q2"),)]
    # The sweep reads the two slices due (q2's, not due, is not read), writes quiet's and
    # removes q14's.
    assert sorted(state.reads) == sorted([slice_of("quiet"), slice_of("q14")])
    assert state.calls == 4


@pytest.mark.parametrize("lateness_ms", [None, 2 * MIN])
def test_many_devices_advanced_together_equal_each_device_alone(lateness_ms: int | None) -> None:
    # advance_many computes every device's closing windows' features in one call; the
    # states, due times and emitted sequences must be those of advance, device by device,
    # bit for bit, over batches with duplicates, late readings and gaps (NaN values).
    rng = np.random.default_rng(7)
    spec = FeatureSpec(
        sensors=("a", "b"), window_seconds=60.0, sequence_length=3, horizon_windows=1
    )
    norm = _norm(spec)
    together, alone = DeviceWindows(spec, norm, lateness_ms), DeviceWindows(spec, norm, lateness_ms)
    states: dict[int, tuple[Any, ...] | None] = {d: None for d in range(40)}
    seqs = dict.fromkeys(range(40), 0)
    emitted = 0
    for batch in range(12):
        watermark = batch * MIN
        inputs = []
        for d in range(40):
            n = int(rng.integers(0, 5))
            ms = np.sort(rng.integers(batch * MIN, (batch + 2) * MIN, n)).astype(np.int64)
            ms[: n // 3] -= 3 * MIN  # some late
            seq = np.arange(seqs[d], seqs[d] + n, dtype=np.int64)
            seq[n // 2 :] -= int(rng.integers(0, 2))  # some duplicates
            seqs[d] += n
            values = rng.normal(size=(n, 2))
            values[rng.random(size=(n, 2)) < 0.1] = np.nan
            inputs.append((states[d], ms, seq, values))
        got = together.advance_many(
            [stored for stored, *_ in inputs],
            np.array([len(ms) for _, ms, _, _ in inputs]),
            np.concatenate([ms for _, ms, _, _ in inputs]),
            np.concatenate([seq for _, _, seq, _ in inputs]),
            np.concatenate([values for *_, values in inputs]),
            watermark,
        )
        for d, ((stored, ms, seq, values), state) in enumerate(
            zip(inputs, got.states, strict=True)
        ):
            want_state, want_out = alone.advance(stored, ms, seq, values, watermark)
            assert state == want_state, (batch, d)  # the due time (state[5]) with it
            mine = np.flatnonzero(got.emitted_by == d)
            assert (len(mine) == 0) == (want_out is None), (batch, d)
            if want_out is not None:
                assert got.emitted is not None
                emitted += len(want_out.end_ms)
                for x, y in zip(got.emitted, want_out, strict=True):
                    np.testing.assert_array_equal(np.asarray(x)[mine], np.asarray(y))
            states[d] = state
    assert emitted > 100  # the comparison covered many sequences


def test_the_buckets_spread_evenly_over_a_power_of_two_of_shuffle_partitions(spark: Any) -> None:
    """The operator's stage waits for its largest task: Spark's hash partitioning of the
    bucket keys (what the grouping's shuffle does) gives each partition as many buckets."""
    from pyspark.sql import functions as F

    assert len(set(BUCKET_KEYS)) == STATE_BUCKETS and min(BUCKET_KEYS) >= 0
    keys = spark.createDataFrame([(k,) for k in BUCKET_KEYS], "bucket int")
    for partitions in (1, 2, 4, 8, 16):
        counts = (
            keys.repartition(partitions, "bucket")
            .groupBy(F.spark_partition_id().alias("p"))
            .count()
            .collect()
        )
        assert sorted(r["count"] for r in counts) == [STATE_BUCKETS // partitions] * partitions
    # Devices land on every key and only on them.
    devices = spark.range(5000).select(F.format_string("pump-%d", "id").alias("device_id"))
    seen = {r[0] for r in devices.select(bucket_of(F.col("device_id"))).distinct().collect()}
    assert seen == set(BUCKET_KEYS)


def test_a_scoring_operator_loads_no_model_until_a_window_closes() -> None:
    # Spark calls init in the driver too, planning the query, where a model shipped to
    # the executors (prognos submit) is not: only closing a window loads it.
    from stream.scoring import ScoringSpec, operator_schema
    from stream.sequence import DEAD_LETTER_BUCKET, DEAD_LETTER_KEY, PACKED_DEAD_LETTER

    spec = ScoringSpec("/nowhere/model.onnx", "0" * 64, "cpu", shipped="prognos-model")
    op, state = FleetWindows(SPEC, NORM, scoring=spec), FakeState()
    state.watermark = 10 * MIN
    op.init(state)  # the driver's call: nothing loaded
    frame = pd.DataFrame(
        {
            "device_id": [DEAD_LETTER_KEY],
            "event_time": [None],
            "seq": [None],
            "values": [None],
            PACKED_DEAD_LETTER: ['{"rule": "json"}'],
        }
    )
    out = pd.concat(list(op.handleInputRows((DEAD_LETTER_BUCKET,), iter([frame]), state)))
    assert list(out.columns) == operator_schema().fieldNames()
    assert op.scorer is None
    from models.errors import ModelError

    with pytest.raises(ModelError, match="prognos-model"):
        _call(op, state, [(i * 30_000, i, [float(i), 1.0]) for i in range(6)])

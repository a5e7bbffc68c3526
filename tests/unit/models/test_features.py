"""The window-feature definition on known series, and normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.errors import InputShapeError, NonFiniteInputError
from models.features import (
    STATISTICS,
    FeatureSpec,
    NormStats,
    compute_window_features,
    compute_windows_features,
    fit_norm_stats,
    fit_regimes,
    normalise,
    normalise_readings,
)

SPEC2 = FeatureSpec(sensors=("a", "b"), window_seconds=60.0, sequence_length=3, horizon_windows=2)


def stats(vec: np.ndarray, sensor: int = 0, spec: FeatureSpec = SPEC2) -> dict[str, float]:
    n = len(spec.statistics)
    return dict(zip(spec.statistics, vec[sensor * n : (sensor + 1) * n].tolist(), strict=True))


def test_feature_order_and_names() -> None:
    assert SPEC2.features[:2] == (("a", "mean"), ("a", "std"))
    assert SPEC2.feature_names[6] == "b__mean"
    assert SPEC2.n_features == 12 == len(SPEC2.feature_names)
    assert SPEC2.horizon_seconds == 120.0


def test_known_series() -> None:
    # a: 1, 2, 4 at t = 0, 10, 20 (given out of order); b: 10, NaN, 30.
    t = np.array([10.0, 0.0, 20.0]) + 1.7e9
    v = np.array([[2.0, np.nan], [1.0, 10.0], [4.0, 30.0]])
    out = compute_window_features(SPEC2, t, v)
    a, b = stats(out, 0), stats(out, 1)
    assert a["mean"] == pytest.approx(7 / 3)
    assert a["std"] == pytest.approx(np.std([1, 2, 4]))  # population, ddof = 0
    assert a["std"] != pytest.approx(np.std([1, 2, 4], ddof=1))
    assert (a["min"], a["max"], a["last"]) == (1.0, 4.0, 4.0)
    assert a["slope"] == pytest.approx(np.polyfit([0, 10, 20], [1, 2, 4], 1)[0])  # 0.15 / s
    # b ignores its missing value: two points 10 and 30 at t = 0 and 20.
    assert b == pytest.approx({"mean": 20.0, "std": 10.0, "min": 10.0, "max": 30.0,
                               "last": 30.0, "slope": 1.0})  # fmt: skip


def test_last_is_value_at_greatest_time_ties_to_greatest_value() -> None:
    t = np.array([5.0, 9.0, 9.0, 1.0])
    v = np.array([[100.0], [3.0], [7.0], [50.0]])
    spec = FeatureSpec(sensors=("a",), window_seconds=10, sequence_length=1, horizon_windows=1)
    assert stats(compute_window_features(spec, t, v), spec=spec)["last"] == 7.0


def test_slope_zero_for_one_point_or_constant_time_and_missing_for_no_values() -> None:
    spec = FeatureSpec(sensors=("a", "b", "c"), window_seconds=10, sequence_length=1,
                       horizon_windows=1)  # fmt: skip
    t = np.array([3.0, 3.0])
    v = np.array([[1.0, 5.0, np.nan], [2.0, np.inf, np.nan]])
    out = compute_window_features(spec, t, v)
    assert stats(out, 0, spec)["slope"] == 0.0  # two points, same time: zero variance of x
    b = stats(out, 1, spec)
    assert b["slope"] == 0.0 and b["mean"] == 5.0 and b["std"] == 0.0  # Inf is ignored
    assert all(math.isnan(x) for x in stats(out, 2, spec).values())  # no values: missing


def test_empty_window_is_all_missing() -> None:
    out = compute_window_features(SPEC2, np.empty(0), np.empty((0, 2)))
    assert out.shape == (12,) and np.isnan(out).all()


def test_statistics_subset_in_spec_order() -> None:
    spec = FeatureSpec(sensors=("a",), window_seconds=10, sequence_length=1, horizon_windows=1,
                       statistics=("last", "mean"))  # fmt: skip
    out = compute_window_features(spec, [0.0, 1.0], [[1.0], [3.0]])
    assert out.tolist() == [3.0, 2.0]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=20),
    seed=st.integers(0, 2**32 - 1),
    whole_seconds=st.booleans(),
)
def test_windows_at_once_equal_each_window_alone(
    sizes: list[int], seed: int, whole_seconds: bool
) -> None:
    # The window operator computes a device's closing windows in one call: the numbers must
    # be those of the training function, window by window, to the bit.
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    times = 1.7e9 + np.concatenate([60.0 * i + rng.random(k) * 60 for i, k in enumerate(sizes)])
    if whole_seconds:
        times = np.floor(times)  # ties in time: "last" breaks them by value
    values = rng.normal(100.0, 10.0, (n, 2))
    values[rng.random((n, 2)) < 0.25] = np.nan
    values[rng.random((n, 2)) < 0.05] = np.inf
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    together = compute_windows_features(SPEC2, times, values, starts)
    assert together.shape == (len(sizes), SPEC2.n_features)
    for i, (a, k) in enumerate(zip(starts, sizes, strict=True)):
        alone = compute_window_features(SPEC2, times[a : a + k], values[a : a + k])
        np.testing.assert_array_equal(together[i], alone)


def test_windows_at_once_refuse_starts_that_do_not_cut_non_empty_windows() -> None:
    times, values = [0.0, 1.0, 2.0], np.ones((3, 2))
    for starts in ([1], [0, 0, 2], [0, 2, 1], [0, 3]):
        with pytest.raises(InputShapeError, match="non-empty windows"):
            compute_windows_features(SPEC2, times, values, starts)
    assert compute_windows_features(SPEC2, times, values, []).shape == (0, SPEC2.n_features)


def test_wrong_shape_refused() -> None:
    with pytest.raises(InputShapeError, match="one column per sensor"):
        compute_window_features(SPEC2, [0.0, 1.0], np.ones((2, 3)))
    with pytest.raises(InputShapeError, match="event times"):
        compute_window_features(SPEC2, [0.0, np.nan], np.ones((2, 2)))


def test_spec_validation_and_round_trip() -> None:
    assert FeatureSpec.from_dict(SPEC2.to_dict()) == SPEC2
    with pytest.raises(ValueError, match="statistics"):
        FeatureSpec(sensors=("a",), window_seconds=1, sequence_length=1, horizon_windows=1,
                    statistics=("median",))  # fmt: skip
    with pytest.raises(ValueError, match="window_seconds"):
        FeatureSpec(sensors=("a",), window_seconds=0, sequence_length=1, horizon_windows=1)
    assert set(STATISTICS) == {"mean", "std", "min", "max", "last", "slope"}


def test_window_index_is_aligned_like_spark() -> None:
    spec = FeatureSpec(sensors=("a",), window_seconds=300, sequence_length=1, horizon_windows=1)
    assert spec.window_index([0, 299.9, 300, 601]).tolist() == [0, 0, 1, 2]


@settings(max_examples=50, deadline=None)
@given(
    a=st.floats(-1e3, 1e3), b=st.floats(-10, 10),
    n=st.integers(2, 40), t0=st.floats(0, 2e9),
)  # fmt: skip
@example(a=221.51922579353868, b=0.0, n=37, t0=4.387461982845956)  # failed CI once
def test_slope_of_a_line_is_its_coefficient(a: float, b: float, n: int, t0: float) -> None:
    t = t0 + np.arange(n) * 7.0
    out = compute_window_features(SPEC2, t, np.column_stack([a + b * (t - t0), np.full(n, a)]))
    assert stats(out)["slope"] == pytest.approx(b, abs=1e-6 * (1 + abs(b)))
    # A constant series: zero up to rounding (the mean of n equal floats can differ from
    # them in the last bit; hypothesis found a = 221.519..., n = 37: slope -3.9e-33).
    assert stats(out, 1)["slope"] == pytest.approx(0.0, abs=1e-12)
    assert stats(out, 1)["std"] == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=1, max_size=30))
def test_matches_a_plain_reference(values: list[float | None]) -> None:
    """Vectorised definition == a one-value-at-a-time reference (what Spark computes)."""
    t = np.arange(len(values), dtype=np.float64) * 3.0
    v = np.array([np.nan if x is None else x for x in values])
    out = stats(compute_window_features(SPEC2, t, np.column_stack([v, v])))
    ok = [(ti, x) for ti, x in zip(t, values, strict=True) if x is not None]
    if not ok:
        assert all(math.isnan(x) for x in out.values())
        return
    xs = [x for _, x in ok]
    mean = sum(xs) / len(xs)
    assert out["mean"] == pytest.approx(mean, rel=1e-9, abs=1e-6)
    assert out["std"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs)),
                                       rel=1e-6, abs=1e-3)  # fmt: skip
    assert (out["min"], out["max"], out["last"]) == (min(xs), max(xs), ok[-1][1])


def test_normalise_maps_missing_to_zero_and_clips() -> None:
    stats_ = NormStats(mean=(1.0, 10.0), scale=(2.0, 1.0), clip=5.0)
    out = normalise(np.array([[[3.0, np.nan], [1.0, 1000.0]]]), stats_)
    assert out.dtype == np.float32
    assert out.tolist() == [[[1.0, 0.0], [0.0, 5.0]]]


def test_normalise_refuses_inf_and_wrong_width() -> None:
    stats_ = NormStats(mean=(0.0, 0.0), scale=(1.0, 1.0))
    with pytest.raises(NonFiniteInputError, match="feature #1"):
        normalise(np.array([[0.0, np.inf]]), stats_)
    with pytest.raises(InputShapeError, match="expects 2 features"):
        normalise(np.zeros((4, 3)), stats_)


def test_fit_norm_stats_ignores_nan_and_guards_zero_std() -> None:
    x = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, np.nan], [np.nan, 5.0, np.nan]])
    s = fit_norm_stats(x)
    assert s.mean == (2.0, 5.0, 0.0) and s.scale == (1.0, 1.0, 1.0)
    assert NormStats.from_dict(s.to_dict()) == s


def test_regimes_standardise_each_regime() -> None:
    rng = np.random.default_rng(0)
    settings_ = np.repeat([[0.0], [10.0]], 200, axis=0)
    values = np.where(settings_ > 5, 100.0, 0.0) + rng.normal(size=(400, 1))
    regimes = fit_regimes(values, settings_, ("op",), 2, seed=1)
    z = normalise_readings(values, settings_, regimes)
    for part in (z[:200], z[200:]):
        assert abs(part.mean()) < 1e-9 and part.std() == pytest.approx(1.0)
    assert NormStats(mean=(0.0,), scale=(1.0,), regimes=regimes).to_dict()["regimes"][
        "settings"
    ] == ["op"]


def test_a_transformed_sensor_is_read_through_log1p_and_named_so() -> None:
    plain = FeatureSpec(("a", "b"), 10.0, 2, 1, statistics=("mean", "max"))
    spec = FeatureSpec(("a", "b"), 10.0, 2, 1, statistics=("mean", "max"),
                       transforms=(("b", "log1p"),))  # fmt: skip
    assert spec.feature_names == ("a__mean", "a__max", "log1p(b)__mean", "log1p(b)__max")
    values = [[1.0, 0.0], [3.0, 99.0], [5.0, np.nan]]
    got = compute_window_features(spec, [0.0, 1.0, 2.0], values)
    assert got[:2].tolist() == compute_window_features(plain, [0.0, 1.0, 2.0], values)[:2].tolist()
    assert got[2:] == pytest.approx([np.log(100.0) / 2, np.log(100.0)])
    # The stream's many-windows path gives the same numbers.
    many = compute_windows_features(spec, [0.0, 1.0, 2.0], values, [0])
    assert np.array_equal(many[0], got, equal_nan=True)
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    # A spec without transforms writes no key: earlier models' metadata stays as it was.
    assert "transforms" not in plain.to_dict() and FeatureSpec.from_dict(plain.to_dict()) == plain
    with pytest.raises(ValueError, match="transforms"):
        FeatureSpec(("a",), 10.0, 2, 1, transforms=(("z", "log1p"),))
    with pytest.raises(ValueError, match="transforms"):
        FeatureSpec(("a",), 10.0, 2, 1, transforms=(("a", "sqrt"),))

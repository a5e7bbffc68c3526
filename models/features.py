"""The window-feature definition shared by training and serving, in numpy.

The stream job's window operator (:mod:`stream.sequence`) calls
:func:`compute_windows_features`, the same code as :func:`compute_window_features` that
training uses, so a model sees in production exactly the features it learned from.

A device's readings are cut into tumbling event-time windows of ``window_seconds``,
aligned like Spark's ``window(event_time, "<W> seconds")``: window ``j`` holds the readings
with ``origin + j*W <= t < origin + (j+1)*W`` (``origin_seconds`` is 0, the Unix epoch, by
default). For each window and each sensor of the spec, the statistics below are computed;
the model reads the last ``sequence_length`` (K) window vectors of a device.

Rules (each is also an exact Spark SQL aggregate, named for reference):

* A reading value that is missing (null, NaN) or not finite (±Inf) is ignored by every
  statistic of that sensor; the other sensors of the same reading still count.
* ``mean``  -- arithmetic mean of the values (Spark ``avg``).
* ``std``   -- population standard deviation, ddof = 0 (Spark ``stddev_pop``).
* ``min`` / ``max`` -- smallest / largest value (Spark ``min`` / ``max``).
* ``last``  -- the value at the greatest event time; among readings that share that time,
  the greatest value (Spark ``max_by(v, struct(event_time_s, v))``).
* ``slope`` -- least-squares slope of value against event time in **seconds**
  (Spark ``regr_slope(v, event_time_s)``); 0 when the sensor has fewer than 2 values or its
  values' event times do not vary (``coalesce(regr_slope(...), 0)`` when ``count(v) >= 1``).
* A statistic over no values is missing (NaN here, null in Spark).
* A sensor the spec transforms (``spec.transforms``, e.g. ``log1p``: ``sign(v)·log(1+|v|)``
  for counters and other heavy-tailed values) is transformed value by value first, and its
  features are named ``"log1p(<sensor>)__<stat>"``.

Model-input order is ``spec.features``: for each sensor in ``spec.sensors``, each statistic
in ``spec.statistics``; the name of a feature is ``"<sensor>__<stat>"`` (e.g. ``s2__mean``).

Normalisation is learned at training time and stored in the model's metadata
(:class:`NormStats`); :func:`normalise` applies it in numpy: ``(x - mean) / scale`` per
feature, then missing features become 0 (the training mean), so no NaN reaches the model.
Where a dataset has several operating regimes, readings are first standardised per regime
(:class:`RegimeNorm`, :func:`normalise_readings`) before windowing.

Example:
    >>> import numpy as np
    >>> spec = FeatureSpec(sensors=("s1",), window_seconds=10.0, sequence_length=2,
    ...                    horizon_windows=1)
    >>> spec.feature_names
    ('s1__mean', 's1__std', 's1__min', 's1__max', 's1__last', 's1__slope')
    >>> x = compute_window_features(spec, [0.0, 1.0, 2.0], [[1.0], [3.0], [5.0]])
    >>> [round(float(v), 4) for v in x]  # mean, std (ddof=0), min, max, last, slope
    [3.0, 1.633, 1.0, 5.0, 5.0, 2.0]
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import InputShapeError, NonFiniteInputError

logger = logging.getLogger(__name__)

__all__ = [
    "FD001_SENSORS",
    "STATISTICS",
    "TRANSFORMS",
    "FeatureSpec",
    "NormStats",
    "RegimeNorm",
    "apply_transforms",
    "compute_window_features",
    "compute_windows_features",
    "fit_norm_stats",
    "fit_regimes",
    "normalise",
    "normalise_readings",
    "sensor_coverage",
]

#: The statistics a spec may use, in their canonical order.
STATISTICS: tuple[str, ...] = ("mean", "std", "min", "max", "last", "slope")

#: The value transforms a spec may apply to a sensor before its statistics.
TRANSFORMS: tuple[str, ...] = ("log1p",)

#: FD001 sensors that vary over the training file, then the engine's age. Dropped: s1, s5,
#: s10, s16, s18 and s19 (constant) and s6 (21.60-21.61, nearly constant); see the C-MAPSS
#: data README. ``cycle`` is the C-MAPSS time column, the engine's operating cycles since
#: its record began (the replay and the simulated turbofans report it as a sensor); the
#: published LSTM reads it too, and it raised the nested cross-validated F1 on the training
#: engines from 0.927 to 0.943 (five fold networks with a RUL head; ``models.study``).
FD001_SENSORS: tuple[str, ...] = (
    "s2",
    "s3",
    "s4",
    "s7",
    "s8",
    "s9",
    "s11",
    "s12",
    "s13",
    "s14",
    "s15",
    "s17",
    "s20",
    "s21",
    "cycle",
)

FloatArray = npt.NDArray[np.float64]
F32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FeatureSpec:
    """What the model reads: sensors, statistics, window length, sequence length, horizon.

    Attributes:
        sensors: Sensor names, in model-input order.
        window_seconds: Length W of a tumbling event-time window, in seconds.
        sequence_length: Number K of consecutive windows the model reads per device.
        horizon_windows: Horizon H: the label is "fails within H windows" of the end of the
            last window read, i.e. within ``H * window_seconds`` seconds.
        statistics: Statistics per sensor, a subset of :data:`STATISTICS` in any order.
        origin_seconds: Window alignment: window starts are ``origin + j*W`` (Unix seconds).
        name: A label for reports (e.g. ``"cmapss-fd001"``).
        transforms: ``(sensor, transform)`` pairs: a sensor's values go through the
            transform (one of :data:`TRANSFORMS`) before its statistics are computed;
            its features are then named ``"<transform>(<sensor>)__<stat>"``.
    """

    sensors: tuple[str, ...]
    window_seconds: float
    sequence_length: int
    horizon_windows: int
    statistics: tuple[str, ...] = STATISTICS
    origin_seconds: float = 0.0
    name: str = "default"
    transforms: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.sensors:
            raise ValueError("FeatureSpec.sensors is empty: name at least one sensor")
        if len(set(self.sensors)) != len(self.sensors):
            raise ValueError(f"FeatureSpec.sensors has duplicates: {self.sensors}")
        unknown = [s for s in self.statistics if s not in STATISTICS]
        if unknown or not self.statistics:
            raise ValueError(f"FeatureSpec.statistics {unknown or '()'}: choose from {STATISTICS}")
        if not (self.window_seconds > 0 and math.isfinite(self.window_seconds)):
            raise ValueError(f"FeatureSpec.window_seconds must be > 0, got {self.window_seconds}")
        if self.sequence_length < 1 or self.horizon_windows < 1:
            raise ValueError("FeatureSpec.sequence_length and horizon_windows must be >= 1")
        for sensor, transform in self.transforms:
            if sensor not in self.sensors or transform not in TRANSFORMS:
                raise ValueError(
                    f"FeatureSpec.transforms ({sensor!r}, {transform!r}): name a sensor of the "
                    f"spec and one of {TRANSFORMS}"
                )
        if len({s for s, _ in self.transforms}) != len(self.transforms):
            raise ValueError(f"FeatureSpec.transforms names a sensor twice: {self.transforms}")

    @property
    def features(self) -> tuple[tuple[str, str], ...]:
        """``(sensor, statistic)`` pairs in model-input order."""
        return tuple((s, stat) for s in self.sensors for stat in self.statistics)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature names in model-input order, ``"<sensor>__<stat>"`` (``"log1p(<sensor>)__
        <stat>"`` for a transformed sensor)."""
        how = dict(self.transforms)
        return tuple(
            f"{how[s]}({s})__{stat}" if s in how else f"{s}__{stat}" for s, stat in self.features
        )

    @property
    def n_features(self) -> int:
        """Number F of features per window."""
        return len(self.sensors) * len(self.statistics)

    @property
    def horizon_seconds(self) -> float:
        """The label horizon in seconds, ``horizon_windows * window_seconds``."""
        return self.horizon_windows * self.window_seconds

    def window_index(self, times: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Index ``j`` of the window holding each event time (Unix seconds)."""
        t = np.asarray(times, dtype=np.float64)
        return np.floor((t - self.origin_seconds) / self.window_seconds).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored in the model metadata)."""
        return {
            "name": self.name,
            "sensors": list(self.sensors),
            "statistics": list(self.statistics),
            "window_seconds": self.window_seconds,
            "sequence_length": self.sequence_length,
            "horizon_windows": self.horizon_windows,
            "origin_seconds": self.origin_seconds,
            # Only when there are any: the specs of earlier models stay byte for byte.
            **({"transforms": dict(self.transforms)} if self.transforms else {}),
            "features": list(self.feature_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict` (the ``features`` entry is derived, and checked)."""
        spec = cls(
            sensors=tuple(data["sensors"]),
            statistics=tuple(data["statistics"]),
            window_seconds=float(data["window_seconds"]),
            sequence_length=int(data["sequence_length"]),
            horizon_windows=int(data["horizon_windows"]),
            origin_seconds=float(data.get("origin_seconds", 0.0)),
            name=str(data.get("name", "default")),
            transforms=tuple((str(k), str(v)) for k, v in (data.get("transforms") or {}).items()),
        )
        if "features" in data and tuple(data["features"]) != spec.feature_names:
            raise ValueError("spec 'features' does not match its sensors and statistics")
        return spec


def compute_window_features(
    spec: FeatureSpec, times: npt.ArrayLike, values: npt.ArrayLike
) -> FloatArray:
    """The feature vector of one device for one window.

    Args:
        spec: The feature spec.
        times: Event times of the window's readings in seconds, shape ``[n]`` (any order).
        values: Sensor values, shape ``[n, len(spec.sensors)]`` in ``spec.sensors`` order;
            NaN (or ±Inf) marks a missing value.

    Returns:
        float64 array of shape ``[spec.n_features]`` in ``spec.features`` order; NaN where a
        sensor has no value in the window.

    Raises:
        InputShapeError: ``values`` does not have one column per sensor, or ``times`` and
            ``values`` differ in length, or an event time is not finite.
    """
    t, v = _window_inputs(spec, times, values)
    if t.shape[0] == 0:
        return np.full(spec.n_features, np.nan)
    features: FloatArray = _segment_features(spec, t, v, np.zeros(1, dtype=np.intp))[0]
    return features


def compute_windows_features(
    spec: FeatureSpec, times: npt.ArrayLike, values: npt.ArrayLike, starts: npt.ArrayLike
) -> FloatArray:
    """The feature vectors of consecutive windows at once: the same numbers as
    :func:`compute_window_features` on each window, with one pass of numpy calls for all.

    Args:
        spec: The feature spec.
        times: Event times of the readings in seconds, shape ``[n]``, grouped by window
            (within a window, any order).
        values: Sensor values, shape ``[n, len(spec.sensors)]``, in the same order.
        starts: Index of each window's first reading, shape ``[W]``, increasing from 0; every
            window has at least one reading.

    Returns:
        float64 array of shape ``[W, spec.n_features]``.

    Raises:
        InputShapeError: as :func:`compute_window_features`, or ``starts`` does not cut
            the readings into non-empty windows.
    """
    t, v = _window_inputs(spec, times, values)
    at = np.asarray(starts, dtype=np.intp).reshape(-1)
    if at.shape[0] == 0:
        return np.empty((0, spec.n_features), dtype=np.float64)
    if at[0] != 0 or (np.diff(at) <= 0).any() or at[-1] >= t.shape[0]:
        raise InputShapeError(
            f"window starts {at.tolist()[:8]}... do not cut {t.shape[0]} readings into "
            "non-empty windows (increasing from 0, each below the number of readings)"
        )
    return _segment_features(spec, t, v, at)


def _window_inputs(
    spec: FeatureSpec, times: npt.ArrayLike, values: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Times ``[n]`` and values ``[n, sensors]`` as float64, shapes and times checked."""
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1 and len(spec.sensors) == 1:
        v = v.reshape(-1, 1)
    if v.ndim != 2 or v.shape[1] != len(spec.sensors) or v.shape[0] != t.shape[0]:
        raise InputShapeError(
            f"window values have shape {v.shape} for {t.shape[0]} event times; expected "
            f"[{t.shape[0]}, {len(spec.sensors)}] (one column per sensor of spec {spec.name!r})"
        )
    if not np.isfinite(t).all():
        raise InputShapeError("window event times hold NaN or Inf: every reading needs a time")
    if spec.transforms:
        v = apply_transforms(spec, v)
    return t, v


def apply_transforms(spec: FeatureSpec, values: npt.ArrayLike) -> FloatArray:
    """``values`` (``[n, len(spec.sensors)]``) with the spec's transforms applied (a copy).

    ``log1p`` is ``sign(v) * log(1 + |v|)``: counters and other heavy-tailed values (0, 3,
    64600 reallocated sectors) become steps a network can compare; NaN stays NaN.

    >>> spec = FeatureSpec(("a", "b"), 60.0, 1, 1, transforms=(("b", "log1p"),))
    >>> apply_transforms(spec, [[5.0, 0.0], [5.0, 99.0]]).round(3).tolist()
    [[5.0, 0.0], [5.0, 4.605]]
    """
    out = np.array(values, dtype=np.float64, copy=True)
    index = {s: i for i, s in enumerate(spec.sensors)}
    for sensor, transform in spec.transforms:
        column = out[..., index[sensor]]
        if transform == "log1p":
            out[..., index[sensor]] = np.sign(column) * np.log1p(np.abs(column))
    return out


def _segment_features(spec: FeatureSpec, t: FloatArray, v: FloatArray, starts: Any) -> FloatArray:
    """The features of each window ``t[starts[i]:starts[i + 1]]``: ``[W, n_features]``.

    Vectorised over sensors and windows; each sensor uses only its own valid (finite)
    values. Sums run reading by reading within a window (``reduceat``), in the readings'
    order.
    """
    n_sensors = len(spec.sensors)
    window = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, t.shape[0])))

    def total(x: FloatArray) -> FloatArray:
        summed: FloatArray = np.add.reduceat(x, starts, axis=0)
        return summed

    ok = np.isfinite(v)
    count = np.add.reduceat(ok.astype(np.int64), starts, axis=0)
    some = count > 0
    safe = np.maximum(count, 1)
    mean = total(np.where(ok, v, 0.0)) / safe
    dev = np.where(ok, v - mean[window], 0.0)
    std = np.sqrt(total(dev * dev) / safe)
    vmin = np.minimum.reduceat(np.where(ok, v, np.inf), starts, axis=0)
    vmax = np.maximum.reduceat(np.where(ok, v, -np.inf), starts, axis=0)
    # shifted to the window's first time: Unix seconds are ~1e9
    shifted = t - np.minimum.reduceat(t, starts)[window]
    tt = np.broadcast_to(shifted[:, None], v.shape)
    t_max = np.maximum.reduceat(np.where(ok, tt, -np.inf), starts, axis=0)
    # Greatest time; ties broken by the greatest value (Spark: max_by(v, struct(t, v))).
    last = np.maximum.reduceat(np.where(ok & (tt == t_max[window]), v, -np.inf), starts, axis=0)
    t_mean = total(np.where(ok, tt, 0.0)) / safe
    xc = np.where(ok, tt - t_mean[window], 0.0)
    sxx = total(xc * xc)
    sxy = total(xc * dev)
    slope = np.where((count >= 2) & (sxx > 0.0), sxy / np.where(sxx > 0.0, sxx, 1.0), 0.0)
    columns = {"mean": mean, "std": std, "min": vmin, "max": vmax, "last": last, "slope": slope}
    out = np.stack([columns[name] for name in spec.statistics], axis=2)  # [W, sensors, stats]
    out[~some] = np.nan
    result: FloatArray = out.reshape(len(starts), n_sensors * len(spec.statistics))
    return result


@dataclass(frozen=True)
class RegimeNorm:
    """Per-operating-regime standardisation of raw readings, applied before windowing.

    A reading's regime is the nearest centroid (Euclidean) of its operating-setting values;
    each sensor value is then ``(v - mean[r, s]) / scale[r, s]``.

    Attributes:
        settings: Names of the operating-setting columns that define a regime.
        centroids: Regime centres, ``[R][len(settings)]``.
        mean: Per-regime sensor means, ``[R][len(sensors)]`` in spec sensor order.
        scale: Per-regime sensor scales (std, 1 where the std is 0), same shape.
    """

    settings: tuple[str, ...]
    centroids: tuple[tuple[float, ...], ...]
    mean: tuple[tuple[float, ...], ...]
    scale: tuple[tuple[float, ...], ...]

    def assign(self, settings: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Regime index of each row of ``settings`` (``[n, len(self.settings)]``)."""
        s = np.asarray(settings, dtype=np.float64).reshape(-1, len(self.settings))
        c = np.asarray(self.centroids, dtype=np.float64)
        d = ((s[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        labels: npt.NDArray[np.int64] = np.argmin(d, axis=1).astype(np.int64)
        return labels

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "settings": list(self.settings),
            "centroids": _lists(self.centroids),
            "mean": _lists(self.mean),
            "scale": _lists(self.scale),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegimeNorm:
        """Inverse of :meth:`to_dict`."""
        return cls(
            settings=tuple(data["settings"]),
            centroids=_tuples(data["centroids"]),
            mean=_tuples(data["mean"]),
            scale=_tuples(data["scale"]),
        )


@dataclass(frozen=True)
class NormStats:
    """Normalisation learned at training time and stored with the model.

    Attributes:
        mean: Per-feature training mean, in ``spec.features`` order.
        scale: Per-feature training std (1.0 where the std is 0 or not finite).
        clip: Normalised values are clipped to ``[-clip, clip]`` so an outlier window
            cannot saturate the network.
        regimes: Per-regime reading standardisation, or None for a single regime.
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    clip: float = 10.0
    regimes: RegimeNorm | None = field(default=None)

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.scale):
            raise ValueError("NormStats.mean and NormStats.scale differ in length")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored in the model metadata)."""
        return {
            "mean": list(self.mean),
            "scale": list(self.scale),
            "clip": self.clip,
            "regimes": None if self.regimes is None else self.regimes.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormStats:
        """Inverse of :meth:`to_dict`."""
        regimes = data.get("regimes")
        return cls(
            mean=tuple(float(x) for x in data["mean"]),
            scale=tuple(float(x) for x in data["scale"]),
            clip=float(data.get("clip", 10.0)),
            regimes=None if regimes is None else RegimeNorm.from_dict(regimes),
        )


def fit_norm_stats(
    features: npt.ArrayLike, *, clip: float = 10.0, regimes: RegimeNorm | None = None
) -> NormStats:
    """Learn per-feature mean and scale from training windows ``[..., F]`` (NaN ignored)."""
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(-1, x.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column is allowed
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    scale = np.where(np.isfinite(std) & (std > 1e-12 * np.maximum(1.0, np.abs(mean))), std, 1.0)
    return NormStats(tuple(mean.tolist()), tuple(scale.tolist()), clip=clip, regimes=regimes)


def sensor_coverage(spec: FeatureSpec, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Share of the spec's sensors present in each window: with at least one finite statistic.

    ``features`` is ``[N, F]`` raw window features in model-input order. A window of
    readings that carry none of the model's sensors has coverage 0: every feature is
    missing and :func:`normalise` would set it to the training mean.

    >>> spec = FeatureSpec(("a", "b"), 60.0, 1, 1, statistics=("mean", "max"))
    >>> sensor_coverage(spec, [[1.0, 2.0, float("nan"), float("nan")], [1.0, 2.0, 3.0, 4.0]])
    array([0.5, 1. ])
    """
    x = np.asarray(features, dtype=np.float64).reshape(-1, len(spec.sensors), len(spec.statistics))
    present: npt.NDArray[np.float64] = np.isfinite(x).any(axis=2).mean(axis=1)
    return present


def normalise(features: npt.ArrayLike, stats: NormStats) -> F32Array:
    """Normalise raw window features for the model, in numpy.

    ``(x - mean) / scale`` per feature, clipped to ``±stats.clip``; a missing feature
    (NaN) becomes 0, the training mean. The result is float32 and always finite.

    Args:
        features: Raw features, shape ``[..., F]`` (e.g. ``[N, K, F]``), ``spec.features``
            order.
        stats: The model's normalisation statistics.

    Raises:
        InputShapeError: The last axis is not F.
        NonFiniteInputError: A feature is ±Inf (a NaN means "missing" and is accepted).
    """
    x = np.asarray(features, dtype=np.float64)
    n = len(stats.mean)
    if x.ndim == 0 or x.shape[-1] != n:
        raise InputShapeError(
            f"features have shape {x.shape}; the model's normalisation expects {n} features "
            "on the last axis (spec.features order)"
        )
    if np.isinf(x).any():
        where = np.argwhere(np.isinf(x))[0]
        raise NonFiniteInputError(
            f"feature #{int(where[-1])} at index {tuple(int(i) for i in where)} is infinite; "
            "send NaN for a missing statistic, never Inf"
        )
    z = (x - np.asarray(stats.mean)) / np.asarray(stats.scale)
    np.clip(z, -stats.clip, stats.clip, out=z)
    z[np.isnan(z)] = 0.0
    out: F32Array = z.astype(np.float32)
    return out


def normalise_readings(
    values: npt.ArrayLike, settings: npt.ArrayLike, regimes: RegimeNorm
) -> FloatArray:
    """Standardise raw readings ``[n, sensors]`` per operating regime (NaN stays NaN)."""
    v = np.asarray(values, dtype=np.float64)
    r = regimes.assign(settings)
    mean = np.asarray(regimes.mean, dtype=np.float64)[r]
    scale = np.asarray(regimes.scale, dtype=np.float64)[r]
    if v.shape != mean.shape:
        raise InputShapeError(
            f"readings have shape {v.shape}; regime normalisation expects {mean.shape}"
        )
    out: FloatArray = (v - mean) / scale
    return out


def fit_regimes(
    values: npt.ArrayLike,
    settings: npt.ArrayLike,
    setting_names: Sequence[str],
    n_regimes: int,
    *,
    seed: int = 0,
    iterations: int = 50,
    init: Sequence[Sequence[float]] | None = None,
) -> RegimeNorm:
    """Learn ``n_regimes`` operating regimes (k-means on the settings) and per-regime stats.

    ``init`` gives the starting centroids (``[n_regimes][settings]``, e.g. those
    ``models.fleet.choose_regimes`` found); without it they are ``n_regimes`` readings
    drawn with ``seed``.
    """
    v = np.asarray(values, dtype=np.float64)
    s = np.asarray(settings, dtype=np.float64).reshape(v.shape[0], -1)
    if init is not None:
        centroids = np.asarray(init, dtype=np.float64).reshape(n_regimes, s.shape[1]).copy()
    else:
        rng = np.random.default_rng(seed)
        centroids = s[rng.choice(s.shape[0], size=n_regimes, replace=False)].copy()
    for _ in range(iterations):
        labels = np.argmin(((s[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
        for k in range(n_regimes):
            if (labels == k).any():
                centroids[k] = s[labels == k].mean(axis=0)
    labels = np.argmin(((s[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    means, scales = [], []
    for k in range(n_regimes):
        stats = fit_norm_stats(v[labels == k])
        means.append(stats.mean)
        scales.append(stats.scale)
    return RegimeNorm(
        settings=tuple(setting_names),
        centroids=_tuples(centroids.tolist()),
        mean=tuple(means),
        scale=tuple(scales),
    )


def _lists(rows: Sequence[Sequence[float]]) -> list[list[float]]:
    return [list(map(float, r)) for r in rows]


def _tuples(rows: Sequence[Sequence[float]]) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(x) for x in r) for r in rows)

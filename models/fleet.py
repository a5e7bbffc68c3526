"""A user's own fleet: defaults from the data, checks, the held-out split, scoring windows.

``prognos train --data RECORDING`` and ``prognos evaluate --model M --data RECORDING`` read
the recording and its event log (the column options of ``prognos replay``; that part lives
in ``deploy``, which may use ``ingest``) into a :class:`models.data.Recording` with an
:class:`models.labels.EventLog`, then call this module, which needs only pandas and numpy:

* :func:`profile` measures the data: sampling period per device, history, runs to failure;
* :func:`plan_training` checks it and chooses what the user left open, each choice with
  its reason (``training.json`` and the model card record them):

  ==================  ========================================================================
  choice              default
  ==================  ========================================================================
  window W            the median run to failure / 40, rounded down to a round duration, but
                      never shorter than the sampling period of 90% of the devices
  statistics          mean only when a window holds about one reading (std and slope would
                      be 0, min, max and last the mean), else all six
  horizon H           15% of the median run to failure (30 of C-MAPSS's ~200 cycles), at
                      least 2 windows
  sequence length K   25% of the median run to failure, 2 to 10 windows
  phases              readings per window, at most 5 (more alignments repeat the same windows)
  log scale           ``log1p`` for non-negative sensors whose skewness is above 5 (counters
                      such as reallocated sectors: 0, 3, 64600), when there are no regimes
  regimes             ``auto``: k-means on the standardised settings; the fewest clusters
                      (2 to 8) that leave at most 1% of the settings' variance, which one
                      more cluster does not halve, else one
  sensors             every mapped sensor but those without a value or constant (up to
                      rounding) in every regime
  test devices        20% of the failed and 20% of the other devices, drawn with the seed
  ==================  ========================================================================

* :func:`score_windows` scores every window the stream job would score (the device's
  last K non-empty windows, the stream's alignment) with the exported model, and labels
  each from the event log; the alert policy and the event table are applied by the
  caller (``deploy``, with ``stream.alerts``) and :func:`models.events.event_metrics`;
* :data:`RULES` holds the simple rule baselines a report shows beside the model where
  the data has their sensors (for disks, Backblaze's own: reallocated or pending sectors
  above zero).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.data import Recording, window_features
from models.durations import format_duration, nice_ceil, nice_floor
from models.errors import DataError
from models.features import STATISTICS, FeatureSpec, NormStats, normalise
from models.labels import label_sequences, runs, seen_of, spans_of, stream_sequences

logger = logging.getLogger(__name__)

__all__ = [
    "RULES",
    "DataProfile",
    "FleetOptions",
    "Rule",
    "ScoredWindows",
    "TrainingPlan",
    "choose_regimes",
    "constant_sensors",
    "plan_training",
    "profile",
    "rule_risk",
    "score_windows",
    "split_devices",
]

FloatArray = npt.NDArray[np.float64]

#: Share of the median run to failure used for the horizon, and for the sequence.
HORIZON_SHARE = 0.15
HISTORY_SHARE = 0.25
#: Windows per median run to failure.
WINDOWS_PER_RUN = 40


@dataclass(frozen=True)
class FleetOptions:
    """What the user chose (None: choose from the data).

    Attributes:
        window_s: Window length W, seconds.
        horizon_s: Label horizon, seconds (rounded to whole windows).
        sequence_windows: Sequence length K in windows ...
        sequence_s: ... or as a duration (rounded to whole windows).
        statistics: Statistics per sensor.
        regimes: ``"auto"`` or a number of operating regimes.
        test_fraction: Share of devices held out for evaluation (failed and other
            devices alike).
        seed: Seed of the split and of the regimes' k-means.
        phases: Window alignments for training.
        log_scale: ``"auto"`` (heavy-tailed non-negative sensors, when there are no
            regimes), ``"none"``, or the sensors to read through ``log1p``.
    """

    window_s: float | None = None
    horizon_s: float | None = None
    sequence_windows: int | None = None
    sequence_s: float | None = None
    statistics: tuple[str, ...] | None = None
    regimes: str | int = "auto"
    test_fraction: float = 0.2
    seed: int = 7
    phases: int | None = None
    log_scale: str | tuple[str, ...] = "auto"


#: Skewness above which a non-negative sensor is read through log1p (``log_scale="auto"``).
HEAVY_TAIL_SKEW = 5.0


@dataclass(frozen=True)
class DataProfile:
    """What the data says about itself.

    Attributes:
        devices: Devices with at least one reading.
        readings: Readings per device.
        spans: Device -> (first, last) reading time.
        periods: Median time between consecutive readings, per device with two or more.
        run_lengths: Observed length of each run that ended in a failure (from the device's
            first reading or the renewal before).
        failures_in_data: Failures at or after their device's first reading.
    """

    devices: tuple[str, ...]
    readings: Mapping[str, int]
    spans: Mapping[str, tuple[float, float]]
    periods: Mapping[str, float]
    run_lengths: tuple[float, ...]
    failures_in_data: int

    @property
    def period(self) -> float:
        """The median sampling period over devices."""
        return float(np.median(list(self.periods.values())))

    @property
    def period_p90(self) -> float:
        """The sampling period of the slowest 10% of devices."""
        return float(np.quantile(list(self.periods.values()), 0.9))

    @property
    def longest_history(self) -> float:
        """The longest time any device was observed."""
        return max(b - a for a, b in self.spans.values())

    @property
    def median_run(self) -> float | None:
        """The median observed run to failure (None without failures)."""
        return float(np.median(self.run_lengths)) if self.run_lengths else None


def profile(recording: Recording) -> DataProfile:
    """Measure ``recording`` (see :class:`DataProfile`).

    Raises:
        DataError: The recording has no readings.
    """
    frame = recording.readings
    if frame.empty:
        raise DataError(f"{recording.name}: no readings")
    spans = spans_of(frame)
    counts = frame.groupby("device_id").size()
    diffs = frame.groupby("device_id")["event_time"].diff()
    positive = frame.assign(_d=diffs)[diffs > 0]
    periods = positive.groupby("device_id")["_d"].median()
    run_lengths: list[float] = []
    failures_in_data = 0
    if recording.events is not None:
        for run in runs(spans, recording.events):
            if run.reason == "failure":
                failures_in_data += 1
                run_lengths.append(run.seconds)
    return DataProfile(
        devices=tuple(sorted(spans)),
        readings={str(d): int(n) for d, n in counts.items()},
        spans=spans,
        periods={str(d): float(p) for d, p in periods.items()},
        run_lengths=tuple(run_lengths),
        failures_in_data=failures_in_data,
    )


@dataclass(frozen=True)
class TrainingPlan:
    """What :func:`plan_training` chose, with the reasons.

    Attributes:
        spec: The feature spec (sensors, W, K, H, statistics).
        phases: Window alignments for training.
        regimes: Operating regimes to normalise per (1: none).
        regime_centroids: Their centres, to start the regimes' k-means from.
        train_devices: Devices to train on.
        test_devices: Devices held out (``split.json``).
        choices: Choice -> ``{"value": ..., "reason": ...}``.
        notes: What the user should know (dropped sensors, sparse devices...).
    """

    spec: FeatureSpec
    phases: int
    regimes: int
    regime_centroids: tuple[tuple[float, ...], ...] | None
    train_devices: tuple[str, ...]
    test_devices: tuple[str, ...]
    choices: Mapping[str, Mapping[str, Any]]
    notes: tuple[str, ...] = ()


def _windows_of(seconds: float, window: float) -> int:
    return max(1, round(seconds / window))


def plan_training(
    recording: Recording, options: FleetOptions = FleetOptions(), *, name: str = "fleet"
) -> TrainingPlan:
    """Check a recording for training and choose W, K, H, statistics, regimes and the split.

    Args:
        recording: The readings with their event log.
        options: What the user fixed.
        name: The spec's name (model versions start with it).

    Raises:
        DataError: The recording cannot teach failure risk: one reading per device, no
            failure inside the recorded time, a horizon or sequence longer than every
            device's history, no sensor that varies, too few devices. The message names
            the file, the field and a value computed from the data where one fits.
    """
    where = recording.name
    notes: list[str] = []
    choices: dict[str, dict[str, Any]] = {}
    prof = profile(recording)
    single = [d for d, n in prof.readings.items() if n < 2]
    if len(single) == len(prof.devices):
        raise DataError(
            f"{where}: every device has a single reading ({len(single):,} devices), so there is "
            "no history to learn from; check that the device column names the machine (not the "
            "reading) and the time column its time (--device-column, --time-column)"
        )
    if single:
        notes.append(
            f"{len(single):,} device(s) have a single reading (e.g. {', '.join(single[:3])}): "
            "they form no sequence and teach nothing"
        )
    if recording.events is None or recording.events.n_failures == 0:
        raise DataError(
            f"{where}: no failures to learn from; give the failure log (--failures FILE, one "
            "row per failure) or the column that flags a failure (--failure-column COL)"
        )
    if prof.failures_in_data == 0:
        raise DataError(
            f"{where}: none of the {recording.events.n_failures} failures falls within its "
            "device's recorded time; check the log's device and time columns "
            "(--events-device-column, --events-time-column) and its time zone"
        )
    train, test = split_devices(
        prof.devices,
        {d for d, ts in recording.events.failures.items() if ts},
        options.test_fraction,
        options.seed,
    )
    choices["test_devices"] = {
        "value": len(test),
        "reason": f"{options.test_fraction:.0%} of the failed and {options.test_fraction:.0%} "
        f"of the other devices, drawn with seed {options.seed} (split.json)",
    }
    train_rec = recording.restrict(train)
    tprof = profile(train_rec)
    run = tprof.median_run or prof.median_run
    assert run is not None
    period, slow = prof.period, prof.period_p90
    if slow > 2 * period:
        notes.append(
            f"mixed sampling: half the devices report every {format_duration(period)} or "
            f"faster, 10% every {format_duration(slow)} or slower; windows are sized for the "
            "slower ones"
        )

    # Window W.
    if options.window_s is not None:
        w = options.window_s
        choices["window"] = {"value": format_duration(w), "reason": "--window"}
        if w < period:
            notes.append(
                f"--window {format_duration(w)} is shorter than the median sampling period "
                f"({format_duration(period)}): many windows are empty"
            )
    else:
        target = run / WINDOWS_PER_RUN
        if nice_floor(target) >= slow:
            w = nice_floor(target)
            reason = (
                f"the median run to failure ({format_duration(run)}) / {WINDOWS_PER_RUN}, "
                "rounded down"
            )
        else:
            w = nice_ceil(slow)
            reason = (
                f"the sampling period of 90% of the devices ({format_duration(slow)}), rounded "
                f"up: the median run to failure ({format_duration(run)}) / {WINDOWS_PER_RUN} "
                "is shorter"
            )
        choices["window"] = {"value": format_duration(w), "reason": reason}
    per_window = w / period

    # Statistics.
    if options.statistics is not None:
        statistics = options.statistics
        choices["statistics"] = {"value": list(statistics), "reason": "--statistics"}
    elif per_window < 1.5:
        statistics = ("mean",)
        choices["statistics"] = {
            "value": ["mean"],
            "reason": f"about one reading per window ({per_window:.2g}): std and slope would be "
            "0, and min, max and last the mean",
        }
    else:
        statistics = STATISTICS
        choices["statistics"] = {
            "value": list(statistics),
            "reason": f"{per_window:.3g} readings per window",
        }

    # Horizon H.
    if options.horizon_s is not None:
        if options.horizon_s > prof.longest_history:
            suggest = nice_floor(max(HORIZON_SHARE * run, 2 * w))
            raise DataError(
                f"{where}: --horizon {format_duration(options.horizon_s)} is longer than every "
                f"device's history (the longest is {format_duration(prof.longest_history)}); "
                f"no label could be known. Try --horizon {format_duration(suggest)} "
                f"({HORIZON_SHARE:.0%} of the median run to failure, "
                f"{format_duration(run)})"
            )
        h = _windows_of(options.horizon_s, w)
        reason = "--horizon"
        if abs(h * w - options.horizon_s) > 1e-6 * w:
            reason += f", rounded to {h} whole windows"
        choices["horizon"] = {"value": format_duration(h * w), "reason": reason}
    else:
        h = max(2, _windows_of(HORIZON_SHARE * run, w))
        choices["horizon"] = {
            "value": format_duration(h * w),
            "reason": f"{HORIZON_SHARE:.0%} of the median run to failure "
            f"({format_duration(run)}), at least 2 windows",
        }

    # Sequence length K.
    if options.sequence_windows is not None or options.sequence_s is not None:
        if options.sequence_windows is not None:
            k = options.sequence_windows
            reason = "--sequence-length"
        else:
            assert options.sequence_s is not None
            k = _windows_of(options.sequence_s, w)
            reason = f"--sequence-length, {k} windows of {format_duration(w)}"
        if (k - 1) * w > prof.longest_history:
            suggest_k = int(np.clip(round(HISTORY_SHARE * run / w), 2, 10))
            raise DataError(
                f"{where}: --sequence-length of {k} windows ({format_duration(k * w)}) is longer "
                f"than every device's history (the longest is "
                f"{format_duration(prof.longest_history)}); try --sequence-length {suggest_k} "
                f"({format_duration(suggest_k * w)})"
            )
    else:
        k = int(np.clip(round(HISTORY_SHARE * run / w), 2, 10))
        reason = (
            f"{HISTORY_SHARE:.0%} of the median run to failure ({format_duration(run)}), "
            "2 to 10 windows"
        )
    choices["sequence_length"] = {"value": k, "seconds": k * w, "reason": reason}

    # Phases.
    if options.phases is not None:
        phases = options.phases
        choices["phases"] = {"value": phases, "reason": "--phases"}
    else:
        phases = int(np.clip(round(per_window), 1, 5))
        choices["phases"] = {
            "value": phases,
            "reason": f"{per_window:.3g} readings per window (more alignments than readings "
            "repeat the same windows), at most 5",
        }

    # Regimes, then the sensors that vary (within each regime).
    settings = train_rec.readings[list(recording.settings)].to_numpy(np.float64)
    if options.regimes == "auto":
        n_regimes, centroids, why = choose_regimes(settings, recording.settings, seed=options.seed)
    else:
        n_regimes, centroids, why = int(options.regimes), None, "--regimes"
        if n_regimes > 1 and not recording.settings:
            raise DataError(
                f"{where}: --regimes {n_regimes} needs setting columns (--settings COL,...)"
            )
    choices["regimes"] = {"value": n_regimes, "reason": why}
    labels = None
    if centroids is not None:
        c = np.asarray(centroids)
        labels = np.argmin(((settings[:, None, :] - c[None]) ** 2).sum(axis=2), axis=1)
    dropped = constant_sensors(train_rec, recording.sensors, labels)
    for sensor, why_dropped in dropped.items():
        notes.append(f"sensor {sensor!r} dropped: {why_dropped}")
    sensors = tuple(s for s in recording.sensors if s not in dropped)
    if not sensors:
        raise DataError(
            f"{where}: no sensor varies ({', '.join(recording.sensors)} are constant); map the "
            "columns that measure the machines with --sensors"
        )
    missing_on = _sensors_missing_on_devices(train_rec, sensors)
    for sensor, devices in missing_on.items():
        notes.append(
            f"sensor {sensor!r} has no value on {len(devices)} device(s) of {where} (e.g. "
            f"{', '.join(devices[:3])}): their windows read it as missing (the training mean); "
            "if it has another column name there, map it with --mapping"
        )
    transforms, why_log = _log_scale(train_rec, sensors, options.log_scale, n_regimes, where)
    choices["log_scale"] = {"value": [s for s, _ in transforms], "reason": why_log}
    spec = FeatureSpec(
        sensors=sensors,
        window_seconds=w,
        sequence_length=k,
        horizon_windows=h,
        statistics=statistics,
        name=name,
        transforms=transforms,
    )
    return TrainingPlan(
        spec=spec,
        phases=phases,
        regimes=n_regimes,
        regime_centroids=centroids,
        train_devices=tuple(train),
        test_devices=tuple(test),
        choices=choices,
        notes=tuple(notes),
    )


def _log_scale(
    recording: Recording,
    sensors: Sequence[str],
    option: str | tuple[str, ...],
    regimes: int,
    where: str,
) -> tuple[tuple[tuple[str, str], ...], str]:
    """The sensors to read through ``log1p``, and why."""
    if option == "none":
        return (), "--log-scale none"
    if not isinstance(option, str):
        unknown = [s for s in option if s not in sensors]
        if unknown:
            raise DataError(
                f"{where}: --log-scale names {', '.join(unknown)}, not among the sensors "
                f"({', '.join(sensors)})"
            )
        return tuple((s, "log1p") for s in option), "--log-scale"
    if regimes > 1:
        return (), "none: readings are standardised per regime first"
    chosen, why = [], []
    for sensor in sensors:
        v = recording.readings[sensor].to_numpy(np.float64)
        v = v[np.isfinite(v)]
        if v.size < 3 or v.min() < 0 or v.std() == 0:
            continue
        skew = float(((v - v.mean()) ** 3).mean() / v.std() ** 3)
        if skew > HEAVY_TAIL_SKEW:
            chosen.append(sensor)
            why.append(f"{sensor} {skew:.0f}")
    if not chosen:
        return (), f"no sensor is heavy-tailed (non-negative, skewness above {HEAVY_TAIL_SKEW:g})"
    return (
        tuple((s, "log1p") for s in chosen),
        f"heavy-tailed, non-negative (skewness {', '.join(why)}): read as log(1 + v)",
    )


def split_devices(
    devices: Sequence[str], failed: set[str], fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """A device-grouped split: ``fraction`` of the failed and of the other devices held out.

    >>> train, test = split_devices([f"d{i}" for i in range(10)], {"d1", "d2"}, 0.2, 7)
    >>> len(test), len([d for d in test if d in {"d1", "d2"}])  # 1 of 2 failed, 2 of 8 other
    (3, 1)

    Raises:
        DataError: ``fraction`` is not in [0, 1), or fewer than 5 devices would be left
            to train on.
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"--test-fraction {fraction}: give a share in [0, 1), e.g. 0.2")
    rng = np.random.default_rng(seed)
    test: list[str] = []
    for group in (sorted(d for d in devices if d in failed), sorted(set(devices) - failed)):
        n = round(fraction * len(group))
        if fraction > 0 and len(group) >= 2:
            n = max(1, n)
        test += [group[i] for i in rng.permutation(len(group))[:n]]
    held = set(test)
    train = [d for d in devices if d not in held]
    if len(train) < 5:
        raise DataError(
            f"{len(devices)} devices: {len(train)} left to train on after holding out "
            f"{len(test)}; need at least 5 (lower --test-fraction)"
        )
    return sorted(train), sorted(test)


def choose_regimes(
    settings: npt.ArrayLike,
    names: Sequence[str],
    *,
    seed: int = 7,
    max_regimes: int = 8,
    tolerance: float = 0.01,
    sample: int = 10_000,
) -> tuple[int, tuple[tuple[float, ...], ...] | None, str]:
    """How many discrete operating regimes the settings show, and their centres.

    k-means (k-means++ starts, 3 restarts) on the settings standardised column by column;
    the answer is the fewest clusters, 2 to ``max_regimes``, whose within-cluster variance is
    at most ``tolerance`` of the total and which one more cluster does not halve, else 1
    (no discrete regimes).

    Returns:
        ``(n, centroids or None, reason)``; centroids in the settings' own units.
    """
    s = np.asarray(settings, dtype=np.float64).reshape(-1, len(names)) if names else None
    if s is None or s.shape[1] == 0:
        return 1, None, "no setting columns"
    s = s[np.isfinite(s).all(axis=1)]
    if s.shape[0] < 2:
        return 1, None, "no complete settings to cluster"
    std = s.std(axis=0)
    varying = std > 1e-12 * np.maximum(1.0, np.abs(s.mean(axis=0)))
    if not varying.any():
        return 1, None, "the settings are constant"
    rng = np.random.default_rng(seed)
    if s.shape[0] > sample:
        s = s[rng.choice(s.shape[0], sample, replace=False)]
    z = np.zeros_like(s)
    z[:, varying] = (s[:, varying] - s[:, varying].mean(axis=0)) / std[varying]
    total = float(((z - z.mean(axis=0)) ** 2).sum())
    fits = {k: _kmeans(z, k, rng) for k in range(2, max_regimes + 2)}
    for k in range(2, max_regimes + 1):
        labels, _, inertia = fits[k]
        # Discrete regimes: k clusters leave little variance, and a k+1-th halves it no more
        # (it only splits the noise of one regime).
        if inertia <= tolerance * total and fits[k + 1][2] >= 0.5 * inertia:
            raw = np.asarray([s[labels == j].mean(axis=0) for j in range(k)])
            order = np.lexsort(raw.T[::-1])
            return (
                k,
                tuple(tuple(float(v) for v in raw[j]) for j in order),
                f"k-means on the settings: {k} clusters leave {inertia / total:.2g} of their "
                f"variance, {k + 1} no less than half that",
            )
    return (
        1,
        None,
        f"no discrete regimes: up to {max_regimes} k-means clusters of the settings leave more "
        f"than {tolerance:.0%} of their variance, or keep splitting it",
    )


def _kmeans(
    z: FloatArray, k: int, rng: np.random.Generator, restarts: int = 3, iterations: int = 40
) -> tuple[npt.NDArray[np.int64], FloatArray, float]:
    best: tuple[npt.NDArray[np.int64], FloatArray, float] | None = None
    for _ in range(restarts):
        centres = [z[rng.integers(len(z))]]
        for _ in range(1, k):  # k-means++: far points are likelier starts
            d = np.min(((z[:, None, :] - np.asarray(centres)[None]) ** 2).sum(axis=2), axis=1)
            p = d / d.sum() if d.sum() > 0 else None
            centres.append(z[rng.choice(len(z), p=p)])
        c = np.asarray(centres)
        for _ in range(iterations):
            labels = np.argmin(((z[:, None, :] - c[None]) ** 2).sum(axis=2), axis=1)
            new = np.asarray(
                [z[labels == j].mean(axis=0) if (labels == j).any() else c[j] for j in range(k)]
            )
            if np.allclose(new, c):
                break
            c = new
        labels = np.argmin(((z[:, None, :] - c[None]) ** 2).sum(axis=2), axis=1)
        inertia = float(((z - c[labels]) ** 2).sum())
        if best is None or inertia < best[2]:
            best = (labels.astype(np.int64), c, inertia)
    assert best is not None
    return best


def constant_sensors(
    recording: Recording, sensors: Sequence[str], regimes: npt.ArrayLike | None = None
) -> dict[str, str]:
    """Sensors that carry no information: no value at all, or constant in every regime.

    Constant means a spread within floating-point rounding (a standard deviation at most
    1e-9 of the values' size) in every regime (``regimes``: a regime label per reading, or
    None for one). A sensor that moves rarely (a counter that is mostly 0) or by little (a
    shaft speed of 2388 ± 0.3 rpm) is kept: small or rare changes can be the signal.

    Returns:
        Sensor -> why it is dropped.
    """
    frame = recording.readings
    labels = np.zeros(len(frame), dtype=np.int64) if regimes is None else np.asarray(regimes)
    out: dict[str, str] = {}
    for sensor in sensors:
        v = frame[sensor].to_numpy(np.float64)
        ok = np.isfinite(v)
        if not ok.any():
            out[sensor] = "no value in any reading"
            continue
        varies = False
        for r in np.unique(labels[ok]):
            x = v[ok & (labels == r)]
            if x.size > 1 and x.std() > 1e-9 * max(1.0, abs(float(x.mean()))):
                varies = True
                break
        if not varies:
            vmin, vmax = float(np.nanmin(v)), float(np.nanmax(v))
            if vmin == vmax:
                out[sensor] = f"constant ({vmin:g})"
            elif regimes is not None:
                out[sensor] = f"constant within each regime ({vmin:g} to {vmax:g} across them)"
            else:
                out[sensor] = f"constant up to rounding ({vmin!r} to {vmax!r})"
    return out


def _sensors_missing_on_devices(
    recording: Recording, sensors: Sequence[str]
) -> dict[str, list[str]]:
    frame = recording.readings
    present = frame[list(sensors)].notna().groupby(frame["device_id"]).any()
    out = {}
    for sensor in sensors:
        lacking = present.index[~present[sensor]].astype(str).tolist()
        if lacking:
            out[sensor] = lacking
    return out


@dataclass(frozen=True)
class ScoredWindows:
    """Every window the stream job would score, with its risk and label, device by device.

    Attributes:
        device: Device per window (grouped by device, in time order within each).
        window_start: Window start (Unix seconds).
        window_end: Window end: when the stream closes it and may alert.
        t_end: Latest reading in the window (the label's scoring time).
        risk: The model's risk.
        y: 1 fails within the horizon, 0 does not, -1 unknown (censored).
        rul: Time to the next failure (inf when the run ends otherwise).
        spans: Device -> (first, last) reading time, for every device evaluated (also
            those with too short a history to be scored).
    """

    device: npt.NDArray[np.str_]
    window_start: FloatArray
    window_end: FloatArray
    t_end: FloatArray
    risk: FloatArray
    y: npt.NDArray[np.int64]
    rul: FloatArray
    spans: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.device.shape[0])


def score_windows(
    score: Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]],
    norm: NormStats,
    spec: FeatureSpec,
    recording: Recording,
    *,
    batch: int = 8192,
) -> ScoredWindows:
    """Score the stream job's sequences of ``recording`` and label them from its events.

    Args:
        score: The model: normalised ``[N, K, F]`` float32 -> risk ``[N]`` (e.g.
            :meth:`models.scorer.Scorer.score`).
        norm: The model's normalisation (and regimes).
        spec: The model's spec.
        recording: The devices to score, with their event log.
        batch: Sequences per call of ``score``.

    Raises:
        DataError: A sensor or setting the model reads is not in the recording.
    """
    missing = [s for s in spec.sensors if s not in recording.readings.columns]
    if missing:
        raise DataError(
            f"{recording.name}: the model reads sensor(s) {', '.join(missing)}, which the "
            f"recording does not have (it has {', '.join(recording.sensors)}); map them with "
            "--sensors NAME=COLUMN"
        )
    if norm.regimes is not None:
        lacking = [s for s in norm.regimes.settings if s not in recording.readings.columns]
        if lacking:
            raise DataError(
                f"{recording.name}: the model normalises per operating regime of setting(s) "
                f"{', '.join(lacking)}, which the recording does not have; map them with "
                "--settings NAME=COLUMN"
            )
    spans = spans_of(recording.readings)
    windows = window_features(recording, spec, regimes=norm.regimes)
    seqs = stream_sequences(windows, spec, spec.origin_seconds)
    risk = np.empty(len(seqs), dtype=np.float64)
    for start in range(0, len(seqs), batch):
        x = normalise(seqs.x[start : start + batch], norm)
        risk[start : start + batch] = np.asarray(score(x), dtype=np.float64)
    if recording.events is not None:
        y, rul = label_sequences(seqs, recording.events, spec.horizon_seconds, seen_of(spans))
    else:
        y, rul = np.full(len(seqs), -1, dtype=np.int64), np.full(len(seqs), np.inf)
    return ScoredWindows(
        device=seqs.device,
        window_start=seqs.window_end - spec.window_seconds,
        window_end=seqs.window_end,
        t_end=seqs.t_end,
        risk=risk,
        y=y,
        rul=rul,
        spans=spans,
    )


@dataclass(frozen=True)
class Rule:
    """A rule baseline: alert when any reading of a window meets ``test``.

    Attributes:
        name: Short id (report key).
        sensors: The sensors it reads; it applies where the data has all of them.
        description: What it says, for reports.
        source: Where the rule comes from.
        test: Values ``[n, len(sensors)]`` -> bool per reading.
    """

    name: str
    sensors: tuple[str, ...]
    description: str
    source: str
    test: Callable[[FloatArray], npt.NDArray[np.bool_]]


def _any_above_zero(values: FloatArray) -> npt.NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):
        hit: npt.NDArray[np.bool_] = np.nan_to_num(values, nan=0.0).max(axis=1) > 0
    return hit


#: Rule baselines, by name.
RULES: Mapping[str, Rule] = {
    "backblaze-smart-5-197": Rule(
        name="backblaze-smart-5-197",
        sensors=("smart_5_raw", "smart_197_raw"),
        description="alert when the reallocated (SMART 5) or current pending (SMART 197) "
        "sector count is above zero",
        source="Backblaze's Drive Stats: reallocated and pending sectors above zero mark a "
        "drive at risk; data: Hard drive data and stats, Backblaze, Inc.",
        test=_any_above_zero,
    ),
}


def rule_risk(
    rule: Rule, recording: Recording, scored: ScoredWindows, spec: FeatureSpec
) -> FloatArray:
    """The rule's "risk" (1 or 0) on the windows of ``scored``: 1 when a reading meets it.

    The windows are the model's (same devices, same alignment, the same K-window warm-up),
    so the two event tables compare like with like.
    """
    frame = recording.readings
    t = frame["event_time"].to_numpy(np.float64)
    index = np.floor((t - spec.origin_seconds) / spec.window_seconds).astype(np.int64)
    hit = rule.test(frame[list(rule.sensors)].to_numpy(np.float64))
    flagged = set(
        zip(frame["device_id"].to_numpy()[hit].tolist(), index[hit].tolist(), strict=True)
    )
    w_index = np.round((scored.window_start - spec.origin_seconds) / spec.window_seconds).astype(
        np.int64
    )
    return np.asarray(
        [
            1.0 if (str(d), int(j)) in flagged else 0.0
            for d, j in zip(scored.device, w_index, strict=True)
        ],
        dtype=np.float64,
    )


def applicable_rules(sensors: Sequence[str]) -> list[Rule]:
    """The rules whose sensors are all in ``sensors``."""
    have = set(sensors)
    return [r for r in RULES.values() if set(r.sensors) <= have]

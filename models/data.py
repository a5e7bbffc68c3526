"""Training and evaluation data: loaders, windowing and labelled sequences.

Loaders return a :class:`Recording`, a tidy table of readings (``device_id``, ``event_time``
in Unix seconds, one column per sensor and operating setting) with each device's failure
time where it is known. :func:`window_features` cuts it into windows with
:func:`models.features.compute_window_features` (the one feature definition), and
:func:`make_sequences` turns windows into labelled model inputs ``[N, K, F]``.

Sources:

* NASA C-MAPSS text files (:func:`load_cmapss`): 26 whitespace-separated columns; a device
  is ``FD001-<unit:03d>`` and cycle ``c`` happens at ``base_time + c * cycle_seconds``, as
  in the replay adapter. A training engine fails at its last cycle; a test engine fails
  ``RUL_FD00x.txt[i]`` cycles after its last one.
* Simulator recordings (:func:`load_sim_recording`): a ``readings.parquet`` (or any Parquet
  file) with ``device_id``, ``event_time`` and one numeric column per sensor, or a
  ``sensors`` map column. Failure times come from a ``failures.parquet`` beside it
  (``device_id``, ``failure_time``) or from a boolean ``failure``/``failed`` column in the
  readings (the first true reading is the failure). A device with no failure is censored:
  its windows are labelled 0 only where it was seen to survive the whole horizon.

pandas and pyarrow are needed here (training, evaluation), never by the scorer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from models.errors import DataError
from models.features import FeatureSpec, RegimeNorm, compute_window_features, normalise_readings

if TYPE_CHECKING:
    import pandas as pd

    from models.labels import EventLog

logger = logging.getLogger(__name__)

__all__ = [
    "CMAPSS_SENSORS",
    "CMAPSS_SETTINGS",
    "Recording",
    "SequenceSet",
    "WindowTable",
    "check_trainable",
    "cmapss_spec",
    "load_cmapss",
    "load_data",
    "load_sim_recording",
    "make_sequences",
    "window_features",
]

CMAPSS_SETTINGS: tuple[str, ...] = ("setting1", "setting2", "setting3")
CMAPSS_SENSORS: tuple[str, ...] = tuple(f"s{i}" for i in range(1, 22))
_CMAPSS_COLUMNS = ("unit", "cycle", *CMAPSS_SETTINGS, *CMAPSS_SENSORS)
#: 2024-01-01T00:00:00Z, the default replay base time.
DEFAULT_BASE_TIME = 1_704_067_200.0


@dataclass(frozen=True)
class Recording:
    """Readings of a fleet of devices, with failure times where known.

    Attributes:
        name: Source label for reports (e.g. ``"cmapss:FD001/train"``).
        readings: One row per reading: ``device_id`` (str), ``event_time`` (float Unix
            seconds), sensor and setting columns (float, NaN = missing); sorted by device
            and time.
        failure_times: Device -> failure time (Unix seconds); absent devices are censored.
        data_sha256: SHA-256 over the source files' bytes (identifies the training data).
        step_seconds: Nominal time between a device's readings (e.g. one C-MAPSS cycle).
        settings: Operating-setting columns present in ``readings``.
        events: Every failure and maintenance of each device (a user's recording with its
            event log); when set, sequences are labelled from it (:mod:`models.labels`)
            and ``failure_times`` holds each device's first failure only.
    """

    name: str
    readings: pd.DataFrame
    failure_times: Mapping[str, float]
    data_sha256: str
    step_seconds: float | None = None
    settings: tuple[str, ...] = ()
    events: EventLog | None = None

    @property
    def devices(self) -> list[str]:
        """Device ids, sorted."""
        return sorted(self.readings["device_id"].unique().tolist())

    @property
    def sensors(self) -> tuple[str, ...]:
        """Sensor columns present in ``readings``."""
        skip = {"device_id", "event_time", "seq", *self.settings}
        return tuple(c for c in self.readings.columns if c not in skip)

    def restrict(self, devices: Iterable[str], name: str | None = None) -> Recording:
        """The same recording with only ``devices`` (e.g. a train or test split)."""
        keep = set(devices)
        return Recording(
            name=name or self.name,
            readings=self.readings[self.readings["device_id"].isin(keep)].reset_index(drop=True),
            failure_times={d: t for d, t in self.failure_times.items() if d in keep},
            data_sha256=self.data_sha256,
            step_seconds=self.step_seconds,
            settings=self.settings,
            events=None if self.events is None else self.events.restrict(keep),
        )


@dataclass(frozen=True)
class WindowTable:
    """Window feature vectors of many devices (one row per non-empty window).

    Attributes:
        device: Device id of each window, ``[M]``.
        index: Window index ``j`` of each window (see :meth:`FeatureSpec.window_index`).
        t_first: Event time of the window's earliest reading, ``[M]``.
        t_last: Event time of the window's latest reading, ``[M]`` (the scoring time).
        features: Raw features ``[M, F]`` in ``spec.features`` order (NaN = missing).
    """

    device: npt.NDArray[np.str_]
    index: npt.NDArray[np.int64]
    t_first: npt.NDArray[np.float64]
    t_last: npt.NDArray[np.float64]
    features: npt.NDArray[np.float64]


@dataclass(frozen=True)
class SequenceSet:
    """Labelled model inputs.

    Attributes:
        x: Raw features ``[N, K, F]`` (NaN where a window or statistic is missing).
        y: 1 where the device fails within the horizon of the sequence's last window.
        rul_seconds: Time from the last window's latest reading to failure (inf if censored).
        device: Device id per sequence.
        t_end: Scoring time (latest reading of the last window) per sequence.
    """

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    rul_seconds: npt.NDArray[np.float64]
    device: npt.NDArray[np.str_]
    t_end: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, mask: npt.NDArray[np.bool_]) -> SequenceSet:
        """The sequences where ``mask`` is true."""
        return SequenceSet(
            self.x[mask], self.y[mask], self.rul_seconds[mask], self.device[mask], self.t_end[mask]
        )

    @staticmethod
    def concat(parts: Iterable[SequenceSet]) -> SequenceSet:
        """Concatenate sets (e.g. the window phases of one recording)."""
        ps = list(parts)
        return SequenceSet(
            np.concatenate([p.x for p in ps]),
            np.concatenate([p.y for p in ps]),
            np.concatenate([p.rul_seconds for p in ps]),
            np.concatenate([p.device for p in ps]),
            np.concatenate([p.t_end for p in ps]),
        )


def _sha256_files(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _read_cmapss_table(path: Path) -> npt.NDArray[np.float64]:
    if not path.is_file():
        raise DataError(f"C-MAPSS file not found: {path} (expected the NASA text files there)")
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: not a C-MAPSS table of numbers ({exc})") from exc
    if table.shape[1] != len(_CMAPSS_COLUMNS):
        raise DataError(
            f"{path}: {table.shape[1]} columns per row; a C-MAPSS file has 26 "
            "(unit, cycle, 3 settings, 21 sensors), separated by whitespace"
        )
    return table


def load_cmapss(
    directory: str | Path,
    subset: str = "FD001",
    split: str = "train",
    *,
    cycle_seconds: float = 600.0,
    base_time: float = DEFAULT_BASE_TIME,
) -> Recording:
    """Load a C-MAPSS subset from the NASA text files, in place.

    Args:
        directory: Folder with ``train_FD001.txt``, ``test_FD001.txt``, ``RUL_FD001.txt``.
        subset: ``"FD001"`` .. ``"FD004"``.
        split: ``"train"`` (run to failure) or ``"test"`` (truncated; RUL from the RUL file).
        cycle_seconds: Event-time length of one cycle (the replay default is 10 minutes).
        base_time: Unix time of cycle 0.

    Raises:
        DataError: A file is missing or malformed, or the RUL file does not match.
    """
    directory = Path(directory)
    if split not in ("train", "test"):
        raise DataError(f"C-MAPSS split {split!r}: use 'train' or 'test'")
    data_path = directory / f"{split}_{subset}.txt"
    table = _read_cmapss_table(data_path)
    files = [data_path]
    import pandas as pd

    frame = pd.DataFrame(table, columns=list(_CMAPSS_COLUMNS))
    units = frame["unit"].astype(np.int64)
    cycles = frame["cycle"].astype(np.int64)
    frame.insert(0, "device_id", [f"{subset}-{u:03d}" for u in units])
    frame.insert(1, "event_time", base_time + cycles.to_numpy(np.float64) * cycle_seconds)
    frame.insert(2, "seq", cycles)
    # ``cycle`` stays, as a sensor: the engine's age, as the replay publishes it.
    frame = frame.drop(columns=["unit"]).sort_values(["device_id", "event_time"])
    last = frame.groupby("device_id")["event_time"].max()
    if split == "train":
        failures = {str(d): float(t) for d, t in last.items()}
    else:
        rul_path = directory / f"RUL_{subset}.txt"
        files.append(rul_path)
        if not rul_path.is_file():
            raise DataError(f"C-MAPSS RUL file not found: {rul_path}")
        rul = np.loadtxt(rul_path, dtype=np.float64, ndmin=1)
        if rul.shape[0] != last.shape[0]:
            raise DataError(
                f"{rul_path}: {rul.shape[0]} values for {last.shape[0]} test engines; "
                "expected one line per engine of the test file"
            )
        failures = {
            str(d): float(t) + float(r) * cycle_seconds
            for (d, t), r in zip(last.items(), rul, strict=True)
        }
    return Recording(
        name=f"cmapss:{subset}/{split}",
        readings=frame.reset_index(drop=True),
        failure_times=failures,
        data_sha256=_sha256_files(files),
        step_seconds=cycle_seconds,
        settings=CMAPSS_SETTINGS,
    )


def _to_seconds(column: pd.Series) -> npt.NDArray[np.float64]:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column):
        if getattr(column.dt, "tz", None) is not None:
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        ns = column.astype("datetime64[ns]").astype(np.int64).to_numpy()
        seconds: npt.NDArray[np.float64] = ns.astype(np.float64) / 1e9
        return seconds
    if pd.api.types.is_numeric_dtype(column):
        numeric: npt.NDArray[np.float64] = column.to_numpy(np.float64)
        return numeric
    raise DataError(f"event_time column has type {column.dtype}; use a timestamp or seconds")


def load_sim_recording(path: str | Path) -> Recording:
    """Load a simulator recording (tidy Parquet readings, failures where known).

    Args:
        path: A folder holding ``readings.parquet`` (and optionally ``failures.parquet``),
            or a Parquet file of readings.

    Raises:
        DataError: The file is missing, lacks ``device_id``/``event_time``, has no numeric
            sensor column, or no device fails.
    """
    import pandas as pd

    path = Path(path)
    readings_path = path / "readings.parquet" if path.is_dir() else path
    if not readings_path.exists():
        raise DataError(f"simulator recording not found: {readings_path}")
    try:
        frame = pd.read_parquet(readings_path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(f"{readings_path}: not a readable Parquet file ({exc})") from exc
    files = [readings_path] if readings_path.is_file() else sorted(readings_path.rglob("*.parquet"))
    missing = [c for c in ("device_id", "event_time") if c not in frame.columns]
    if missing:
        raise DataError(f"{readings_path}: missing column(s) {missing}; need device_id, event_time")
    if "sensors" in frame.columns:  # a map column: list of (key, value) pairs or dicts
        expanded = pd.DataFrame([dict(m) if m is not None else {} for m in frame["sensors"]])
        frame = pd.concat(
            [
                frame.drop(columns=["sensors"]).reset_index(drop=True),
                expanded.reset_index(drop=True),
            ],
            axis=1,
        )
    frame["device_id"] = frame["device_id"].astype(str)
    frame["event_time"] = _to_seconds(frame["event_time"])
    failures: dict[str, float] = {}
    failures_path = path / "failures.parquet" if path.is_dir() else None
    flag = next((c for c in ("failure", "failed") if c in frame.columns), None)
    if failures_path is not None and failures_path.exists():
        files.append(failures_path)
        ft = pd.read_parquet(failures_path)
        if not {"device_id", "failure_time"} <= set(ft.columns):
            raise DataError(f"{failures_path}: need columns device_id, failure_time")
        for d, t in zip(ft["device_id"].astype(str), _to_seconds(ft["failure_time"]), strict=True):
            failures[d] = min(failures.get(d, np.inf), float(t))
    elif flag is not None:
        hit = frame[frame[flag].astype(bool)]
        failures = {
            str(d): float(t) for d, t in hit.groupby("device_id")["event_time"].min().items()
        }
    if flag is not None:
        frame = frame.drop(columns=[flag])
    keep = ["device_id", "event_time"] + (["seq"] if "seq" in frame.columns else [])
    sensors = [
        c for c in frame.columns if c not in keep and pd.api.types.is_numeric_dtype(frame[c])
    ]
    if not sensors:
        raise DataError(f"{readings_path}: no numeric sensor column besides device_id/event_time")
    frame = frame[keep + sensors].astype({s: np.float64 for s in sensors})
    frame = frame.sort_values(["device_id", "event_time"]).reset_index(drop=True)
    steps = frame.groupby("device_id")["event_time"].diff().dropna()
    return Recording(
        name=f"sim:{path}",
        readings=frame,
        failure_times=failures,
        data_sha256=_sha256_files(files),
        step_seconds=float(steps.median()) if len(steps) else None,
    )


def load_data(source: str, *, split: str = "train", cycle_seconds: float = 600.0) -> Recording:
    """Load ``cmapss:DIR[#FD00x]`` or ``sim:PATH`` (the ``--data`` argument of the CLI)."""
    kind, _, where = source.partition(":")
    if kind == "cmapss" and where:
        directory, _, subset = where.partition("#")
        return load_cmapss(directory, subset or "FD001", split, cycle_seconds=cycle_seconds)
    if kind == "sim" and where:
        if split != "train":
            raise DataError("simulator recordings have no separate test split; pass the test path")
        return load_sim_recording(where)
    raise DataError(
        f"--data {source!r}: use cmapss:DIR (e.g. cmapss:../shared/data/cmapss) "
        "or sim:PATH (a simulator recording)"
    )


def window_features(
    recording: Recording,
    spec: FeatureSpec,
    *,
    origin_seconds: float | None = None,
    align_end: bool = False,
    regimes: RegimeNorm | None = None,
) -> WindowTable:
    """Cut each device's readings into windows and compute their features.

    Args:
        recording: The readings.
        spec: The feature spec (sensors, statistics, window length).
        origin_seconds: Window alignment; ``spec.origin_seconds`` when None.
        align_end: Align each device's windows so its last window ends just after its last
            reading (the evaluation protocol's "last window"); overrides ``origin_seconds``.
        regimes: Per-regime reading standardisation to apply first (several regimes).

    Raises:
        DataError: A sensor of the spec is not in the recording.
    """
    missing = [s for s in spec.sensors if s not in recording.readings.columns]
    if missing:
        raise DataError(
            f"{recording.name}: sensor(s) {missing} of spec {spec.name!r} are not in the "
            f"readings (have {list(recording.sensors)})"
        )
    frame = recording.readings
    origin = spec.origin_seconds if origin_seconds is None else origin_seconds
    w = spec.window_seconds
    devices, indices, t_firsts, t_lasts, rows = [], [], [], [], []
    for device, group in frame.groupby("device_id", sort=True):
        t = group["event_time"].to_numpy(np.float64)
        v = group[list(spec.sensors)].to_numpy(np.float64)
        if regimes is not None:
            v = normalise_readings(v, group[list(regimes.settings)].to_numpy(np.float64), regimes)
        o = (t.max() - w + 1e-3) if align_end else origin
        idx = np.floor((t - o) / w).astype(np.int64)
        bounds = np.flatnonzero(np.diff(idx)) + 1  # readings are sorted by time
        for sl_t, sl_v, sl_i in zip(
            np.split(t, bounds), np.split(v, bounds), np.split(idx, bounds), strict=True
        ):
            devices.append(str(device))
            indices.append(int(sl_i[0]))
            t_firsts.append(float(sl_t.min()))
            t_lasts.append(float(sl_t.max()))
            rows.append(compute_window_features(spec, sl_t, sl_v))
    if not rows:
        raise DataError(f"{recording.name}: no readings")
    return WindowTable(
        device=np.asarray(devices),
        index=np.asarray(indices, dtype=np.int64),
        t_first=np.asarray(t_firsts, dtype=np.float64),
        t_last=np.asarray(t_lasts, dtype=np.float64),
        features=np.vstack(rows),
    )


def make_sequences(
    windows: WindowTable,
    spec: FeatureSpec,
    failure_times: Mapping[str, float],
    *,
    end_times: Mapping[str, float] | None = None,
    min_windows: int | None = None,
    min_history_seconds: float = 0.0,
    last_only: bool = False,
) -> SequenceSet:
    """Stack each device's last K windows into labelled sequences.

    Windows a device skipped (no reading) are missing (NaN); a sequence needs at least
    ``min_windows`` (default K) windows of history, counting from the device's first.

    Args:
        windows: Window features of the devices.
        spec: Gives K and the horizon.
        failure_times: Device -> failure time; a device absent is censored.
        end_times: Device -> last time the device was seen working (censored devices);
            defaults to its last window's latest reading.
        min_windows: Windows of history a sequence needs (1..K); K by default.
        min_history_seconds: Time from the device's first reading to the sequence's
            scoring time that a sequence needs (e.g. 49 cycles for "at least 50 cycles").
        last_only: Keep only each device's last sequence (evaluation protocol).
    """
    k, h = spec.sequence_length, spec.horizon_seconds
    need = k if min_windows is None else max(1, min(k, min_windows))
    xs, ys, ruls, devs, tends = [], [], [], [], []
    order = np.lexsort((windows.index, windows.device))
    dev_sorted = windows.device[order]
    bounds = np.flatnonzero(dev_sorted[1:] != dev_sorted[:-1]) + 1
    for rows in np.split(order, bounds):
        device = str(windows.device[rows[0]])
        idx = windows.index[rows]
        span = int(idx[-1] - idx[0] + 1)
        dense = np.full((span + k - 1, windows.features.shape[1]), np.nan)
        dense[idx - idx[0] + k - 1] = windows.features[rows]
        positions = np.arange(len(rows)) if not last_only else np.array([len(rows) - 1])
        fail = failure_times.get(device)
        seen = (end_times or {}).get(device, float(windows.t_last[rows].max()))
        born = float(windows.t_first[rows].min())
        for p in positions:
            offset = int(idx[p] - idx[0])
            if offset + 1 < need:
                continue
            t_end = float(windows.t_last[rows[p]])
            if t_end - born < min_history_seconds:
                continue
            if fail is not None:
                rul = fail - t_end
                label = int(rul <= h)
            elif seen - t_end >= h:
                rul, label = np.inf, 0
            else:
                continue  # censored inside the horizon: the label is unknown
            xs.append(dense[offset : offset + k])
            ys.append(label)
            ruls.append(rul)
            devs.append(device)
            tends.append(t_end)
    f = windows.features.shape[1]
    return SequenceSet(
        x=np.stack(xs) if xs else np.empty((0, k, f)),
        y=np.asarray(ys, dtype=np.int64),
        rul_seconds=np.asarray(ruls, dtype=np.float64),
        device=np.asarray(devs),
        t_end=np.asarray(tends, dtype=np.float64),
    )


def check_trainable(sequences: SequenceSet, spec: FeatureSpec, source: str) -> None:
    """Refuse training data that cannot teach failure risk.

    Raises:
        DataError: No sequence, no positive (no failure within the horizon), only
            positives, or fewer than 5 devices.
    """
    positives = int(sequences.y.sum())
    devices = len(set(sequences.device.tolist()))
    if len(sequences) == 0:
        raise DataError(
            f"{source}: no sequence of K={spec.sequence_length} windows of "
            f"{spec.window_seconds:g} s; record longer histories or shorten the spec"
        )
    if positives == 0:
        raise DataError(
            f"{source}: the training set has no failures: no sequence ends within "
            f"{spec.horizon_seconds:g} s of a failure ({len(sequences)} sequences, {devices} "
            "devices); record devices until they fail, or give their failure times "
            "(failures.parquet or a 'failure' column)"
        )
    if positives == len(sequences):
        raise DataError(f"{source}: every sequence is a failure; need healthy history too")
    if devices < 5:
        raise DataError(
            f"{source}: {devices} device(s); need at least 5 for a device-grouped split"
        )


def describe(sequences: SequenceSet) -> dict[str, Any]:
    """Counts for reports: sequences, devices, positives."""
    return {
        "sequences": len(sequences),
        "devices": len(set(sequences.device.tolist())),
        "positives": int(sequences.y.sum()),
    }


def cmapss_spec(
    *,
    cycle_seconds: float = 600.0,
    window_cycles: int = 5,
    sequence_length: int = 10,
    horizon_cycles: int = 30,
    subset: str = "FD001",
    statistics: tuple[str, ...] | None = None,
) -> FeatureSpec:
    """The C-MAPSS feature spec: W=5 cycles, K=10 windows (50 cycles), H=6 windows (30).

    Raises:
        DataError: ``horizon_cycles`` is not a whole number of windows.
    """
    from models.features import FD001_SENSORS, STATISTICS

    if horizon_cycles % window_cycles:
        raise DataError(
            f"horizon {horizon_cycles} cycles is not a multiple of the {window_cycles}-cycle window"
        )
    return FeatureSpec(
        sensors=FD001_SENSORS,
        window_seconds=window_cycles * cycle_seconds,
        sequence_length=sequence_length,
        horizon_windows=horizon_cycles // window_cycles,
        statistics=statistics or STATISTICS,
        name=f"cmapss-{subset.lower()}",
    )

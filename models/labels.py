"""Labels from an event log: many failures per device, maintenance, right-censoring.

A device's life is cut into **runs**. A failure ends a run, and the next run starts after
it (the device was repaired); a maintenance ends one too when it renews the device
(:attr:`EventLog.maintenance_renews`, the default), else it is only recorded. The label of a
sequence scored at time ``t`` is "the device fails within the horizon ``H`` of ``t``":

* the next renewal at or after ``t`` is a failure at ``f``: label ``f - t <= H`` (the device
  was working until ``f``, so a 0 here is known);
* it is a maintenance at ``m``: 0 if ``m - t >= H`` (seen working through the horizon),
  else unknown: the maintenance ended the run before we could see;
* there is none (a device that never fails again, or never fails): 0 if the device was
  seen until at least ``t + H``, else unknown (right-censored: the end of the data).

Unknown labels are left out of training and of the window-level metrics: no positive is
invented and no negative is claimed inside the last horizon.

Sequences (:func:`stream_sequences`) are built as the stream job builds them
(:mod:`stream.sequence`): a device's last K **non-empty** windows, oldest first, emitted
once the device has K windows; a silent stretch does not break a sequence. Training on
these is training on what the model will be shown.

>>> log = EventLog.build(failures=[("m1", 100.0), ("m1", 250.0)], maintenance=[("m1", 180.0)])
>>> log.renewals("m1")
((100.0, 'failure'), (180.0, 'maintenance'), (250.0, 'failure'))
>>> y, rul = label_times(log, "m1", [60.0, 95.0, 150.0, 200.0, 300.0], horizon=30.0, seen=320.0)
>>> y.tolist()  # 300: nothing follows and only 20 s were seen: unknown
[0, 1, 0, 0, -1]
>>> rul.tolist()[:2]
[40.0, 5.0]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.data import SequenceSet, WindowTable
from models.features import FeatureSpec

logger = logging.getLogger(__name__)

__all__ = [
    "EventLog",
    "Run",
    "StreamSequences",
    "flag_failures",
    "known_sequences",
    "label_sequences",
    "label_times",
    "labelled_sequences",
    "runs",
    "seen_of",
    "spans_of",
    "stream_sequences",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EventLog:
    """Failures and maintenance of a fleet, in Unix seconds.

    Attributes:
        failures: Device -> its failure times, sorted.
        maintenance: Device -> its maintenance times, sorted.
        maintenance_renews: A maintenance ends a run (the device is as new after it).
    """

    failures: Mapping[str, tuple[float, ...]]
    maintenance: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    maintenance_renews: bool = True

    @classmethod
    def build(
        cls,
        failures: Iterable[tuple[str, float]],
        maintenance: Iterable[tuple[str, float]] = (),
        *,
        maintenance_renews: bool = True,
    ) -> EventLog:
        """An event log from ``(device, time)`` pairs (any order; duplicates count once)."""

        def group(pairs: Iterable[tuple[str, float]]) -> dict[str, tuple[float, ...]]:
            out: dict[str, set[float]] = {}
            for device, t in pairs:
                out.setdefault(str(device), set()).add(float(t))
            return {d: tuple(sorted(ts)) for d, ts in sorted(out.items())}

        return cls(group(failures), group(maintenance), maintenance_renews)

    @property
    def n_failures(self) -> int:
        """Failures in the log."""
        return sum(len(v) for v in self.failures.values())

    @property
    def devices(self) -> set[str]:
        """Devices named in the log."""
        return set(self.failures) | set(self.maintenance)

    def renewals(self, device: str) -> tuple[tuple[float, str], ...]:
        """The events that end a run of ``device``, in time order: ``(time, kind)``.

        ``kind`` is ``"failure"`` or ``"maintenance"`` (only when it renews); a failure
        sorts before a maintenance at the same time.
        """
        events = [(t, "failure") for t in self.failures.get(device, ())]
        if self.maintenance_renews:
            events += [(t, "maintenance") for t in self.maintenance.get(device, ())]
        return tuple(sorted(events, key=lambda e: (e[0], e[1] != "failure")))

    def restrict(self, devices: Iterable[str]) -> EventLog:
        """The log of ``devices`` only."""
        keep = set(devices)
        return EventLog(
            {d: v for d, v in self.failures.items() if d in keep},
            {d: v for d, v in self.maintenance.items() if d in keep},
            self.maintenance_renews,
        )

    def to_dict(self) -> dict[str, Any]:
        """Counts for reports."""
        return {
            "failures": self.n_failures,
            "devices_failed": sum(1 for v in self.failures.values() if v),
            "maintenance": sum(len(v) for v in self.maintenance.values()),
            "maintenance_renews": self.maintenance_renews,
        }


@dataclass(frozen=True)
class Run:
    """One run of a device: from its start (first reading, or a renewal) to its end.

    Attributes:
        device: The device.
        start: When the run began (the device's first reading, or the renewal before it).
        end: When it ended: the failure or renewing maintenance, else the last reading.
        reason: ``"failure"``, ``"maintenance"`` or ``"censored"`` (the data ends first).
    """

    device: str
    start: float
    end: float
    reason: str

    @property
    def seconds(self) -> float:
        """Length of the run."""
        return self.end - self.start


def runs(spans: Mapping[str, tuple[float, float]], log: EventLog) -> list[Run]:
    """The runs of each device observed from ``spans[device][0]`` to ``spans[device][1]``.

    Renewals before a device's first reading do not start a run of it; a failure after its
    last reading ends its last run (the device was not observed to its end).
    """
    out = []
    for device, (first, last) in sorted(spans.items()):
        start = first
        for t, kind in log.renewals(device):
            if t < first:
                continue
            out.append(Run(device, start, t, kind))
            start = t
        if start < last:
            out.append(Run(device, start, last, "censored"))
    return out


def label_times(
    log: EventLog,
    device: str,
    times: npt.ArrayLike,
    *,
    horizon: float,
    seen: float,
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Labels of ``device`` scored at ``times`` (see the module docstring).

    Args:
        log: The event log.
        device: The device.
        times: Scoring times (Unix seconds).
        horizon: The label horizon H in seconds.
        seen: The last time the device was seen working (its last reading).

    Returns:
        ``(y, rul)``: ``y`` is 1 (fails within H), 0 (does not) or -1 (unknown); ``rul``
        the time to the next failure, ``inf`` where the run ends otherwise.
    """
    t = np.asarray(times, dtype=np.float64)
    events = log.renewals(device)
    when = np.asarray([e[0] for e in events], dtype=np.float64)
    failed = np.asarray([e[1] == "failure" for e in events], dtype=bool)
    nxt = np.searchsorted(when, t, side="left")  # first renewal at or after t
    has = nxt < len(when)
    safe = np.minimum(nxt, max(len(when) - 1, 0))
    end = np.where(has, when[safe] if len(when) else np.inf, np.inf)
    is_failure = has & (failed[safe] if len(when) else False)
    rul = np.where(is_failure, end - t, np.inf)
    y = np.full(t.shape, -1, dtype=np.int64)
    y[is_failure] = (rul[is_failure] <= horizon).astype(np.int64)
    maintained = has & ~is_failure
    y[maintained & (end - t >= horizon)] = 0
    y[~has & (seen - t >= horizon)] = 0
    return y, rul.astype(np.float64)


@dataclass(frozen=True)
class StreamSequences:
    """Every sequence the stream job would score: one per window, once K are there.

    Attributes:
        x: Raw features ``[N, K, F]`` (the device's last K non-empty windows).
        device: Device per sequence.
        index: Window index of the sequence's last window.
        t_end: Latest reading of the last window (the label's scoring time).
        window_end: End of the last window (when the stream closes it and can alert).
    """

    x: FloatArray
    device: npt.NDArray[np.str_]
    index: npt.NDArray[np.int64]
    t_end: FloatArray
    window_end: FloatArray

    def __len__(self) -> int:
        return int(self.index.shape[0])


def stream_sequences(windows: WindowTable, spec: FeatureSpec, origin: float) -> StreamSequences:
    """The sequences of :mod:`stream.sequence`: each window with K-1 non-empty ones before it.

    Args:
        windows: Window features (any order).
        spec: Gives K and W.
        origin: The windows' alignment (``spec.origin_seconds`` for the stream's own).
    """
    k, f = spec.sequence_length, windows.features.shape[1]
    order = np.lexsort((windows.index, windows.device))
    dev = windows.device[order]
    bounds = np.flatnonzero(dev[1:] != dev[:-1]) + 1
    xs, devs, idx, tends = [], [], [], []
    for rows in np.split(order, bounds):
        if len(rows) < k:
            continue
        feats = windows.features[rows]
        view = np.lib.stride_tricks.sliding_window_view(feats, (k, f))[:, 0]
        xs.append(view)
        devs.append(windows.device[rows[k - 1 :]])
        idx.append(windows.index[rows[k - 1 :]])
        tends.append(windows.t_last[rows[k - 1 :]])
    if not xs:
        empty = np.empty(0)
        return StreamSequences(
            np.empty((0, k, f)), empty.astype(str), empty.astype(np.int64), empty, empty
        )
    index = np.concatenate(idx)
    return StreamSequences(
        x=np.concatenate(xs),
        device=np.concatenate(devs),
        index=index,
        t_end=np.concatenate(tends),
        window_end=origin + (index + 1).astype(np.float64) * spec.window_seconds,
    )


def label_sequences(
    seqs: StreamSequences,
    log: EventLog,
    horizon: float,
    seen: Mapping[str, float],
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Labels (1, 0, -1 unknown) and times to failure of ``seqs``, device by device."""
    y = np.full(len(seqs), -1, dtype=np.int64)
    rul = np.full(len(seqs), np.inf)
    for device in np.unique(seqs.device):
        m = seqs.device == device
        y[m], rul[m] = label_times(
            log, str(device), seqs.t_end[m], horizon=horizon, seen=seen[str(device)]
        )
    return y, rul


def labelled_sequences(
    windows: WindowTable,
    spec: FeatureSpec,
    log: EventLog,
    seen: Mapping[str, float],
    origin: float,
) -> SequenceSet:
    """The stream job's sequences of ``windows`` whose label is known (for training)."""
    seqs = stream_sequences(windows, spec, origin)
    y, rul = label_sequences(seqs, log, spec.horizon_seconds, seen)
    return known_sequences(seqs, y, rul)


def known_sequences(
    seqs: StreamSequences, y: npt.NDArray[np.int64], rul: FloatArray
) -> SequenceSet:
    """The sequences whose label is known, as a :class:`SequenceSet` for training."""
    keep = y >= 0
    return SequenceSet(seqs.x[keep], y[keep], rul[keep], seqs.device[keep], seqs.t_end[keep])


def spans_of(frame: Any) -> dict[str, tuple[float, float]]:
    """Device -> (first, last) reading time of a readings frame (``device_id``, ``event_time``)."""
    g = frame.groupby("device_id")["event_time"]
    first, last = g.min(), g.max()
    return {str(d): (float(first[d]), float(last[d])) for d in first.index}


def seen_of(spans: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Device -> last reading time."""
    return {d: s[1] for d, s in spans.items()}


def flag_failures(
    devices: Sequence[str], times: Sequence[float], flags: Sequence[bool]
) -> list[tuple[str, float]]:
    """Failure events from a flag column: the first flagged reading of each flagged stretch.

    ``devices``, ``times`` and ``flags`` are per reading, sorted by device and time.
    """
    out: list[tuple[str, float]] = []
    previous: tuple[str, bool] = ("", False)
    for d, t, f in zip(devices, times, flags, strict=True):
        if f and not (previous[0] == d and previous[1]):
            out.append((d, float(t)))
        previous = (d, bool(f))
    return out

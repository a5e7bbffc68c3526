"""Input drift: recent windows against the model's training distribution.

Each scored window carries, per sensor the model reads, its watched statistic (the
normalised window mean, :func:`models.drift.watched_values`). In the driver,
:class:`DriftMonitor` keeps

- **fleet-wide**, per sensor, how many of the last ``recent`` windows of every device fall
  in each bin of the training deciles of the model's ``drift.json``, and their population
  stability index (PSI) against the training shares;
- **per device**, per sensor, an exponentially weighted mean of its windows' values.

A sensor *drifts* when its PSI stays at or over ``threshold`` for ``sustain`` windows in a
row (of the fleet's), and stops when it stays under ``clear`` as long. Each change is a
:class:`stream.contract.DriftNotice` (``started`` or ``ended``, naming the sensors) on the
Redis stream ``P:drift:notices`` and the channel ``P:drift:notices``: a notice, not a
failure alert. The figures are in the hash ``P:drift`` and in the job's Prometheus
metrics. A device whose weighted mean of some sensor is ``device_z`` or more from the
training mean is listed in ``P:drift:devices`` with that sensor; on a degrading device
this is expected, so it raises no notice.

The state lives in the driver's memory: after a restart it fills again from new windows
(``min_windows`` before the first PSI).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from models.drift import DriftReference, psi_of_counts
from stream.contract import DriftNotice, Keys

logger = logging.getLogger(__name__)

__all__ = ["DriftMonitor", "DriftSettings"]


#: Devices a pass of :meth:`DriftMonitor._devices` updates at once; below, one at a time.
_ALL_AT_ONCE = 32


@dataclass(frozen=True)
class DriftSettings:
    """How drift is judged.

    Attributes:
        recent: fleet windows per sensor the PSI is computed over.
        min_windows: no PSI before this many windows have been seen.
        threshold: a PSI at or over this is a shift (0.25, the usual reading of PSI).
        clear: a drifting sensor is clear again under this.
        sustain: windows in a row (the fleet's) over ``threshold`` before a notice, and
            under ``clear`` before the end notice.
        device_alpha: weight of a device's newest window in its weighted mean.
        device_z: a device's weighted mean this far from the training mean is listed.
    """

    recent: int = 1000
    min_windows: int = 300
    threshold: float = 0.25
    clear: float = 0.1
    sustain: int = 200
    device_alpha: float = 0.2
    device_z: float = 3.0


@dataclass
class _SensorState:
    drifting: bool = False
    run: int = 0  # windows in a row on the other side of the line


@dataclass
class DriftMonitor:
    """Fleet-wide and per-device drift of the model's sensors; see the module docstring."""

    reference: DriftReference
    settings: DriftSettings = field(default_factory=DriftSettings)

    def __post_init__(self) -> None:
        ref = self.reference
        s = len(ref.sensors)
        # The fleet's last ``recent`` windows, kept as the bin each value fell in (one
        # flat numbering over the sensors' bins; -1: missing or not watched), beside how
        # many of them are in each bin, so a chunk of windows updates the counts of the
        # bins it enters and leaves instead of binning every value again.
        bins = [len(e) + 1 if len(e) else 0 for e in ref.edges]
        self._first_bin = np.r_[0, np.cumsum(bins)[:-1]].astype(np.int64)
        self._bins = bins
        self._ring = np.full((self.settings.recent, s), -1, dtype=np.int64)
        self._counts = np.zeros(sum(bins), dtype=np.int64)
        self._next = 0
        self.seen = 0
        self.psi = np.full(s, np.nan)
        self._state = [_SensorState() for _ in range(s)]
        # Each device's weighted means: a row of ``_means`` each (``_row``: device -> row).
        self._row: dict[str, int] = {}
        self._means = np.zeros((0, s), dtype=np.float64)
        self._watched = np.array([1.0 if e else 0.0 for e in ref.edges])
        #: Devices listed as drifting: device id -> (sensor, weighted mean).
        self.devices: dict[str, tuple[str, float]] = {}
        self._listed: dict[str, str] = {}  # changes since the last publish
        self._unlisted: set[str] = set()

    @property
    def sensors(self) -> tuple[str, ...]:
        return self.reference.sensors

    @property
    def drifting(self) -> list[str]:
        return [s for s, st in zip(self.sensors, self._state, strict=True) if st.drifting]

    def update(
        self,
        device_ids: Sequence[str],
        values: npt.ArrayLike,
        window_end_ms: int,
        model_version: str,
    ) -> list[DriftNotice]:
        """Fold in a batch's windows (``values``: ``[n, sensors]``, NaN: missing)."""
        v = np.asarray(values, dtype=np.float64).reshape(len(device_ids), len(self.sensors))
        if not len(v):
            return []
        self._devices(device_ids, v)
        binned = self._binned(v)
        notices: list[DriftNotice] = []
        # Window by window in the fleet's order, so "sustained" counts windows, whatever
        # the batch sizes; the PSI itself is computed once per chunk of windows.
        step = max(1, min(len(v), self.settings.sustain // 4 or 1))
        for start in range(0, len(v), step):
            chunk = binned[start : start + step]
            self._append(chunk)
            if self.seen < self.settings.min_windows:
                continue
            self.psi = np.array(
                [
                    psi_of_counts(self._counts[a : a + n], self.reference.expected[j])
                    if n
                    else np.nan
                    for j, (a, n) in enumerate(zip(self._first_bin, self._bins, strict=True))
                ]
            )
            notices.extend(self._judge(len(chunk), window_end_ms, model_version))
        return notices

    def _binned(self, v: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Each value's bin in the flat numbering (-1: missing, or the sensor not watched)."""
        out = np.full(v.shape, -1, dtype=np.int64)
        for j, edges in enumerate(self.reference.edges):
            if edges:
                x = v[:, j]
                seen = np.isfinite(x)
                out[seen, j] = self._first_bin[j] + np.searchsorted(edges, x[seen], side="right")
        return out

    def _append(self, chunk: npt.NDArray[np.int64]) -> None:
        n = len(self._ring)
        rows = chunk[-n:]
        at = (self._next + np.arange(len(rows))) % n
        left, entered = self._ring[at], rows
        size = len(self._counts)
        self._counts -= np.bincount(left[left >= 0], minlength=size)
        self._counts += np.bincount(entered[entered >= 0], minlength=size)
        self._ring[at] = rows
        self._next = (self._next + len(rows)) % n
        self.seen += len(chunk)

    def _devices(self, device_ids: Sequence[str], v: npt.NDArray[np.float64]) -> None:
        """Each window into its device's weighted means, each device's windows in their
        order, and the devices listed or no longer listed: the devices' first windows in
        the batch at once, then their second ones, and so on; once fewer than
        :data:`_ALL_AT_ONCE` devices are left (a replay of a few devices with many windows
        each), the rest one window at a time."""
        ids = list(device_ids)
        earlier: dict[str, int] = {}
        ranks = []
        for d in ids:
            earlier[d] = earlier.get(d, -1) + 1
            ranks.append(earlier[d])
        rank = np.array(ranks, dtype=np.int64)
        order = np.argsort(rank, kind="stable")  # by rank, each rank's rows in batch order
        cut = np.zeros(1, dtype=np.int64)
        if len(rank):
            cut = np.r_[cut, np.cumsum(np.bincount(rank))]
        for r in range(len(cut) - 1):
            rows = order[cut[r] : cut[r + 1]]
            if len(rows) < _ALL_AT_ONCE:
                for i in np.sort(order[cut[r] :]).tolist():
                    self._fold_one(ids[i], v[i])
                return
            self._fold([ids[i] for i in rows.tolist()], v[rows])

    def _fold(self, devices: list[str], x: npt.NDArray[np.float64]) -> None:
        """One window each of distinct ``devices`` (rows of ``x``) into their means."""
        a = self.settings.device_alpha
        at = np.array([self._row.get(d, -1) for d in devices], dtype=np.int64)
        new = at < 0
        if new.any():
            added = [d for d, n in zip(devices, new.tolist(), strict=True) if n]
            at[new] = [self._add(d) for d in added]
        known = np.isfinite(x)
        mean = self._means[at]
        mean = np.where(
            new[:, None],
            np.where(known, x, 0.0),
            np.where(known, (1 - a) * mean + a * x, mean),
        )
        self._means[at] = mean
        j = np.argmax(np.abs(mean) * self._watched, axis=1)
        top = mean[np.arange(len(mean)), j]
        for device, sensor, value in zip(devices, j.tolist(), top.tolist(), strict=True):
            self._list(device, sensor, value)

    def _fold_one(self, device: str, row: npt.NDArray[np.float64]) -> None:
        """:meth:`_fold` for one window."""
        a = self.settings.device_alpha
        at = self._row.get(device)
        if at is None:
            at = self._add(device)
            mean = np.where(np.isfinite(row), row, 0.0)
        else:
            kept = self._means[at]
            mean = np.where(np.isfinite(row), (1 - a) * kept + a * row, kept)
        self._means[at] = mean
        j = int(np.argmax(np.abs(mean) * self._watched))
        self._list(device, j, float(mean[j]))

    def _add(self, device: str) -> int:
        """A row of ``_means`` for a new device."""
        at = len(self._row)
        self._grow(at + 1)
        self._row[device] = at
        return at

    def _list(self, device: str, sensor: int, value: float) -> None:
        """List the device (its weighted mean of ``sensor`` is ``value``, the largest in
        size of its watched ones) if that is ``device_z`` or more, else unlist it."""
        if abs(value) >= self.settings.device_z:
            self.devices[device] = (self.sensors[sensor], value)
            self._listed[device] = f"{self.sensors[sensor]} {value:+.2f}"
            self._unlisted.discard(device)
        elif self.devices.pop(device, None) is not None:
            self._unlisted.add(device)
            self._listed.pop(device, None)

    def _grow(self, rows: int) -> None:
        """Room in ``_means`` for ``rows`` devices (doubling, so growth is amortised)."""
        if rows > len(self._means):
            grown = np.zeros((max(rows, 2 * len(self._means)), self._means.shape[1]))
            grown[: len(self._means)] = self._means
            self._means = grown

    def _judge(self, windows: int, window_end_ms: int, version: str) -> list[DriftNotice]:
        cfg = self.settings
        started: list[int] = []
        ended: list[int] = []
        for j, st in enumerate(self._state):
            value = self.psi[j]
            if not np.isfinite(value):
                continue
            crossing = value < cfg.clear if st.drifting else value >= cfg.threshold
            st.run = st.run + windows if crossing else 0
            if st.run >= cfg.sustain:
                st.drifting, st.run = not st.drifting, 0
                (started if st.drifting else ended).append(j)
        now = int(time.time() * 1000)
        out = []
        changes: tuple[tuple[Literal["started", "ended"], list[int]], ...] = (
            ("started", started),
            ("ended", ended),
        )
        for kind, which in changes:
            if which:
                out.append(
                    DriftNotice(
                        kind=kind,
                        sensors={self.sensors[j]: round(float(self.psi[j]), 4) for j in which},
                        windows=min(self.seen, cfg.recent),
                        window_end_ms=window_end_ms,
                        model_version=version,
                        noticed_ms=now,
                    )
                )
                logger.warning(
                    "input drift %s: %s (PSI over the fleet's last %d windows)",
                    kind,
                    ", ".join(f"{self.sensors[j]} {self.psi[j]:.2f}" for j in which),
                    min(self.seen, cfg.recent),
                )
        return out

    def publish(self, client: Any, keys: Keys, notices: Sequence[DriftNotice]) -> None:
        """Write the figures (``P:drift``, ``P:drift:devices``) and the notices."""
        pipe = client.pipeline(transaction=False)
        figures = {
            f"psi:{s}": repr(round(float(p), 4))
            for s, p in zip(self.sensors, self.psi, strict=True)
            if np.isfinite(p)  # a sensor not watched, or too few windows seen yet
        }
        pipe.hset(
            keys.drift,
            mapping={
                **figures,
                "drifting": ",".join(self.drifting),
                "windows": str(min(self.seen, self.settings.recent)),
                "threshold": repr(self.settings.threshold),
                "updated_ms": str(int(time.time() * 1000)),
            },
        )
        if self._listed:
            pipe.hset(keys.drift_devices, mapping=self._listed)
        if self._unlisted:
            pipe.hdel(keys.drift_devices, *self._unlisted)
        for notice in notices:
            text = notice.to_json()
            pipe.xadd(keys.drift_notices, {"notice": text}, maxlen=10_000, approximate=True)
            pipe.publish(keys.drift_notices, text)
        pipe.execute()
        self._listed, self._unlisted = {}, set()

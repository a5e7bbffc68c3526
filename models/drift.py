"""The training distribution the stream job watches its inputs against (input drift).

For each sensor the model reads, the statistic watched is the window's normalised mean of
that sensor (its ``<sensor>__mean`` feature after the model's own normalisation, so
operating regimes are taken out as in training). Training stores the deciles of that
statistic over the training devices' windows in ``drift.json`` in the model folder
(:func:`write_reference`); the stream job compares recent windows with them by the
population stability index (:func:`psi`).

``drift.json`` is advisory: it does not change a score, so it is not pinned by the
manifest; a missing or unreadable one turns drift watching off with a warning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from models.features import FeatureSpec, NormStats

logger = logging.getLogger(__name__)

__all__ = [
    "DRIFT_FILE",
    "NOT_WATCHED",
    "DriftReference",
    "load_reference",
    "psi",
    "psi_of_counts",
    "reference_from_features",
    "statistic_indices",
    "watched_values",
    "write_reference",
]

DRIFT_FILE = "drift.json"
#: Deciles: ten bins, each holding a tenth of the training windows.
_QUANTILES = np.linspace(0.1, 0.9, 9)


def statistic_indices(spec: FeatureSpec) -> list[int]:
    """Index in the feature vector of each sensor's watched statistic (``mean``, else the
    sensor's first statistic), in :attr:`FeatureSpec.sensors` order."""
    first: dict[str, int] = {}
    mean: dict[str, int] = {}
    for j, (sensor, stat) in enumerate(spec.features):
        first.setdefault(sensor, j)
        if stat == "mean":
            mean[sensor] = j
    return [mean.get(s, first[s]) for s in spec.sensors]


def watched_values(
    features: npt.ArrayLike, spec: FeatureSpec, norm: NormStats
) -> npt.NDArray[np.float64]:
    """Each window's watched statistic per sensor, ``[N, len(spec.sensors)]``, from its raw
    features ``[N, F]``: normalised and clipped as the model's input is, but a missing
    value stays NaN (the model's input fills it with the training mean)."""
    idx = statistic_indices(spec)
    x = np.asarray(features, dtype=np.float64)[..., idx]
    mean = np.asarray(norm.mean, dtype=np.float64)[idx]
    scale = np.asarray(norm.scale, dtype=np.float64)[idx]
    out: npt.NDArray[np.float64] = np.clip((x - mean) / scale, -norm.clip, norm.clip)
    return out


#: Counters measure a device's age, not its condition (C-MAPSS's ``cycle``): not watched.
NOT_WATCHED: Final = frozenset({"cycle"})


@dataclass(frozen=True)
class DriftReference:
    """Bins of each watched sensor's statistic and the share of training windows in each.

    The bins are cut at the training deciles; a sensor with repeated values (a quantised
    one) has fewer, and its shares are counted, not assumed to be a tenth.

    Attributes:
        sensors: the model's sensors, in feature order.
        edges: per sensor, the inner bin edges (increasing; empty: not watched).
        expected: per sensor, the share of training windows in each bin.
        windows: how many training windows they come from.
    """

    sensors: tuple[str, ...]
    edges: tuple[tuple[float, ...], ...]
    expected: tuple[tuple[float, ...], ...]
    windows: int

    @property
    def watched(self) -> list[int]:
        """Indices of the sensors watched."""
        return [j for j, e in enumerate(self.edges) if e]

    def psi(self, j: int, values: npt.ArrayLike) -> float:
        """Sensor ``j``'s population stability index of ``values`` (see :func:`psi`)."""
        return psi(self.edges[j], values, self.expected[j])

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": "normalised window mean of each sensor; bins cut at the training deciles",
            "windows": self.windows,
            "sensors": {
                s: {"edges": [round(x, 6) for x in e], "expected": [round(x, 6) for x in p]}
                for s, e, p in zip(self.sensors, self.edges, self.expected, strict=True)
            },
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> DriftReference:
        """Raises ValueError naming ``where`` and what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("sensors"), dict):
            raise ValueError(f"{where}: no 'sensors' object")
        sensors = tuple(data["sensors"])
        edges, expected = [], []
        for s in sensors:
            entry = data["sensors"][s]
            e = np.asarray(entry.get("edges", []) if isinstance(entry, dict) else [], float)
            p = np.asarray(entry.get("expected", []) if isinstance(entry, dict) else [], float)
            if len(e) and (len(p) != len(e) + 1 or (np.diff(e) <= 0).any()):
                raise ValueError(f"{where}: sensor {s}: edges must increase, one share per bin")
            if not (np.isfinite(e).all() and np.isfinite(p).all()):
                raise ValueError(f"{where}: sensor {s}: edges and shares must be finite")
            edges.append(tuple(e.tolist()))
            expected.append(tuple(p.tolist()))
        return cls(sensors, tuple(edges), tuple(expected), int(data.get("windows", 0)))


def reference_from_features(
    features: npt.ArrayLike, spec: FeatureSpec, norm: NormStats
) -> DriftReference:
    """The reference of the training windows' raw features ``[N, F]`` (NaN: missing)."""
    values = watched_values(features, spec, norm)
    edges: list[tuple[float, ...]] = []
    expected: list[tuple[float, ...]] = []
    for sensor, col in zip(spec.sensors, values.T, strict=True):
        col = col[np.isfinite(col)]
        if sensor in NOT_WATCHED or len(col) < 10:
            edges.append(())
            expected.append(())
            continue
        cut = _between(np.sort(col), np.quantile(col, _QUANTILES))
        counts = np.bincount(np.searchsorted(cut, col, side="right"), minlength=len(cut) + 1)
        edges.append(tuple(float(x) for x in cut))
        expected.append(tuple(float(x) for x in counts / len(col)))
    return DriftReference(tuple(spec.sensors), tuple(edges), tuple(expected), len(values))


def _between(
    ordered: npt.NDArray[np.float64], cuts: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Each cut moved halfway between the training values either side of it, so no training
    value lies on an edge: a quantised sensor's values (a window mean of whole numbers)
    then fall inside a bin whatever the rounding of the path that computed them."""
    below = ordered[np.clip(np.searchsorted(ordered, cuts, side="right") - 1, 0, len(ordered) - 1)]
    above = ordered[np.clip(np.searchsorted(ordered, cuts, side="right"), 0, len(ordered) - 1)]
    return np.unique(np.where(above > below, (below + above) / 2, cuts))


def psi(
    edges: Sequence[float],
    values: npt.ArrayLike,
    expected: Sequence[float] | None = None,
    floor: float = 1e-4,
) -> float:
    """Population stability index of ``values`` against bins cut at ``edges``.

    Sums ``(a - e) * ln(a / e)`` over the bins (``a``: share of ``values`` in the bin;
    ``e``: ``expected``, a tenth each by default), a share of 0 counted as ``floor``.
    Under 0.1 is usually read as stable, over 0.25 as a shift. NaN values are left out;
    NaN when none is left.

    >>> edges = [-1.28, -0.84, -0.52, -0.25, 0.0, 0.25, 0.52, 0.84, 1.28]
    >>> psi(edges, np.random.default_rng(0).standard_normal(20_000)) < 0.01
    True
    >>> psi(edges, np.random.default_rng(0).standard_normal(20_000) + 1.5) > 1.5
    True
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    bins = len(edges) + 1
    counts = np.bincount(np.searchsorted(np.asarray(edges), v, side="right"), minlength=bins)
    return psi_of_counts(counts, expected, floor)


def psi_of_counts(
    counts: npt.ArrayLike, expected: Sequence[float] | None = None, floor: float = 1e-4
) -> float:
    """:func:`psi` of values already counted per bin (``counts``, one per bin); NaN when
    there are none. A monitor that keeps the counts of a moving set of values computes it
    without binning them again."""
    c = np.asarray(counts)
    total = int(c.sum())
    if not total:
        return float("nan")
    bins = len(c)
    e = np.full(bins, 1 / bins) if expected is None else np.asarray(expected, dtype=np.float64)
    a = np.maximum(c / total, floor)
    e = np.maximum(e, floor)
    return float(np.sum((a - e) * np.log(a / e)))


def write_reference(folder: str | Path, reference: DriftReference) -> Path:
    """Write ``drift.json`` into the model folder: one line per sensor."""
    data = reference.to_dict()
    sensors = ",\n".join(
        f"    {json.dumps(s)}: {json.dumps(e)}" for s, e in data["sensors"].items()
    )
    head = json.dumps({k: v for k, v in data.items() if k != "sensors"}, indent=2)[:-2]
    path = Path(folder) / DRIFT_FILE
    path.write_text(f'{head},\n  "sensors": {{\n{sensors}\n  }}\n}}\n', encoding="utf-8")
    return path


def load_reference(folder: str | Path, sensors: Sequence[str]) -> DriftReference | None:
    """The model folder's reference, or None (with a warning saying why) when it has none,
    it does not parse, or its sensors are not the model's."""
    path = Path(folder) / DRIFT_FILE
    if not path.is_file():
        logger.warning(
            "%s has no %s: input drift is not watched (retrain the model with this version "
            "of `prognos train` to record its training distribution)",
            folder,
            DRIFT_FILE,
        )
        return None
    try:
        reference = DriftReference.from_dict(json.loads(path.read_text("utf-8")), str(path))
    except (OSError, ValueError) as exc:
        logger.warning("input drift is not watched: %s", exc)
        return None
    if list(reference.sensors) != list(sensors):
        logger.warning(
            "input drift is not watched: %s names sensors %s, the model reads %s",
            path,
            ", ".join(reference.sensors),
            ", ".join(sensors),
        )
        return None
    return reference

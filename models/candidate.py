"""Checks a candidate model must pass before it may replace the one scoring a stream.

- :func:`check_parity`: ONNX Runtime reproduces the model's own parity fixture
  (``parity.npz``: inputs and the outputs recorded when it was exported);
- :func:`contract_differences`: the inputs it reads (features, window, sequence length,
  normalisation's clip) are the running model's, so the job's window state fits it;
- :func:`shadow`: on recent windows, scored beside the active model, no NaN risk and an
  alert rate that does not jump.

The checksum is verified by :meth:`models.scorer.Scorer.load` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.errors import ModelError
from models.metadata import ModelMetadata
from models.scorer import Scorer

__all__ = [
    "PARITY_FILE",
    "PARITY_TOLERANCE",
    "ShadowResult",
    "check_parity",
    "contract_differences",
    "shadow",
]

PARITY_FILE = "parity.npz"
PARITY_TOLERANCE = 1e-4


class CandidateError(ModelError):
    """A candidate model failed a check; the message says which and what to do."""


def check_parity(scorer: Scorer) -> float:
    """Score the model folder's parity inputs; returns the largest difference.

    Raises:
        CandidateError: no fixture, an unreadable one, or outputs further than
            :data:`PARITY_TOLERANCE` from the recorded ones.
    """
    path = Path(scorer.path).parent / PARITY_FILE
    if not path.is_file():
        raise CandidateError(
            f"{path.parent} has no {PARITY_FILE}: nothing shows ONNX Runtime reproduces the "
            "exported model; export it with `prognos train` (or `prognos model import`), or "
            "promote with --force"
        )
    try:
        with np.load(path) as data:
            x, y = data["x"], data["y"]
    except (OSError, KeyError, ValueError) as exc:
        raise CandidateError(f"{path}: unreadable parity fixture ({exc}); re-export") from exc
    got = scorer.score(x.astype(np.float32))
    diff = float(np.max(np.abs(got - y.reshape(got.shape)))) if len(got) else 0.0
    if not diff <= PARITY_TOLERANCE:
        raise CandidateError(
            f"{path}: ONNX Runtime's risks differ from the recorded ones by {diff:.3g} "
            f"(tolerance {PARITY_TOLERANCE}); the file does not hold the model it was "
            "exported as: re-export it"
        )
    return diff


def contract_differences(running: ModelMetadata, candidate: ModelMetadata) -> list[str]:
    """What the candidate reads differently from the running model (empty: compatible)."""
    a, b = running.spec, candidate.spec
    out = []
    if a.window_seconds != b.window_seconds:
        out.append(f"window {b.window_seconds:g} s, the running model's {a.window_seconds:g} s")
    if a.sequence_length != b.sequence_length:
        out.append(f"sequence length {b.sequence_length}, the running model's {a.sequence_length}")
    if tuple(a.feature_names) != tuple(b.feature_names):
        extra = sorted(set(b.feature_names) - set(a.feature_names))
        gone = sorted(set(a.feature_names) - set(b.feature_names))
        what = "; ".join(
            p for p in (f"adds {', '.join(extra)}" if extra else "",
                        f"drops {', '.join(gone)}" if gone else "") if p
        ) or "orders them differently"  # fmt: skip
        out.append(f"features differ ({what})")
    if (running.norm.regimes is None) != (candidate.norm.regimes is None):
        out.append("operating-regime standardisation differs")
    return out


@dataclass(frozen=True)
class ShadowResult:
    """The candidate beside the active model on the same recent windows."""

    windows: int
    nan: int
    active_rate: float
    candidate_rate: float
    mean_abs_diff: float

    @property
    def rate_change(self) -> float:
        return abs(self.candidate_rate - self.active_rate)


def shadow(active: Scorer, candidate: Scorer, x: npt.ArrayLike) -> ShadowResult:
    """Score the recent windows ``x`` (``[N, K, F]``, normalised) with both models; the alert
    rate is the share at or over each model's own threshold."""
    x = np.asarray(x, dtype=np.float32)
    if not len(x):
        return ShadowResult(0, 0, 0.0, 0.0, 0.0)
    a = active.score(x)
    c = candidate.score(x)
    nan = int(np.count_nonzero(~np.isfinite(c)))
    fine = np.isfinite(c)
    return ShadowResult(
        windows=len(x),
        nan=nan,
        active_rate=float(np.mean(a >= active.metadata.threshold)),
        candidate_rate=float(np.mean(c[fine] >= candidate.metadata.threshold))
        if fine.any()
        else 1.0,
        mean_abs_diff=float(np.mean(np.abs(a[fine] - c[fine]))) if fine.any() else float("nan"),
    )

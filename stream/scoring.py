"""The scoring stage: ONNX Runtime in the Python workers, over Arrow batches.

:func:`score_partitions` runs under ``mapInPandas``: each Arrow batch of emitted sequences
is scored with one ``Scorer.score`` call. The ONNX session is loaded once per worker
process (cached by model path, checksum and providers) and verified against its checksum
when loaded; intra-op threads default to 1 because Spark already runs one worker per core.

Each scored row also carries the features that contributed most: the three features of
the last window furthest from their training mean (by normalised value), with their raw
values and normal ranges (training mean ± 2 standard deviations).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql.types import StructType

    from models.scorer import Scorer

TOP_FEATURES = 3

_SCORERS: dict[tuple[str, str, str, bool, int], Scorer] = {}


@dataclass(frozen=True)
class ScoringSpec:
    """What the workers need to load the model: picklable, small."""

    model_path: str
    sha256: str
    providers: str  # "auto" or comma-separated provider names
    allow_fallback: bool = False
    intra_op_threads: int = 1


def load_scorer(spec: ScoringSpec) -> Scorer:
    """The worker's scorer for ``spec``, loaded (and checksum-verified) on first use."""
    from models.scorer import Scorer

    key = (spec.model_path, spec.sha256, spec.providers, spec.allow_fallback, spec.intra_op_threads)
    scorer = _SCORERS.get(key)
    if scorer is None:
        providers: str | list[str] = (
            spec.providers if spec.providers == "auto" else spec.providers.split(",")
        )
        scorer = Scorer.load(
            spec.model_path,
            providers=providers,
            allow_fallback=spec.allow_fallback,
            intra_op_threads=spec.intra_op_threads,
            sha256=spec.sha256,
        )
        _SCORERS[key] = scorer
    return scorer


def output_schema() -> StructType:
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    return StructType(
        [
            StructField("device_id", StringType(), False),
            StructField("window_start_ms", LongType(), False),
            StructField("window_end_ms", LongType(), False),
            StructField("n_readings", LongType(), False),
            StructField("risk", DoubleType(), False),
            StructField("model_version", StringType(), False),
            StructField("provider", StringType(), False),
            StructField("top_features", StringType(), False),
            StructField("score_ms", DoubleType(), False),
        ]
    )


def top_features(
    scorer: Scorer, raw_last: np.ndarray, z_last: np.ndarray, n: int = TOP_FEATURES
) -> list[str]:
    """JSON list per row: the ``n`` features of the last window furthest from normal."""
    names = scorer.metadata.feature_names
    mean = np.asarray(scorer.metadata.norm.mean)
    scale = np.asarray(scorer.metadata.norm.scale)
    order = np.argsort(-np.abs(z_last), axis=1, kind="stable")[:, :n]
    out = []
    for row, idx in enumerate(order):
        items = []
        for j in idx:
            value = raw_last[row, j]
            items.append(
                {
                    "name": names[j],
                    "value": None if np.isnan(value) else round(float(value), 6),
                    "z": round(float(z_last[row, j]), 3),
                    "normal_low": round(float(mean[j] - 2 * scale[j]), 6),
                    "normal_high": round(float(mean[j] + 2 * scale[j]), 6),
                }
            )
        out.append(json.dumps(items, separators=(",", ":")))
    return out


def score_frame(scorer: Scorer, frame: pd.DataFrame) -> pd.DataFrame:
    """Score one pandas batch of sequences (columns of :func:`stream.sequence.output_schema`)."""
    import pandas as pd

    from models.features import normalise

    started = time.perf_counter()
    k, f = scorer.input_shape
    raw = np.stack(frame["sequence"].to_numpy()).reshape(len(frame), k, f)
    z = normalise(raw, scorer.metadata.norm)
    risk = scorer.score(z)
    tops = top_features(scorer, raw[:, -1, :], z[:, -1, :])
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return pd.DataFrame(
        {
            "device_id": frame["device_id"].to_numpy(),
            "window_start_ms": frame["window_start_ms"].to_numpy(),
            "window_end_ms": frame["window_end_ms"].to_numpy(),
            "n_readings": frame["n_readings"].to_numpy(),
            "risk": risk.astype(np.float64),
            "model_version": scorer.metadata.model_version,
            "provider": scorer.active_provider,
            "top_features": tops,
            "score_ms": elapsed_ms / max(1, len(frame)),
        }
    )


def score_partitions(spec: ScoringSpec) -> Any:
    """The ``mapInPandas`` function for ``spec``."""

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer = load_scorer(spec)
        for frame in frames:
            if len(frame):
                yield score_frame(scorer, frame)

    return run

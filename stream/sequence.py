"""Per-device sequence state: the last K window vectors, kept in Spark state.

:class:`SequenceProcessor` runs under ``transformWithStateInPandas`` keyed by device, after
the window aggregation. For each device it keeps its last K closed windows' feature
vectors in a value state and, as each new window closes, emits the K-window sequence the
model reads (oldest first). A device emits nothing until it has K windows. State lives in
Spark's state store (RocksDB), checkpointed with the query, so a restart resumes each
device's sequence exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql.types import StructType

try:  # pyspark is a runtime dependency; this keeps the module importable for docs
    from pyspark.sql.streaming.stateful_processor import StatefulProcessor
except ImportError:  # pragma: no cover
    StatefulProcessor = object  # type: ignore[assignment,misc]


def output_schema() -> StructType:
    from pyspark.sql.types import (
        ArrayType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    return StructType(
        [
            StructField("device_id", StringType(), False),
            StructField("window_start_ms", LongType(), False),
            StructField("window_end_ms", LongType(), False),
            StructField("n_readings", LongType(), False),
            # Nullable elements: a statistic with no values is NaN, and pandas -> Arrow
            # turns NaN into null (read back as NaN; the scorer maps it to the mean).
            StructField("sequence", ArrayType(DoubleType(), True), False),
        ]
    )


def _state_schema() -> StructType:
    from pyspark.sql.types import ArrayType, DoubleType, LongType, StructField, StructType

    return StructType(
        [
            StructField("ends", ArrayType(LongType(), False), False),
            StructField("vectors", ArrayType(ArrayType(DoubleType(), True), False), False),
        ]
    )


class SequenceProcessor(StatefulProcessor):
    """Keeps a device's last ``k`` window vectors; emits the sequence when a window closes.

    Input rows: ``device_id``, ``window_start_ms``, ``window_end_ms``, ``n_readings``,
    ``features`` (``array<double>`` of length ``f``). Output: :func:`output_schema`, with
    ``sequence`` the ``k * f`` values of the last ``k`` windows, oldest first.
    """

    def __init__(self, k: int, f: int) -> None:
        self.k = k
        self.f = f

    def init(self, handle: Any) -> None:
        self.state = handle.getValueState("sequence", _state_schema())

    def handleInputRows(
        self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any
    ) -> Iterator[pd.DataFrame]:
        import pandas as pd

        frames = [frame for frame in rows if len(frame)]
        if not frames:
            return
        data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        data = data.sort_values("window_end_ms", kind="stable")
        if self.state.exists():
            stored = self.state.get()
            ends = list(stored[0])
            vectors = [
                np.array([np.nan if x is None else x for x in v], dtype=np.float64)
                for v in stored[1]
            ]
        else:
            ends, vectors = [], []
        out_start, out_end, out_n, out_seq = [], [], [], []
        for start, end, n, features in zip(
            data["window_start_ms"].to_numpy(),
            data["window_end_ms"].to_numpy(),
            data["n_readings"].to_numpy(),
            data["features"].to_numpy(),
            strict=True,
        ):
            if ends and end <= ends[-1]:
                continue  # already in the sequence (cannot happen in append mode; kept safe)
            ends.append(int(end))
            vectors.append(np.asarray(features, dtype=np.float64))
            del ends[: -self.k], vectors[: -self.k]
            if len(vectors) == self.k:
                out_start.append(int(start))
                out_end.append(int(end))
                out_n.append(int(n))
                out_seq.append(np.concatenate(vectors))
        self.state.update((ends, [v.tolist() for v in vectors]))
        if out_end:
            yield pd.DataFrame(
                {
                    "device_id": key[0],
                    "window_start_ms": out_start,
                    "window_end_ms": out_end,
                    "n_readings": out_n,
                    "sequence": out_seq,
                }
            )

    def close(self) -> None:
        pass

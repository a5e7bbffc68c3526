"""Scoring: ONNX Runtime in the Python workers.

The job scores in its window operator: :func:`scored_rows` scores the windows a bucket
closes (one ``Scorer.score`` call) and gives them to Spark with their top features and
drift statistics packed (:data:`PACKED_SCORES`), which the driver unpacks
(:func:`unpack_scored`). :func:`score_partitions` is the same scoring as a stage of its
own, under ``mapInArrow`` (``stream.job.score``; the benchmarks' figure 3): each Arrow
batch of emitted sequences is scored with one ``Scorer.score`` call. The ``K x F`` values of each row arrive already
normalised, packed as little-endian float32 bytes (the window operator normalises and
packs them), and are read from the binary column's data buffer: one copy, no Python object
per row, no conversion to pandas. The ONNX session is loaded once per worker process (cached by model path,
checksum and providers) and verified against its checksum when loaded; intra-op threads
default to 1 because Spark already runs one worker per core.

Each scored row also carries the features that contributed most: the three features of
the last window furthest from their training mean (by normalised value), as their indices,
raw values and normalised values (three small arrays, made with numpy for the whole
batch). The driver describes them (names, normal ranges: training mean ± 2 standard
deviations) with :class:`TopFeatureFormatter` only for the windows that raise an alert
event, since describing every row in the workers would cost more than scoring it. It also
carries its ``coverage``: the share of the model's sensors present in the window
(:func:`models.features.sensor_coverage`), and each sensor's statistic watched for input
drift (:func:`models.drift.watched_values`, see :mod:`stream.drift`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from models.drift import watched_values
from models.features import sensor_coverage
from stream.contract import TopFeature

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
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
    #: The driver's pointer to the model of the batch (stream.registry; None: model_path).
    pointer: str | None = None
    #: The archive the model came in to the executors (``prognos submit``): loaded from
    #: there, never from the driver's ``model_path``. None: ``model_path`` is reachable.
    shipped: str | None = None


#: The Spark setting ``prognos submit`` sets to the model archive's name on the executors.
SHIPPED_MODEL_CONF = "spark.prognos.model.archive"


#: One in this many scored windows carries its model input (``sample``) to the driver,
#: which keeps the latest for a promotion's shadow scoring.
SAMPLE_EVERY = 16


def load_scorer(spec: ScoringSpec) -> Scorer:
    """The worker's scorer for ``spec``, loaded (and checksum-verified) on first use.

    With a pointer, the model is the one the driver points at for this batch.
    """
    from models.scorer import Scorer

    if spec.pointer is not None:
        from stream.registry import read_pointer

        entry = read_pointer(spec.pointer)
        if entry is not None:
            spec = replace(spec, model_path=entry.path, sha256=entry.sha256, pointer=None)
    if spec.shipped is not None:
        spec = replace(spec, model_path=shipped_path(spec.shipped, spec.model_path), shipped=None)
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


def shipped_path(archive: str, model_path: str) -> str:
    """The model file in the executor's unpacked archive ``archive``.

    Raises:
        models.errors.ModelError: the archive is not there (the job was not given it).
    """
    import contextlib
    import os

    from pyspark import SparkFiles

    from models.errors import ModelError

    name = os.path.basename(model_path)
    roots = [os.getcwd()]
    with contextlib.suppress(Exception):  # no SparkContext's files in this process
        roots.insert(0, SparkFiles.getRootDirectory())
    for root in roots:
        candidate = os.path.join(root, archive, name)
        if os.path.isfile(candidate):
            return candidate
    raise ModelError(
        f"the model archive {archive!r} is not in this executor's folder ({', '.join(roots)}): "
        "submit the job with `prognos submit`, which ships it (--archives MODEL.tar.gz#"
        f"{archive})"
    )


def output_schema() -> StructType:
    from pyspark.sql.types import (
        ArrayType,
        BinaryType,
        DoubleType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    from stream.sequence import dead_letter_fields

    # A scored window's row has the window columns and null dead-letter columns; a dead
    # letter (passed on from the window operator) has null window columns.
    return StructType(
        [
            StructField("device_id", StringType(), False),
            StructField("window_start_ms", LongType(), True),
            StructField("window_end_ms", LongType(), True),
            StructField("n_readings", LongType(), True),
            StructField("risk", DoubleType(), True),
            StructField("model_version", StringType(), True),
            StructField("provider", StringType(), True),
            # The last window's features furthest from normal, strongest first: their
            # indices in the model's feature order, raw values (NaN when the statistic
            # had no values) and normalised values.
            StructField("top_index", ArrayType(IntegerType(), True), True),
            StructField("top_value", ArrayType(DoubleType(), True), True),
            StructField("top_z", ArrayType(DoubleType(), True), True),
            StructField("score_ms", DoubleType(), True),
            # Share of the model's sensors present in the window (models.features.sensor_coverage).
            StructField("coverage", DoubleType(), True),
            # Each model sensor's watched statistic for input drift
            # (models.drift.watched_values; NaN: missing in the window).
            StructField("drift_values", ArrayType(DoubleType(), True), True),
            # One window in SAMPLE_EVERY: its packed model input, for shadow scoring.
            StructField("sample", BinaryType(), True),
            *dead_letter_fields(),
        ]
    )


def top_features(
    raw_last: np.ndarray, z_last: np.ndarray, n: int = TOP_FEATURES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices, raw values and normalised values of each row's ``n`` features furthest
    from normal (largest ``|z|``, ties to the lower index), strongest first."""
    order = np.argsort(-np.abs(z_last), axis=1, kind="stable")[:, :n]
    values = np.take_along_axis(raw_last, order, axis=1).astype(np.float64)
    zs = np.take_along_axis(z_last, order, axis=1).astype(np.float64)
    return order.astype(np.int32), values, zs


class TopFeatureFormatter:
    """Describes a window's top features for its alert event (in the driver).

    Each is a :class:`~stream.contract.TopFeature`: ``value`` rounded to 6 places
    (``None`` when missing), ``z`` to 3; the normal range is the training mean ± 2
    standard deviations.
    """

    def __init__(self, scorer: Scorer) -> None:
        self.names = scorer.metadata.feature_names
        mean = np.asarray(scorer.metadata.norm.mean, dtype=np.float64)
        scale = np.asarray(scorer.metadata.norm.scale, dtype=np.float64)
        self.low = [round(float(m - 2 * s), 6) for m, s in zip(mean, scale, strict=True)]
        self.high = [round(float(m + 2 * s), 6) for m, s in zip(mean, scale, strict=True)]

    def describe(
        self, index: Sequence[int], values: Sequence[float | None], z: Sequence[float]
    ) -> tuple[TopFeature, ...]:
        return tuple(
            TopFeature(
                name=self.names[j],
                value=None if v is None or v != v else round(float(v), 6),
                z=round(float(zj), 3),
                normal_low=self.low[j],
                normal_high=self.high[j],
            )
            for j, v, zj in zip(index, values, z, strict=True)
        )


def _packed_values(batch: pa.RecordBatch, name: str, width: int, dtype: Any) -> np.ndarray:
    """A binary column of packed values (see :func:`stream.sequence.output_schema`) as a
    ``[N, width]`` array of ``dtype`` (:func:`_packed_column`)."""
    return _packed_column(batch.column(batch.schema.get_field_index(name)), name, width, dtype)


def _packed_column(column: pa.Array, name: str, width: int, dtype: Any) -> np.ndarray:
    """A binary column of packed values as a ``[N, width]`` array of ``dtype``.

    One copy of the column's data buffer; no Python object per row.

    Raises:
        ValueError: a row is null or does not hold ``width`` values.
    """
    import pyarrow as pa

    n = len(column)
    dtype = np.dtype(dtype)
    if column.null_count:
        raise ValueError(f"{name} column has {column.null_count} null rows among {n} windows")
    offset_type: np.dtype[Any]
    if pa.types.is_large_binary(column.type):
        offset_type = np.dtype("<i8")
    elif pa.types.is_binary(column.type):
        offset_type = np.dtype("<i4")
    else:
        raise ValueError(f"{name} column is {column.type}; packed values are binary")
    if n == 0:
        return np.empty((0, width), dtype)
    _, offsets_buffer, data = column.buffers()
    offsets = np.frombuffer(
        offsets_buffer, offset_type, n + 1, column.offset * offset_type.itemsize
    )
    row_bytes = width * dtype.itemsize
    if not (np.diff(offsets) == row_bytes).all():
        sizes = sorted({int(x) for x in np.diff(offsets)})
        raise ValueError(
            f"{name} column holds rows of {sizes} bytes; the model expects {width} values "
            f"of {dtype.itemsize} bytes ({row_bytes}) per row"
        )
    raw = np.frombuffer(data, np.uint8, n * row_bytes, int(offsets[0]))
    values: np.ndarray = raw.copy().view(dtype).reshape(n, width)
    return values


def sequences_from_arrow(batch: pa.RecordBatch, k: int, f: int) -> np.ndarray:
    """The ``sequence`` column (normalised, see :mod:`stream.sequence`) as float32 ``[N, K, F]``."""
    from stream.sequence import SEQUENCE_DTYPE

    z = _packed_values(batch, "sequence", k * f, SEQUENCE_DTYPE)
    return z.astype(np.float32, copy=False).reshape(-1, k, f)


def _lists(values: np.ndarray, dtype: Any) -> pa.Array:
    """A ``[N, n]`` matrix as an Arrow list column of N lists of n (one copy, no loop)."""
    import pyarrow as pa

    rows, width = values.shape
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * width)
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), dtype))


def _samples(z: np.ndarray) -> pa.Array:
    """Every :data:`SAMPLE_EVERY`-th row's model input as packed float32, the rest null."""
    import pyarrow as pa

    return pa.array(_sample_rows(z), pa.binary())


def _sample_rows(z: np.ndarray, seen: int = 0) -> list[bytes | None]:
    """Each row's model input as packed float32 where it is one in :data:`SAMPLE_EVERY`
    counting from ``seen`` windows before these, else None."""
    out: list[bytes | None] = [None] * len(z)
    for i in range(-seen % SAMPLE_EVERY, len(z), SAMPLE_EVERY):
        out[i] = z[i].astype("<f4").tobytes()
    return out


class Scores(NamedTuple):
    """What scoring N windows gives (see :func:`score_windows`)."""

    risk: np.ndarray  # [N] float64
    top_index: np.ndarray  # [N, TOP_FEATURES] int32
    top_value: np.ndarray  # [N, TOP_FEATURES] float64
    top_z: np.ndarray  # [N, TOP_FEATURES] float64
    score_ms: float  # the call's time, a row
    coverage: np.ndarray  # [N] float64
    drift: np.ndarray  # [N, sensors] float64


def score_windows(scorer: Scorer, z: np.ndarray, raw_last: np.ndarray) -> Scores:
    """Score N windows: ``z`` their normalised sequences (float32 ``[N, K, F]``),
    ``raw_last`` their newest window's raw features (float64 ``[N, F]``)."""
    started = time.perf_counter()
    risk = scorer.score(z)
    index, values, zs = top_features(raw_last, z[:, -1, :])
    coverage = sensor_coverage(scorer.metadata.spec, raw_last)
    drift = watched_values(raw_last, scorer.metadata.spec, scorer.metadata.norm)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return Scores(
        risk.astype(np.float64),
        index,
        values,
        zs,
        elapsed_ms / max(1, len(risk)),
        np.asarray(coverage, np.float64),
        np.asarray(drift, np.float64),
    )


def score_batch(scorer: Scorer, batch: pa.RecordBatch) -> pa.RecordBatch:
    """Score one Arrow batch of sequences (columns of :func:`stream.sequence.output_schema`,
    windows only: see :func:`split_dead_letters`)."""
    import pyarrow as pa

    from stream.sequence import LAST_WINDOW_DTYPE

    k, f = scorer.input_shape
    z = sequences_from_arrow(batch, k, f)
    raw_last = _packed_values(batch, "last_window", f, LAST_WINDOW_DTYPE)
    scores = score_windows(scorer, z, raw_last)
    n = len(scores.risk)
    get = batch.column
    position = batch.schema.get_field_index
    return pa.RecordBatch.from_arrays(
        [
            get(position("device_id")),
            get(position("window_start_ms")),
            get(position("window_end_ms")),
            get(position("n_readings")),
            pa.array(scores.risk, pa.float64()),
            pa.array([scorer.metadata.model_version] * n, pa.string()),
            pa.array([scorer.active_provider] * n, pa.string()),
            _lists(scores.top_index, pa.int32()),
            _lists(scores.top_value, pa.float64()),
            _lists(scores.top_z, pa.float64()),
            pa.array(np.full(n, scores.score_ms), pa.float64()),
            pa.array(scores.coverage, pa.float64()),
            _lists(scores.drift, pa.float64()),
            _samples(z),
            *[pa.nulls(n, field.type) for field in _dead_letter_arrow()],
        ],
        schema=arrow_schema(),
    )


#: The columns of :func:`output_schema` that the window operator, scoring as it closes
#: windows (:func:`scored_rows`), sends as packed little-endian values (binary) instead
#: of arrays, and their types; :func:`unpack_scored` makes them arrays again.
PACKED_SCORES = {"top_index": "<i4", "top_value": "<f8", "top_z": "<f8", "drift_values": "<f8"}


def operator_schema() -> StructType:
    """The window operator's rows when it scores (:func:`scored_rows`): the columns of
    :func:`output_schema` with :data:`PACKED_SCORES` as binary and the dead letter packed
    (:data:`stream.sequence.PACKED_DEAD_LETTER`), as the operator's own rows."""
    from pyspark.sql.types import BinaryType, StringType, StructField, StructType

    from stream.sequence import DEAD_LETTER_COLUMNS, PACKED_DEAD_LETTER

    dead = {name for name, _ in DEAD_LETTER_COLUMNS}
    fields = [
        StructField(f.name, BinaryType(), True) if f.name in PACKED_SCORES else f
        for f in output_schema().fields
        if f.name not in dead
    ]
    return StructType([*fields, StructField(PACKED_DEAD_LETTER, StringType(), True)])


def _packed_rows(values: np.ndarray, dtype: str) -> list[bytes]:
    """Each row of a matrix as its packed bytes."""
    packed = np.ascontiguousarray(values, dtype=np.dtype(dtype))
    width = packed.shape[1] * packed.dtype.itemsize
    if not width:
        return [b""] * len(packed)
    data = packed.tobytes()
    return [data[i : i + width] for i in range(0, len(data), width)]


def scored_rows(scorer: Scorer, devices: np.ndarray, emitted: Any, seen: int = 0) -> pd.DataFrame:
    """The rows of :func:`operator_schema` for windows the operator closed
    (:class:`stream.sequence.Emitted`, ``devices`` their ids), scored by ``scorer``.

    ``seen``: how many windows the task scored before these, so that one in
    :data:`SAMPLE_EVERY` of its windows carries its model input, however few a call has.
    """
    import pandas as pd

    from stream.sequence import LAST_WINDOW_DTYPE, PACKED_DEAD_LETTER, SEQUENCE_DTYPE

    k, f = scorer.input_shape
    n = len(devices)
    z = np.frombuffer(b"".join(emitted.sequence), SEQUENCE_DTYPE).reshape(n, k, f)
    z = z.astype(np.float32, copy=False)
    raw_last = np.frombuffer(b"".join(emitted.last_window), LAST_WINDOW_DTYPE).reshape(n, f)
    scores = score_windows(scorer, z, raw_last)
    return pd.DataFrame(
        {
            "device_id": devices,
            "window_start_ms": emitted.start_ms,
            "window_end_ms": emitted.end_ms,
            "n_readings": emitted.n_readings,
            "risk": scores.risk,
            "model_version": [scorer.metadata.model_version] * n,
            "provider": [scorer.active_provider] * n,
            "top_index": _packed_rows(scores.top_index, PACKED_SCORES["top_index"]),
            "top_value": _packed_rows(scores.top_value, PACKED_SCORES["top_value"]),
            "top_z": _packed_rows(scores.top_z, PACKED_SCORES["top_z"]),
            "score_ms": np.full(n, scores.score_ms),
            "coverage": scores.coverage,
            "drift_values": _packed_rows(scores.drift, PACKED_SCORES["drift_values"]),
            "sample": _sample_rows(z, seen),
            PACKED_DEAD_LETTER: [None] * n,
        }
    )


def dead_letter_rows(packed: np.ndarray) -> pd.DataFrame:
    """The rows of :func:`operator_schema` for dead letters (their packed JSON)."""
    import pandas as pd

    from stream.sequence import DEAD_LETTER_KEY, PACKED_DEAD_LETTER

    none = [None] * len(packed)
    columns: dict[str, Any] = {
        name: none for name in operator_schema().fieldNames() if name != PACKED_DEAD_LETTER
    }
    columns["device_id"] = DEAD_LETTER_KEY
    columns[PACKED_DEAD_LETTER] = packed
    return pd.DataFrame(columns)


def unpack_scored(table: pa.Table) -> pa.Table:
    """Scored windows as the operator sent them (:data:`PACKED_SCORES` packed; no dead
    letters) with those columns as the arrays of :func:`output_schema`."""
    import pyarrow as pa

    for name, dtype in PACKED_SCORES.items():
        i = table.schema.get_field_index(name)
        column = table.column(i).combine_chunks()
        item = np.dtype(dtype)
        width = len(column[0].as_py() or b"") // item.itemsize if len(column) else 0
        values = _lists(
            _packed_column(column, name, width, item),
            pa.from_numpy_dtype(item.newbyteorder("=")),
        )
        table = table.set_column(i, pa.field(name, values.type, True), values)
    return table


def split_dead_letters(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.RecordBatch | None]:
    """The windows of an operator batch, and its dead letters (None when it has none)."""
    import pyarrow.compute as pc

    is_dead = pc.is_valid(batch.column(batch.schema.get_field_index("dl_rule")))
    if not pc.any(is_dead).as_py():
        return batch, None
    return batch.filter(pc.invert(is_dead)), batch.filter(is_dead)


def dead_letter_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dead letters of an operator batch as rows of :func:`arrow_schema` (window columns null)."""
    import pyarrow as pa

    n = batch.num_rows
    schema = arrow_schema()
    passed = {"device_id", *(field.name for field in _dead_letter_arrow())}
    return pa.RecordBatch.from_arrays(
        [
            batch.column(batch.schema.get_field_index(field.name)).cast(field.type)
            if field.name in passed
            else pa.nulls(n, field.type)
            for field in schema
        ],
        schema=schema,
    )


@functools.cache
def _dead_letter_arrow() -> tuple[pa.Field, ...]:
    """:data:`stream.sequence.DEAD_LETTER_COLUMNS` as nullable Arrow fields."""
    import pyarrow as pa

    from stream.sequence import DEAD_LETTER_COLUMNS

    kinds = {"binary": pa.binary(), "string": pa.string()}
    return tuple(pa.field(name, kinds[kind], True) for name, kind in DEAD_LETTER_COLUMNS)


def arrow_schema() -> pa.Schema:
    """:func:`output_schema` as an Arrow schema (what :func:`score_batch` returns)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("device_id", pa.string(), False),
            pa.field("window_start_ms", pa.int64(), True),
            pa.field("window_end_ms", pa.int64(), True),
            pa.field("n_readings", pa.int64(), True),
            pa.field("risk", pa.float64(), True),
            pa.field("model_version", pa.string(), True),
            pa.field("provider", pa.string(), True),
            pa.field("top_index", pa.list_(pa.int32()), True),
            pa.field("top_value", pa.list_(pa.float64()), True),
            pa.field("top_z", pa.list_(pa.float64()), True),
            pa.field("score_ms", pa.float64(), True),
            pa.field("coverage", pa.float64(), True),
            pa.field("drift_values", pa.list_(pa.float64()), True),
            pa.field("sample", pa.binary(), True),
            *_dead_letter_arrow(),
        ]
    )


def score_partitions(spec: ScoringSpec) -> Any:
    """The ``mapInArrow`` function for ``spec``: windows scored, dead letters passed on."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = load_scorer(spec)
        for batch in batches:
            windows, dead = split_dead_letters(batch)
            if windows.num_rows:
                yield score_batch(scorer, windows)
            if dead is not None:
                yield dead_letter_batch(dead)

    return run

"""The window operator scoring the windows it closes: the same rows as the scoring stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql.pandas.types import to_arrow_schema

from models.features import normalise
from models.scorer import Scorer
from stream import scoring, sequence

MODEL = Path(__file__).resolve().parents[3] / "models" / "default"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load(MODEL, providers="cpu")


def _raw(scorer: Scorer, n: int, seed: int = 0) -> np.ndarray:
    k, f = scorer.input_shape
    mean = np.asarray(scorer.metadata.norm.mean)
    scale = np.asarray(scorer.metadata.norm.scale)
    raw = mean + scale * np.random.default_rng(seed).normal(size=(n, k, f))
    raw[1, -1, 3] = np.nan  # a statistic without values in the newest window
    return raw


def _emitted(raw: np.ndarray, scorer: Scorer) -> sequence.Emitted:
    """Closed windows as the operator holds them before its output rows."""
    n = len(raw)
    z = normalise(raw, scorer.metadata.norm)
    return sequence.Emitted(
        start_ms=np.arange(n, dtype=np.int64),
        end_ms=np.arange(n, dtype=np.int64) + 1,
        n_readings=np.full(n, 5, dtype=np.int64),
        sequence=[row.astype(sequence.SEQUENCE_DTYPE).tobytes() for row in z.reshape(n, -1)],
        last_window=[row.astype(sequence.LAST_WINDOW_DTYPE).tobytes() for row in raw[:, -1, :]],
    )


def _stage_batch(emitted: sequence.Emitted, devices: list[str]) -> pa.RecordBatch:
    """The same windows as the separate scoring stage took them."""
    n = len(devices)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(devices),
            pa.array(emitted.start_ms),
            pa.array(emitted.end_ms),
            pa.array(emitted.n_readings),
            pa.array(emitted.sequence, pa.binary()),
            pa.array(emitted.last_window, pa.binary()),
            *[
                pa.nulls(n, pa.binary() if kind == "binary" else pa.string())
                for _, kind in sequence.DEAD_LETTER_COLUMNS
            ],
        ],
        names=sequence.sequences_schema().fieldNames(),
    )


def _sent(*frames: pd.DataFrame) -> pa.Table:
    """The operator's pandas rows as Spark takes them (its schema)."""
    schema = to_arrow_schema(scoring.operator_schema())
    return pa.concat_tables(
        [pa.Table.from_pandas(frame, schema=schema, preserve_index=False) for frame in frames]
    )


def _as_sent(*frames: pd.DataFrame) -> pa.Table:
    """The operator's rows as Spark takes them, then unpacked."""
    return scoring.unpack_scored(_sent(*frames))


def test_the_operator_scores_its_windows_as_the_scoring_stage_does(scorer: Scorer) -> None:
    raw = _raw(scorer, 40)
    devices = [f"D{i}" for i in range(len(raw))]
    emitted = _emitted(raw, scorer)
    stage = scoring.score_batch(scorer, _stage_batch(emitted, devices))
    frame = scoring.scored_rows(scorer, np.asarray(devices, dtype=object), emitted)
    assert list(frame.columns) == scoring.operator_schema().fieldNames()
    got = _as_sent(frame)
    for name in (
        "device_id",
        "window_start_ms",
        "window_end_ms",
        "n_readings",
        "model_version",
        "provider",
        "top_index",
        "top_value",
        "top_z",
        "coverage",
        "drift_values",
        "sample",
    ):
        assert got.column(name).type == stage.schema.field(name).type, name
        assert got.column(name).to_pylist() == stage.column(name).to_pylist(), name
    np.testing.assert_array_equal(got.column("risk").to_numpy(), stage.column("risk").to_numpy())
    np.testing.assert_array_equal(
        got.column("risk").to_numpy(), scorer.score_features(raw).astype(np.float64)
    )
    assert got.column("sample").null_count == len(raw) - len(range(0, len(raw), 16))


def test_dead_letters_beside_scored_windows_keep_null_scores(scorer: Scorer) -> None:
    raw = _raw(scorer, 3)
    emitted = _emitted(raw, scorer)
    windows = scoring.scored_rows(scorer, np.asarray(["A", "B", "C"], dtype=object), emitted)
    packed = np.asarray(['{"rule": "json"}', '{"rule": "range"}'], dtype=object)
    dead = scoring.dead_letter_rows(packed)
    assert list(dead.columns) == scoring.operator_schema().fieldNames()
    got = _sent(dead.iloc[:1], windows, dead.iloc[1:])
    assert got.column("device_id").to_pylist() == ["", "A", "B", "C", ""]
    assert got.column(sequence.PACKED_DEAD_LETTER).to_pylist() == [
        packed[0],
        None,
        None,
        None,
        packed[1],
    ]
    for name in scoring.PACKED_SCORES:
        values = got.column(name).to_pylist()
        assert values[0] is None and values[4] is None, name
        assert all(v is not None for v in values[1:4]), name
    # the driver unpacks the windows, apart from the dead letters (a null row is refused)
    unpacked = scoring.unpack_scored(got.slice(1, 3))
    assert [len(v) for v in unpacked.column("top_index").to_pylist()] == [3, 3, 3]
    with pytest.raises(ValueError, match="null rows"):
        scoring.unpack_scored(got)


def test_the_operator_schema_is_the_scored_rows_with_scores_packed() -> None:
    from pyspark.sql.types import BinaryType

    scored = scoring.output_schema()
    sent = scoring.operator_schema()
    dead = {name for name, _ in sequence.DEAD_LETTER_COLUMNS}
    assert sent.fieldNames() == [
        *[n for n in scored.fieldNames() if n not in dead],
        sequence.PACKED_DEAD_LETTER,
    ]
    for name in scoring.PACKED_SCORES:
        assert sent[name].dataType == BinaryType(), name


def test_one_window_in_sample_every_of_a_task_is_sampled_however_few_a_call_has(
    scorer: Scorer,
) -> None:
    raw = _raw(scorer, 40)
    emitted = _emitted(raw, scorer)
    sampled: list[int] = []
    seen = 0
    for start in range(0, 40, 3):  # calls of 3 windows, as a bucket of a small fleet
        part = sequence.Emitted(*(column[start : start + 3] for column in emitted))
        devices = np.asarray([f"D{i}" for i in range(start, start + len(part.end_ms))], object)
        frame = scoring.scored_rows(scorer, devices, part, seen)
        sampled += [seen + i for i, s in enumerate(frame["sample"]) if s is not None]
        seen += len(frame)
    assert sampled == list(range(0, 40, scoring.SAMPLE_EVERY))


def test_packed_columns_unpack_from_a_slice_and_from_large_binary(scorer: Scorer) -> None:
    raw = _raw(scorer, 6)
    frame = scoring.scored_rows(scorer, np.asarray(list("ABCDEF"), object), _emitted(raw, scorer))
    whole = _as_sent(frame)
    schema = to_arrow_schema(scoring.operator_schema())
    sent = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    sliced = scoring.unpack_scored(sent.slice(2, 3))
    large = sent.set_column(
        sent.schema.get_field_index("top_value"),
        pa.field("top_value", pa.large_binary()),
        sent.column("top_value").cast(pa.large_binary()),
    )
    for name in scoring.PACKED_SCORES:
        assert sliced.column(name).to_pylist() == whole.column(name).to_pylist()[2:5], name
    assert (
        scoring.unpack_scored(large).column("top_value").to_pylist()
        == whole.column("top_value").to_pylist()
    )

"""The scoring stage's Python work, without Spark: Arrow in, scored Arrow out."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from models.features import normalise
from models.scorer import Scorer
from stream import scoring, sequence

MODEL = Path(__file__).resolve().parents[3] / "models" / "default"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load(MODEL, providers="cpu")


def _batch(raw: np.ndarray, scorer: Scorer) -> pa.RecordBatch:
    """Raw ``[N, K, F]`` features as the window operator emits them: normalised float32
    sequences, and the newest window's raw values (NaN kept), each packed as bytes."""
    return _arrow(normalise(raw, scorer.metadata.norm), raw[:, -1, :])


def _arrow(z: np.ndarray, raw_last: np.ndarray) -> pa.RecordBatch:
    n, k, f = z.shape
    return pa.RecordBatch.from_arrays(
        [
            pa.array([f"D{i}" for i in range(n)]),
            pa.array(np.arange(n, dtype=np.int64)),
            pa.array(np.arange(n, dtype=np.int64) + 1),
            pa.array(np.full(n, 5, dtype=np.int64)),
            pa.array(
                [row.astype(sequence.SEQUENCE_DTYPE).tobytes() for row in z.reshape(n, k * f)],
                pa.binary(),
            ),
            pa.array(
                [row.astype(sequence.LAST_WINDOW_DTYPE).tobytes() for row in raw_last],
                pa.binary(),
            ),
            *[pa.nulls(n, pa.binary() if k == "binary" else pa.string()) for _, k in DEAD],
        ],
        names=[f.name for f in sequence.sequences_schema().fields],
    )


DEAD = sequence.DEAD_LETTER_COLUMNS


def _dead_letters(n: int) -> pa.RecordBatch:
    """``n`` dead letters as the window operator emits them (window columns null)."""
    schema = sequence.sequences_schema()
    values = {
        "device_id": pa.array([sequence.DEAD_LETTER_KEY] * n),
        "dl_key": pa.array([None if i % 2 else f"k{i}".encode() for i in range(n)], pa.binary()),
        "dl_value": pa.array([f'{{"v": {i}'.encode() for i in range(n)], pa.binary()),
        "dl_field": pa.array(["payload"] * n),
        "dl_rule": pa.array(["json"] * n),
        "dl_reason": pa.array(["not a JSON object"] * n),
        "dl_source": pa.array([f"kafka:t/0@{i}" for i in range(n)]),
    }
    arrays = []
    for f in schema.fields:
        if f.name in values:
            arrays.append(values[f.name])
        elif f.name in ("sequence", "last_window"):
            arrays.append(pa.nulls(n, pa.binary()))
        else:
            arrays.append(pa.nulls(n, pa.int64()))
    return pa.RecordBatch.from_arrays(arrays, names=[f.name for f in schema.fields])


def _reference_top(scorer: Scorer, raw_last: np.ndarray, z_last: np.ndarray) -> list[str]:
    """The definition: dicts through json.dumps (what the template formatter must equal)."""
    names = scorer.metadata.feature_names
    mean, scale = np.asarray(scorer.metadata.norm.mean), np.asarray(scorer.metadata.norm.scale)
    out = []
    for row in range(len(raw_last)):
        order = np.argsort(-np.abs(z_last[row]), kind="stable")[: scoring.TOP_FEATURES]
        items = [
            {
                "name": names[j],
                "value": None if np.isnan(raw_last[row, j]) else round(float(raw_last[row, j]), 6),
                "z": round(float(z_last[row, j]), 3),
                "normal_low": round(float(mean[j] - 2 * scale[j]), 6),
                "normal_high": round(float(mean[j] + 2 * scale[j]), 6),
            }
            for j in order
        ]
        out.append(json.dumps(items, separators=(",", ":")))
    return out


def _raw(scorer: Scorer, n: int, seed: int = 0) -> np.ndarray:
    k, f = scorer.input_shape
    norm = scorer.metadata.norm
    rng = np.random.default_rng(seed)
    raw = np.asarray(norm.mean) + np.asarray(norm.scale) * rng.normal(scale=2.0, size=(n, k, f))
    raw[1, -1, 3] = np.nan  # a statistic with no values in the last window (a dropout)
    raw[1, -1, 7] = np.asarray(norm.mean)[7] + 50 * np.asarray(norm.scale)[7]  # far off
    return raw


def _described(scorer: Scorer, out: pa.RecordBatch) -> list[str]:
    """The batch's top features as the driver describes them, as JSON text."""
    formatter = scoring.TopFeatureFormatter(scorer)
    columns = zip(
        out.column("top_index").to_pylist(),
        out.column("top_value").to_pylist(),
        out.column("top_z").to_pylist(),
        strict=True,
    )
    return [
        json.dumps([asdict(f) for f in formatter.describe(i, v, z)], separators=(",", ":"))
        for i, v, z in columns
    ]


def test_score_batch_equals_the_scorer_and_the_reference_top_features(scorer: Scorer) -> None:
    raw = _raw(scorer, 64)
    out = scoring.score_batch(scorer, _batch(raw, scorer))

    assert out.schema == scoring.arrow_schema()
    np.testing.assert_array_equal(
        out.column("risk").to_numpy(), scorer.score_features(raw).astype(np.float64)
    )
    z = normalise(raw, scorer.metadata.norm)
    assert _described(scorer, out) == _reference_top(scorer, raw[:, -1, :], z[:, -1, :])
    top = json.loads(_described(scorer, out)[1])
    assert top[0]["name"] == scorer.metadata.feature_names[7]
    assert out.column("device_id").to_pylist()[:2] == ["D0", "D1"]
    assert set(out.column("model_version").to_pylist()) == {scorer.metadata.model_version}


def test_a_missing_statistic_becomes_the_training_mean_not_nan(scorer: Scorer) -> None:
    raw = _raw(scorer, 4)
    raw[2] = np.nan  # every statistic missing
    out = scoring.score_batch(scorer, _batch(raw, scorer))
    risk = out.column("risk").to_numpy()
    assert np.isfinite(risk).all()
    assert json.loads(_described(scorer, out)[2])[0]["value"] is None


def test_top_features_are_described_only_for_windows_that_raise_an_event(
    scorer: Scorer,
) -> None:
    import pyarrow as pa

    from stream.alerts import AlertPolicy, DeviceState, step
    from stream.sink import windows_from_arrow

    class Counting(scoring.TopFeatureFormatter):
        calls = 0

        def describe(self, *a: Any) -> tuple[dict[str, Any], ...]:
            Counting.calls += 1
            return super().describe(*a)

    raw = _raw(scorer, 8)
    out = scoring.score_batch(scorer, _batch(raw, scorer)).to_pylist()
    for i, row in enumerate(out):  # one device, rising risk: one window crosses 0.5
        row.update(device_id="D", window_end_ms=i + 1, risk=0.1 if i < 5 else 0.6)
    windows = windows_from_arrow(
        pa.Table.from_pylist(out, scoring.arrow_schema()), Counting(scorer)
    )
    state, events = DeviceState(), []
    for w in windows:
        state, produced = step(AlertPolicy(threshold=0.5), state, w, 1)
        events += produced
    assert [e.kind for e in events] == ["opened"] and Counting.calls == 1
    assert events[0].top_features == tuple(windows[5].top_features)
    assert len(events[0].top_features) == scoring.TOP_FEATURES


def test_a_sequence_of_the_wrong_length_is_refused_with_the_shapes(scorer: Scorer) -> None:
    k, f = scorer.input_shape
    raw = _raw(scorer, 3)
    z = normalise(raw, scorer.metadata.norm)[:, :, : f - 1]
    with pytest.raises(ValueError, match=rf"expects {k * f} values of 4 bytes"):
        scoring.score_batch(scorer, _arrow(z, raw[:, -1, :]))


def test_packed_columns_are_read_at_a_batchs_offset_and_nulls_are_refused(
    scorer: Scorer,
) -> None:
    raw = _raw(scorer, 10)
    whole = scoring.score_batch(scorer, _batch(raw, scorer))
    part = scoring.score_batch(scorer, _batch(raw, scorer).slice(3, 4))  # offset 3 in buffers
    assert part.column("risk").to_pylist() == whole.column("risk").to_pylist()[3:7]
    assert part.column("top_value").to_pylist() == whole.column("top_value").to_pylist()[3:7]
    batch = _batch(raw[:2], scorer)
    holed = batch.set_column(
        batch.schema.get_field_index("sequence"),
        "sequence",
        pa.array([batch.column("sequence")[0].as_py(), None], pa.binary()),
    )
    with pytest.raises(ValueError, match="sequence column has 1 null rows"):
        scoring.score_batch(scorer, holed)


def test_dead_letters_pass_the_scoring_stage_unchanged_and_windows_are_scored(
    scorer: Scorer,
) -> None:
    raw = _raw(scorer, 6)
    windows, dead = _batch(raw, scorer), _dead_letters(3)
    mixed = pa.Table.from_batches([windows, dead]).combine_chunks().to_batches()[0]
    mixed = mixed.take(pa.array([0, 6, 1, 2, 7, 3, 4, 8, 5]))  # interleaved, as a batch may be
    spec = scoring.ScoringSpec(str(MODEL), scorer.metadata.sha256, "cpu")
    out = list(scoring.score_partitions(spec)(iter([mixed])))
    assert all(b.schema == scoring.arrow_schema() for b in out)
    table = pa.Table.from_batches(out)
    rule = table.column("dl_rule").to_pylist()
    scored = table.filter(pa.array([r is None for r in rule]))
    passed = table.filter(pa.array([r is not None for r in rule]))
    assert scored.column("device_id").to_pylist() == [f"D{i}" for i in range(6)]
    np.testing.assert_array_equal(
        scored.column("risk").to_numpy(), scorer.score_features(raw).astype(np.float64)
    )
    for name, _ in DEAD:
        assert passed.column(name).to_pylist() == dead.column(name).to_pylist(), name
        assert scored.column(name).null_count == len(scored), name
    assert passed.column("risk").null_count == 3
    assert passed.column("device_id").to_pylist() == [sequence.DEAD_LETTER_KEY] * 3


def test_a_batch_of_dead_letters_only_needs_no_model_call(scorer: Scorer) -> None:
    spec = scoring.ScoringSpec(str(MODEL), scorer.metadata.sha256, "cpu")
    out = list(scoring.score_partitions(spec)(iter([_dead_letters(2)])))
    assert len(out) == 1 and out[0].num_rows == 2
    assert out[0].column("dl_rule").to_pylist() == ["json", "json"]

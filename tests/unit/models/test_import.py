"""`prognos model import`: a scikit-learn model exported with skl2onnx becomes a model folder
the scorer loads, whose risks are scikit-learn's, with a parity fixture that checks; what
cannot be mapped is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn not installed: needs the train extra")
pytest.importorskip("skl2onnx", reason="skl2onnx not installed: needs the train extra")

from models.candidate import check_parity
from models.importer import ImportError_, import_onnx
from models.metadata import DEFAULT_MODEL
from models.scorer import Scorer
from tests.sklearn_model import logistic_onnx


def test_a_scikit_learn_model_is_imported_and_scores_as_scikit_learn_does(
    tmp_path: Path, cmapss_dir: Path
) -> None:
    clf, x = logistic_onnx(cmapss_dir, tmp_path / "lr.onnx")
    summary = import_onnx(tmp_path / "lr.onnx", DEFAULT_MODEL, tmp_path / "lr", "sklearn-lr-1")
    assert summary["layout"] == "[N, K*F]" and "probabilities" in summary["output"]
    assert summary["producer"].startswith("skl2onnx")
    scorer = Scorer.load(tmp_path / "lr")
    meta = scorer.metadata
    assert meta.model_version == "sklearn-lr-1" and meta.arch.startswith("imported (skl2onnx")
    assert meta.feature_names == Scorer.load(DEFAULT_MODEL).metadata.feature_names
    risk = scorer.score(x)
    expected = clf.predict_proba(x.reshape(len(x), -1))[:, 1]
    assert np.allclose(risk, expected, atol=1e-5)
    assert check_parity(scorer) <= 1e-6
    assert (tmp_path / "lr" / "drift.json").is_file()


def test_what_cannot_be_mapped_is_refused_with_the_reason(tmp_path: Path, cmapss_dir: Path) -> None:
    logistic_onnx(cmapss_dir, tmp_path / "zipmap.onnx", zipmap=True)
    with pytest.raises(ImportError_, match="zipmap"):
        import_onnx(tmp_path / "zipmap.onnx", DEFAULT_MODEL, tmp_path / "a", "v")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ImportError_, match="not a readable ONNX model"):
        import_onnx(tmp_path / "junk.onnx", DEFAULT_MODEL, tmp_path / "b", "v")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("")
    with pytest.raises(ImportError_, match="is not empty"):
        import_onnx(tmp_path / "zipmap.onnx", DEFAULT_MODEL, tmp_path / "c", "v")


def test_an_input_of_another_width_is_refused_naming_the_shapes_that_fit(tmp_path: Path) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    clf = LogisticRegression().fit(rng.standard_normal((50, 7)), np.arange(50) % 2)
    onx = convert_sklearn(
        clf, initial_types=[("x", FloatTensorType([None, 7]))], options={id(clf): {"zipmap": False}}
    )
    (tmp_path / "seven.onnx").write_bytes(onx.SerializeToString())
    k, f = Scorer.load(DEFAULT_MODEL).metadata.input_shape
    with pytest.raises(ImportError_, match=rf"give \[N, {k}, {f}\], \[N, {k * f}\] or \[N, {f}\]"):
        import_onnx(tmp_path / "seven.onnx", DEFAULT_MODEL, tmp_path / "out", "v")

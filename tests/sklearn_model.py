"""A scikit-learn model trained on the default model's features, exported with skl2onnx:
what a data scientist would bring to `prognos model import`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def logistic_onnx(cmapss_dir: Path, out: Path, *, zipmap: bool = False) -> tuple[Any, np.ndarray]:
    """Train a logistic regression on FD001's normalised K x F windows (flattened) and export
    it to ``out``; returns the classifier and some of the normalised windows ``[N, K, F]``."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    from models.data import load_data
    from models.features import normalise
    from models.metadata import DEFAULT_MODEL
    from models.scorer import Scorer
    from models.training import build_sequences

    meta = Scorer.load(DEFAULT_MODEL).metadata
    seqs = build_sequences(
        load_data(f"cmapss:{cmapss_dir}"), meta.spec, phases=1, regimes=meta.norm.regimes
    )
    x = normalise(seqs.x, meta.norm)
    flat = x.reshape(len(x), -1)
    pick = np.random.default_rng(0).permutation(len(x))[:6000]
    clf = LogisticRegression(C=0.1, max_iter=300).fit(flat[pick], seqs.y[pick])
    k, f = meta.input_shape
    onx = convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, k * f]))],
        options={id(clf): {"zipmap": zipmap}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    out.write_bytes(onx.SerializeToString())
    return clf, x[:500]

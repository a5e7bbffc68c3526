"""train_model end to end on a tiny synthetic fleet: the seed and fold ensembles and one network.

Runs only where the train extra (PyTorch, onnx, scikit-learn) is installed, like
test_parity_torch.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch", reason="PyTorch not installed: needs the train extra")
pytest.importorskip("onnx", reason="onnx not installed: needs the train extra")
pytest.importorskip("sklearn", reason="scikit-learn not installed: needs the train extra")

from models.data import Recording
from models.features import FeatureSpec
from models.scorer import Scorer
from models.training import TrainConfig, train_model


def _fleet(devices: int = 12, step: float = 60.0) -> Recording:
    """Devices whose sensor ``a`` drifts up as failure nears; ``b`` is noise."""
    rng = np.random.default_rng(0)
    rows, failures = [], {}
    for d in range(devices):
        life = 60 + 5 * d
        t = np.arange(1, life + 1) * step
        wear = np.maximum(0.0, 1.0 - (life - np.arange(1, life + 1)) / 25.0)
        rows.append(pd.DataFrame({
            "device_id": f"dev-{d:02d}",
            "event_time": t,
            "a": wear * 3 + rng.normal(0, 0.2, life),
            "b": rng.normal(0, 1, life),
        }))  # fmt: skip
        failures[f"dev-{d:02d}"] = float(t[-1])
    return Recording("synthetic", pd.concat(rows, ignore_index=True), failures, "0" * 64, step)


SPEC = FeatureSpec(sensors=("a", "b"), window_seconds=300.0, sequence_length=4,
                   horizon_windows=2, name="synthetic")  # fmt: skip
QUICK = TrainConfig(arch="gru", folds=3, epochs=3, patience=2, hidden=8, phases=1,
                    ensemble="folds", rul_weight=1.0)  # fmt: skip


def test_fold_ensemble_exports_the_mean_of_the_cv_networks(tmp_path: Path) -> None:
    result = train_model(_fleet(), SPEC, tmp_path / "a", QUICK, progress=lambda _: None)
    training = result.training
    assert training["members"] == 3 and len(training["history"]) == 3
    assert training["data"]["val_devices"] == [] and training["data"]["train_devices"] == 12
    assert "out-of-fold" in training["threshold"]["chosen_on"]
    assert result.metadata.model_version == "synthetic-gru-x3-s7"
    scorer = Scorer.load(tmp_path / "a", providers="cpu")
    assert scorer.metadata.extra["members"] == 3
    assert scorer.metadata.threshold == training["threshold"]["value"]
    fixture = np.load(tmp_path / "a" / "parity.npz")
    assert float(np.max(np.abs(scorer.score(fixture["x"]) - fixture["y"]))) < 1e-5
    # Reproducible: the same seed gives the same bytes.
    again = train_model(_fleet(), SPEC, tmp_path / "b", QUICK, progress=lambda _: None)
    assert again.metadata.sha256 == result.metadata.sha256


def test_single_network_on_a_split(tmp_path: Path) -> None:
    config = TrainConfig(**{**QUICK.__dict__, "ensemble": "none", "rul_weight": 0.0})
    result = train_model(_fleet(), SPEC, tmp_path, config, progress=lambda _: None)
    training = json.loads((tmp_path / "training.json").read_text())
    assert training["members"] == 1 and isinstance(training["history"], dict)
    assert len(training["data"]["val_devices"]) == 2
    assert training["threshold"]["chosen_on"] == "validation devices (max F1)"
    assert "members" not in result.metadata.extra


def test_seed_ensemble_on_one_split(tmp_path: Path) -> None:
    config = TrainConfig(**{**QUICK.__dict__, "ensemble": "seeds", "seeds": 3, "rul_weight": 0.0})
    result = train_model(_fleet(), SPEC, tmp_path, config, progress=lambda _: None)
    training = result.training
    assert training["members"] == 3 and len(training["history"]) == 3
    assert len(training["data"]["val_devices"]) == 2
    assert "validation devices" in training["threshold"]["chosen_on"]
    assert result.metadata.model_version == "synthetic-gru-seeds3-s7"
    assert result.metadata.extra["members"] == 3
    # Three seeds: three different networks (a seed that is ignored gives equal histories).
    losses = {tuple(h["val_loss"]) for h in training["history"]}
    assert len(losses) == 3
    scorer = Scorer.load(tmp_path, providers="cpu")
    fixture = np.load(tmp_path / "parity.npz")
    assert float(np.max(np.abs(scorer.score(fixture["x"]) - fixture["y"]))) < 1e-5


def test_unknown_ensemble_is_refused(tmp_path: Path) -> None:
    config = TrainConfig(**{**QUICK.__dict__, "ensemble": "bagging"})
    with pytest.raises(ValueError, match="bagging"):
        train_model(_fleet(), SPEC, tmp_path, config, progress=lambda _: None)

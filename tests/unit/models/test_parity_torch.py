"""ONNX Runtime against PyTorch, live. Runs only where PyTorch and onnx are installed
(`make model`'s check, a training machine); CI without the train extra skips it and relies
on test_scorer.py's check of the committed parity.npz instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed: live ONNX/PyTorch parity "
                            "needs the train extra (pip install -e '.[train]')")  # fmt: skip
pytest.importorskip("onnx", reason="onnx not installed: needs the train extra")

from models.features import FeatureSpec, NormStats  # noqa: E402
from models.metadata import ModelMetadata, write_manifest  # noqa: E402
from models.network import build_network  # noqa: E402
from models.scorer import Scorer  # noqa: E402
from models.training import export_onnx  # noqa: E402


@pytest.mark.parametrize("arch", ["gru", "cnn"])
def test_onnxruntime_matches_pytorch(arch: str, tmp_path: Path) -> None:
    spec = FeatureSpec(sensors=("a", "b", "c"), window_seconds=60, sequence_length=7,
                       horizon_windows=2)  # fmt: skip
    torch.manual_seed(0)
    net = build_network(arch, spec.n_features, hidden=16).eval()
    meta = ModelMetadata(spec=spec, norm=NormStats((0.0,) * 18, (1.0,) * 18), threshold=0.5,
                         model_version=f"parity-{arch}", data_sha256="0" * 64, arch=arch)  # fmt: skip
    export_onnx(net, meta, tmp_path / "model.onnx")
    write_manifest(tmp_path, meta, created="2025-01-01T00:00:00+00:00")
    scorer = Scorer.load(tmp_path, providers="cpu")
    rng = np.random.default_rng(1)
    worst = 0.0
    for n in (1, 2, 7, 300):  # batch sizes other than the export example's (2)
        x = rng.normal(size=(n, *scorer.input_shape)).astype(np.float32) * 2
        with torch.no_grad():
            expected = torch.sigmoid(net(torch.from_numpy(x))).numpy()
        worst = max(worst, float(np.max(np.abs(scorer.score(x) - expected))))
    print(f"{arch}: max |onnxruntime - pytorch| = {worst:.3g}")
    assert worst < 1e-5


def test_ensemble_exports_the_mean_risk_of_its_members(tmp_path: Path) -> None:
    """A MeanRisk ensemble exports as one ONNX graph whose output is its members' mean risk."""
    from models.network import MeanRisk

    spec = FeatureSpec(sensors=("a", "b"), window_seconds=60, sequence_length=5,
                       horizon_windows=2)  # fmt: skip
    torch.manual_seed(0)
    members = [build_network("gru", spec.n_features, hidden=8).eval() for _ in range(3)]
    net = MeanRisk(members).eval()
    meta = ModelMetadata(spec=spec, norm=NormStats((0.0,) * 12, (1.0,) * 12), threshold=0.5,
                         model_version="parity-ensemble", data_sha256="0" * 64,
                         extra={"members": 3})  # fmt: skip
    export_onnx(net, meta, tmp_path / "model.onnx")
    write_manifest(tmp_path, meta, created="2025-01-01T00:00:00+00:00")
    scorer = Scorer.load(tmp_path, providers="cpu")
    assert scorer.metadata.extra["members"] == 3
    x = np.random.default_rng(2).normal(size=(50, *scorer.input_shape)).astype(np.float32)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        expected = torch.stack([torch.sigmoid(m(xt)) for m in members]).mean(0).numpy()
    assert float(np.max(np.abs(scorer.score(x) - expected))) < 1e-5

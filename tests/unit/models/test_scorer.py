"""The ONNX Runtime scorer on the committed default model: integrity, inputs, providers.

Needs only numpy and onnxruntime (no PyTorch).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from models.errors import (
    ChecksumMismatchError,
    CorruptModelError,
    InputShapeError,
    ModelFileError,
    NonFiniteInputError,
    ProviderUnavailableError,
)
from models.features import normalise
from models.metadata import ModelMetadata, sha256_file
from models.scorer import CPU_CHUNK_ROWS, Scorer, resolve_providers

DEFAULT = Path(__file__).resolve().parents[3] / "models" / "default"
CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load(DEFAULT, providers="cpu")


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.onnx", "manifest.json"):
        shutil.copy(DEFAULT / name, folder / name)
    return folder


def test_default_model_loads_with_its_metadata(scorer: Scorer) -> None:
    meta = scorer.metadata
    k, f = scorer.input_shape
    assert (k, f) == (meta.spec.sequence_length, len(meta.feature_names))
    assert meta.feature_names == meta.spec.feature_names and meta.feature_names[0].endswith(
        "__mean"
    )
    assert 0.0 < meta.threshold < 1.0 and len(meta.data_sha256) == 64
    assert meta.sha256 == json.loads((DEFAULT / "manifest.json").read_text())["sha256"]
    assert scorer.active_provider == CPU


def test_parity_with_pytorch_outputs_saved_at_export(scorer: Scorer) -> None:
    """ONNX Runtime reproduces the PyTorch outputs stored in parity.npz at export time."""
    fixture = np.load(DEFAULT / "parity.npz")
    x, expected = fixture["x"], fixture["y"]
    assert x.shape == (64, *scorer.input_shape)
    got = scorer.score(x)
    diff = float(np.max(np.abs(got - expected)))
    print(f"max |onnxruntime - pytorch| over 64 rows = {diff:.3g}")
    assert diff < 1e-5, f"max abs difference {diff:.3g} exceeds 1e-5"


def test_scores_any_batch_size_in_unit_interval(scorer: Scorer) -> None:
    rng = np.random.default_rng(0)
    k, f = scorer.input_shape
    for n in (0, 1, 3, 257):
        risk = scorer.score(rng.normal(size=(n, k, f)).astype(np.float32))
        assert risk.shape == (n,) and risk.dtype == np.float32
        assert np.all((risk >= 0) & (risk <= 1))
    one = rng.normal(size=(5, k, f)).astype(np.float32)
    assert np.allclose(scorer.score(one), np.concatenate([scorer.score(one[i : i + 1]) for i in range(5)]),
                       atol=1e-6)  # fmt: skip


def test_a_batch_larger_than_a_chunk_scores_in_parts_with_the_same_numbers(
    scorer: Scorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the CPU a batch of more than CPU_CHUNK_ROWS rows runs in parts (the intermediate
    # tensors stay in cache); a GPU provider would take it whole.
    assert scorer.active_provider == CPU and scorer._chunk == CPU_CHUNK_ROWS
    k, f = scorer.input_shape
    batch = np.random.default_rng(3).normal(size=(2 * CPU_CHUNK_ROWS + 1, k, f))
    calls: list[int] = []
    run = scorer._run

    def counted(outputs: Any, feeds: dict[str, np.ndarray]) -> Any:
        calls.append(len(next(iter(feeds.values()))))
        return run(outputs, feeds)

    monkeypatch.setattr(scorer, "_run", counted)
    got = scorer.score(batch)  # float64: converted once, then cut in views
    assert calls == [CPU_CHUNK_ROWS, CPU_CHUNK_ROWS, 1]
    monkeypatch.setattr(scorer, "_chunk", 0)  # as on a GPU: one call
    calls.clear()
    whole = scorer.score(batch)
    assert calls == [len(batch)]
    assert got.shape == whole.shape == (len(batch),)
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)


def test_a_gpu_provider_or_several_threads_take_a_batch_whole(scorer: Scorer) -> None:
    class Session:  # what Scorer reads of an onnxruntime session
        def __init__(self, providers: list[str]) -> None:
            self.providers = providers

        def get_providers(self) -> list[str]:
            return self.providers

        def run(self, *_: Any) -> Any:
            raise AssertionError("not called")

    gpu = Scorer(Session(["CUDAExecutionProvider", CPU]), scorer.metadata, scorer.path)
    assert gpu._chunk == 0
    threads = Scorer(Session([CPU]), scorer.metadata, scorer.path, intra_op_threads=2)
    assert threads._chunk == 0
    assert Scorer(Session([CPU]), scorer.metadata, scorer.path)._chunk == CPU_CHUNK_ROWS


def test_score_features_normalises_raw_features(scorer: Scorer) -> None:
    k, f = scorer.input_shape
    raw = np.tile(np.asarray(scorer.metadata.norm.mean), (2, k, 1))
    raw[1, 0, :] = np.nan  # a missing window counts as the training mean
    risk = scorer.score_features(raw)
    assert np.allclose(risk, scorer.score(np.zeros((2, k, f), np.float32)), atol=1e-6)
    assert np.array_equal(normalise(raw, scorer.metadata.norm), np.zeros((2, k, f), np.float32))


def test_wrong_number_of_features_refused(scorer: Scorer) -> None:
    k, f = scorer.input_shape
    with pytest.raises(InputShapeError, match=rf"expects \[N, {k}, {f}\]"):
        scorer.score(np.zeros((4, k, f - 1), np.float32))
    with pytest.raises(InputShapeError):
        scorer.score(np.zeros((4, f), np.float32))
    with pytest.raises(InputShapeError, match="not a numeric array"):
        scorer.score("windows")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_refused_with_position(scorer: Scorer, bad: float) -> None:
    k, f = scorer.input_shape
    x = np.zeros((3, k, f), np.float32)
    x[2, 1, 4] = bad
    with pytest.raises(NonFiniteInputError, match="row 2, window 1") as info:
        scorer.score(x)
    assert scorer.metadata.feature_names[4] in str(info.value)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_large_finite_values_are_not_mistaken_for_inf(scorer: Scorer) -> None:
    k, f = scorer.input_shape
    x = np.full((2, k, f), 3e38, np.float32)  # the float32 sum overflows, no value is Inf
    assert scorer.score(x).shape == (2,)


def test_flipped_byte_refused_by_checksum(model_copy: Path) -> None:
    onnx_path = model_copy / "model.onnx"
    data = bytearray(onnx_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx_path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="does not match") as info:
        Scorer.load(model_copy)
    assert "model.onnx" in str(info.value) and "manifest.json" in str(info.value)


def test_wrong_checksum_refused(model_copy: Path) -> None:
    with pytest.raises(ChecksumMismatchError, match="sha256 argument"):
        Scorer.load(model_copy, sha256="0" * 64)
    manifest = json.loads((model_copy / "manifest.json").read_text())
    manifest["sha256"] = "f" * 64
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ChecksumMismatchError):
        Scorer.load(model_copy / "model.onnx")


def test_corrupt_file_with_matching_checksum_refused(model_copy: Path) -> None:
    """A damaged file re-pinned by someone still fails to load, with a clear error."""
    onnx_path = model_copy / "model.onnx"
    onnx_path.write_bytes(b"\x08\x07garbage" + onnx_path.read_bytes()[:100])
    with pytest.raises(CorruptModelError, match="cannot load"):
        Scorer.load(onnx_path, sha256=sha256_file(onnx_path))


def test_unpinned_model_refused(model_copy: Path) -> None:
    (model_copy / "manifest.json").unlink()
    with pytest.raises(ModelFileError, match=r"no manifest\.json"):
        Scorer.load(model_copy / "model.onnx")
    with pytest.raises(ModelFileError, match="not found"):
        Scorer.load(model_copy / "missing.onnx")


def test_bad_manifest_refused(model_copy: Path) -> None:
    (model_copy / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptModelError, match="manifest"):
        Scorer.load(model_copy)


def test_metadata_inconsistencies_refused(scorer: Scorer) -> None:
    props = scorer.metadata.to_props()
    ModelMetadata.from_props(props, source="x")  # round trip
    short = dict(props)
    short["prognos.feature_names"] = json.dumps(list(scorer.metadata.feature_names[:-1]))
    with pytest.raises(CorruptModelError, match="feature_names"):
        ModelMetadata.from_props(short, source="m.onnx")
    missing = {k: v for k, v in props.items() if k != "prognos.normalisation"}
    with pytest.raises(CorruptModelError, match=r"prognos\.normalisation"):
        ModelMetadata.from_props(missing, source="m.onnx")
    with pytest.raises(CorruptModelError, match="not valid JSON"):
        ModelMetadata.from_props(props | {"prognos.threshold": "{"}, source="m.onnx")


# --------------------------------------------------------------------------- providers


def test_auto_prefers_tensorrt_then_cuda_then_cpu() -> None:
    assert resolve_providers("auto", [CPU, CUDA, TRT]) == [TRT, CUDA, CPU]
    assert resolve_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert resolve_providers("auto", [CPU]) == [CPU]


def test_explicit_lists_and_aliases() -> None:
    assert resolve_providers(["cuda", "cpu"], [CPU, CUDA]) == [CUDA, CPU]
    assert resolve_providers("tensorrt,cuda", [CPU, CUDA, TRT]) == [TRT, CUDA]
    assert resolve_providers([CPU], [CPU, CUDA]) == [CPU]


def test_missing_gpu_provider_is_an_error_unless_fallback_allowed() -> None:
    with pytest.raises(ProviderUnavailableError, match="onnxruntime-gpu"):
        resolve_providers(["cuda"], [CPU])
    assert resolve_providers(["cuda"], [CPU], allow_fallback=True) == [CPU]


def test_scorer_refuses_requested_gpu_not_available() -> None:
    if CUDA in ort.get_available_providers():
        pytest.skip("this machine has CUDA; the refusal is tested where it does not")
    with pytest.raises(ProviderUnavailableError, match="CUDAExecutionProvider"):
        Scorer.load(DEFAULT, providers="cuda")
    fallback = Scorer.load(DEFAULT, providers="cuda", allow_fallback=True)
    assert fallback.active_provider == CPU


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")
def test_scorer_refuses_gpu_that_does_not_become_active() -> None:
    """onnxruntime lists CUDA but falls back to CPU (e.g. CUDA libraries missing)."""
    if CUDA in ort.get_available_providers():
        pytest.skip("CUDA really is available here")
    fake = [CUDA, CPU]  # what a GPU build without working CUDA libraries reports
    with pytest.raises(ProviderUnavailableError, match="runs on CPUExecutionProvider"):
        Scorer.load(DEFAULT, providers=["cuda"], available_providers=fake)
    auto = Scorer.load(DEFAULT, providers="auto", available_providers=fake)
    assert auto.active_provider == CPU  # auto: logged, not raised


def test_gpu_provider_active_where_available() -> None:
    available = ort.get_available_providers()
    if CUDA not in available:
        pytest.skip(f"no CUDAExecutionProvider in this onnxruntime build ({available})")
    scorer = Scorer.load(DEFAULT, providers=["cuda"])
    assert scorer.active_provider == CUDA
    fixture = np.load(DEFAULT / "parity.npz")
    assert float(np.max(np.abs(scorer.score(fixture["x"]) - fixture["y"]))) < 1e-3


def test_intra_op_threads_default_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    real = ort.InferenceSession

    def spy(model: bytes, options: ort.SessionOptions, **kw: object) -> ort.InferenceSession:
        seen["threads"] = options.intra_op_num_threads
        return real(model, options, **kw)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    Scorer.load(DEFAULT, providers="cpu")
    assert seen["threads"] == 1
    Scorer.load(DEFAULT, providers="cpu", intra_op_threads=3)
    assert seen["threads"] == 3

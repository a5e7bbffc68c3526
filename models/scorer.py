"""The ONNX Runtime scorer: numpy batches in, failure risk out. numpy and onnxruntime only.

Contract: :meth:`Scorer.score` takes normalised windows ``[N, K, F]`` float32 (see
:func:`models.features.normalise`) and returns ``[N]`` risks in ``[0, 1]``: the model's
probability that each device fails within the horizon (``metadata.spec.horizon_windows``
windows). Higher is riskier; alert at ``risk >= metadata.threshold``.

Loading fails closed: the file's SHA-256 is checked against ``manifest.json`` (or an
explicit ``sha256=``) *before* ONNX Runtime parses it, then the input and output names and
shapes are checked against the metadata the file carries.

Execution providers: ``"auto"`` picks TensorRT, then CUDA, then CPU among those this
onnxruntime build offers; an explicit list (full names or ``cpu``/``cuda``/``tensorrt``)
is used as given. If a requested GPU provider is not available, or ONNX Runtime falls back
from it to CPU, loading raises :class:`ProviderUnavailableError` unless
``allow_fallback=True``. With ``"auto"`` a fall-back is logged, not raised, since nothing
specific was asked for.

Example:
    >>> scorer = Scorer.load("models/default")                      # doctest: +SKIP
    >>> x = normalise(raw_features, scorer.metadata.norm)           # doctest: +SKIP
    >>> risk = scorer.score(x)                                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import (
    CorruptModelError,
    InputShapeError,
    ModelFileError,
    NonFiniteInputError,
    ProviderUnavailableError,
)
from models.features import normalise
from models.metadata import ModelMetadata, read_manifest, resolve_model_path, verify_checksum

logger = logging.getLogger(__name__)

__all__ = ["AUTO_ORDER", "CPU_CHUNK_ROWS", "GPU_PROVIDERS", "Scorer", "resolve_providers"]

#: The order ``providers="auto"`` tries.
AUTO_ORDER: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
GPU_PROVIDERS = frozenset(
    {
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "ROCMExecutionProvider",
        "MIGraphXExecutionProvider",
        "DmlExecutionProvider",
        "OpenVINOExecutionProvider",
    }
)
_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
CPU = "CPUExecutionProvider"
_F32 = np.dtype(np.float32)

#: On the CPU provider with one intra-op thread, :meth:`Scorer.score` runs a batch of more
#: rows than this in parts of this many: each part's intermediate tensors stay in the
#: core's cache, and rows are scored independently (docs/performance.md, "The scorer in
#: parts").
CPU_CHUNK_ROWS = 256


def _canonical(name: str) -> str:
    return _ALIASES.get(name.strip().lower(), name.strip())


def resolve_providers(
    requested: str | Sequence[str],
    available: Sequence[str],
    *,
    allow_fallback: bool = False,
) -> list[str]:
    """The provider list to give ONNX Runtime, in priority order.

    Args:
        requested: ``"auto"``, one provider, a comma-separated string, or a list; names are
            ONNX Runtime's (``CUDAExecutionProvider``) or the aliases ``cpu``, ``cuda``,
            ``gpu``, ``tensorrt``, ``trt``.
        available: What ``onnxruntime.get_available_providers()`` reports.
        allow_fallback: Drop requested providers that are not available (keeping CPU last)
            instead of raising.

    Raises:
        ProviderUnavailableError: A requested provider is not available and fall-back is
            not allowed, or nothing usable remains.
    """
    avail = list(available)
    if isinstance(requested, str):
        if requested.strip().lower() == "auto":
            chosen = [p for p in AUTO_ORDER if p in avail]
            if not chosen:
                raise ProviderUnavailableError(f"none of {list(AUTO_ORDER)} in {avail}")
            return chosen
        wanted = [_canonical(p) for p in requested.split(",") if p.strip()]
    else:
        wanted = [_canonical(p) for p in requested]
    if not wanted:
        raise ProviderUnavailableError("no execution provider requested: give 'auto' or a list")
    missing = [p for p in wanted if p not in avail]
    if missing and not allow_fallback:
        hint = (
            " (install onnxruntime-gpu and its CUDA/TensorRT libraries, or pass "
            "allow_fallback=True / --allow-fallback to run on CPU)"
            if GPU_PROVIDERS.intersection(missing)
            else ""
        )
        raise ProviderUnavailableError(
            f"execution provider(s) {missing} requested but not available in this onnxruntime "
            f"build (available: {avail}){hint}"
        )
    chosen = [p for p in dict.fromkeys(wanted) if p in avail]
    if allow_fallback and CPU in avail and CPU not in chosen:
        chosen.append(CPU)
    if not chosen:
        raise ProviderUnavailableError(f"none of {wanted} is available (available: {avail})")
    if missing:
        logger.warning("providers %s not available; falling back to %s", missing, chosen)
    return chosen


class Scorer:
    """Scores numpy batches with a Prognos ONNX model on ONNX Runtime.

    Build one with :meth:`load`; it holds one ``InferenceSession`` and is safe to call from
    one thread at a time per instance (load one per worker process).

    Attributes:
        metadata: What the model file carries (spec, normalisation, threshold, ...).
        active_provider: The execution provider ONNX Runtime runs the model on.
        providers: All providers of the session, in priority order.
        path: The ONNX file.
    """

    def __init__(
        self, session: Any, metadata: ModelMetadata, path: Path, intra_op_threads: int = 1
    ) -> None:
        self._session = session
        self.metadata = metadata
        self.path = path
        self.providers: list[str] = list(session.get_providers())
        self.active_provider: str = self.providers[0]
        self._k, self._f = metadata.input_shape
        self._input = metadata.input_name
        self._outputs = [metadata.output_name]
        self._run = session.run  # pre-bound: one attribute lookup less per call
        # On one CPU thread a large batch runs in parts of CPU_CHUNK_ROWS rows (see score);
        # a GPU provider, or several threads sharing a call's work, take it whole.
        self._chunk = CPU_CHUNK_ROWS if self.active_provider == CPU and intra_op_threads == 1 else 0

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(K, F)``: sequence length and features per window of one row."""
        return (self._k, self._f)

    @property
    def threshold(self) -> float:
        """Alert threshold chosen on validation data."""
        return self.metadata.threshold

    @classmethod
    def load(
        cls,
        path: str | Path,
        providers: str | Sequence[str] = "auto",
        *,
        allow_fallback: bool = False,
        intra_op_threads: int = 1,
        sha256: str | None = None,
        available_providers: Sequence[str] | None = None,
    ) -> Scorer:
        """Verify, load and check a model.

        Args:
            path: A model folder (with ``model.onnx`` and ``manifest.json``) or an ONNX
                file with a ``manifest.json`` beside it or an explicit ``sha256``.
            providers: ``"auto"`` or an explicit provider list (see :func:`resolve_providers`).
            allow_fallback: Accept running on CPU when a requested GPU provider is missing
                or does not become active.
            intra_op_threads: ONNX Runtime intra-op threads (default 1: one scorer per worker
                process, and the workers share the cores).
            sha256: Expected SHA-256 of the ONNX file; overrides the manifest's.
            available_providers: Override of ``onnxruntime.get_available_providers()``
                (for tests).

        Raises:
            ModelFileError: No model there, or no checksum to verify against.
            ChecksumMismatchError: The file's SHA-256 differs from the pinned one.
            CorruptModelError: ONNX Runtime cannot parse it, or its metadata, input or
                output disagree.
            ProviderUnavailableError: A requested provider is missing or not active.
        """
        import onnxruntime as ort

        onnx_path, manifest_path = resolve_model_path(path)
        if sha256 is not None:
            pinned_by = "the sha256 argument"
        elif manifest_path is not None:
            sha256 = read_manifest(manifest_path)["sha256"]
            pinned_by = str(manifest_path)
        else:
            raise ModelFileError(
                f"{onnx_path}: no manifest.json beside it and no sha256 given, so its checksum "
                "cannot be verified; keep the model folder together or pass sha256="
            )
        digest = verify_checksum(onnx_path, sha256, pinned_by=pinned_by)
        available = list(available_providers or ort.get_available_providers())
        chosen = resolve_providers(providers, available, allow_fallback=allow_fallback)

        threads = max(1, int(intra_op_threads))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            # Bytes, not the path: exactly the bytes whose checksum was verified.
            session = ort.InferenceSession(onnx_path.read_bytes(), options, providers=chosen)
        except Exception as exc:  # onnxruntime raises several types for a bad file
            raise CorruptModelError(
                f"{onnx_path}: ONNX Runtime cannot load it ({type(exc).__name__}: "
                f"{str(exc)[:300]}); restore the file or re-export with `prognos train`"
            ) from exc
        metadata = ModelMetadata.from_props(
            session.get_modelmeta().custom_metadata_map, source=str(onnx_path), sha256=digest
        )
        _check_io(session, metadata, onnx_path)
        active = session.get_providers()[0]
        if active != chosen[0]:
            message = (
                f"{onnx_path}: execution provider {chosen[0]} was requested but ONNX Runtime "
                f"runs on {active} (its libraries did not load; see onnxruntime's log)"
            )
            explicit = not (isinstance(providers, str) and providers.strip().lower() == "auto")
            if explicit and chosen[0] in GPU_PROVIDERS and not allow_fallback:
                raise ProviderUnavailableError(message + "; pass allow_fallback=True to accept")
            logger.warning("%s", message)
        logger.info(
            "loaded %s (version %s, sha256 %s) on %s",
            onnx_path,
            metadata.model_version,
            digest[:12],
            active,
        )
        return cls(session, metadata, onnx_path, intra_op_threads=threads)

    def score(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Risk of each row of a normalised batch (on one CPU thread, a batch of more than
        :data:`CPU_CHUNK_ROWS` rows in parts of that many: the same numbers, faster).

        Args:
            batch: float32 ``[N, K, F]``, normalised (:func:`models.features.normalise`).
                float64 is accepted and converted (one copy).

        Returns:
            float32 ``[N]``, each in ``[0, 1]``.

        Raises:
            InputShapeError: Not an array of shape ``[N, K, F]``.
            NonFiniteInputError: The batch holds NaN or ±Inf.
        """
        if type(batch) is not np.ndarray or batch.dtype is not _F32:
            batch = self._coerce(batch)
        if batch.ndim != 3 or batch.shape[1] != self._k or batch.shape[2] != self._f:
            raise InputShapeError(
                f"batch shape {batch.shape}; model {self.metadata.model_version} expects "
                f"[N, {self._k}, {self._f}] (N rows, K={self._k} windows, "
                f"F={self._f} features: {self.metadata.feature_names[0]}...)"
            )
        # One summing pass: NaN/Inf anywhere make the sum non-finite (a finite batch whose
        # sum overflows float32 is told apart by the exact check in the error path). numpy's
        # sum stays on this thread; BLAS dot was faster alone but hands large vectors to
        # its thread pool, which costs more than it saves between model calls.
        if not math.isfinite(batch.sum()):
            self._refuse_non_finite(batch)
        n = batch.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.float32)
        chunk = self._chunk
        if not chunk or n <= chunk:
            out: npt.NDArray[np.float32] = self._run(self._outputs, {self._input: batch})[0]
            return out
        # Rows are scored independently, so parts give the same numbers; each part's
        # intermediate tensors stay in the core's cache (a C-contiguous batch's rows are
        # contiguous: the parts are views, not copies).
        parts = [
            self._run(self._outputs, {self._input: batch[i : i + chunk]})[0]
            for i in range(0, n, chunk)
        ]
        return np.concatenate(parts)

    def score_features(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Normalise raw window features ``[N, K, F]`` with the model's stats, then score."""
        return self.score(normalise(features, self.metadata.norm))

    def _coerce(self, batch: Any) -> npt.NDArray[np.float32]:
        try:
            return np.ascontiguousarray(batch, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InputShapeError(
                f"batch of type {type(batch).__name__} is not a numeric array: {exc}"
            ) from exc

    def _refuse_non_finite(self, batch: npt.NDArray[np.float32]) -> None:
        bad = ~np.isfinite(batch)
        if not bad.any():
            return  # the float32 sum overflowed; every value is finite
        row, window, feature = (int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteInputError(
            f"batch holds {int(bad.sum())} NaN/Inf value(s), first at row {row}, window "
            f"{window}, feature {self.metadata.feature_names[feature]!r}; normalise raw "
            "features with models.features.normalise (it maps missing values to 0)"
        )

    def __repr__(self) -> str:
        return (
            f"Scorer({str(self.path)!r}, version={self.metadata.model_version!r}, "
            f"provider={self.active_provider!r}, input=[N, {self._k}, {self._f}])"
        )


def _check_io(session: Any, metadata: ModelMetadata, source: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    k, f = metadata.input_shape
    if len(inputs) != 1 or inputs[0].name != metadata.input_name:
        raise CorruptModelError(
            f"{source}: inputs {[i.name for i in inputs]}; metadata 'input_name' says "
            f"[{metadata.input_name!r}]; re-export the model"
        )
    shape = list(inputs[0].shape)
    # A dynamic axis shows as a name (str) or None; a fixed one as an int.
    if len(shape) != 3 or shape[1:] != [k, f] or isinstance(shape[0], int):
        raise CorruptModelError(
            f"{source}: input {metadata.input_name!r} has shape {shape}; the metadata "
            f"(sequence_length={k}, {f} features) needs [batch, {k}, {f}] with a dynamic "
            "batch axis; re-export the model"
        )
    if inputs[0].type != "tensor(float)":
        raise CorruptModelError(f"{source}: input type {inputs[0].type}; expected tensor(float)")
    if not any(o.name == metadata.output_name for o in outputs):
        raise CorruptModelError(
            f"{source}: outputs {[o.name for o in outputs]} lack {metadata.output_name!r} "
            "named by the metadata 'output_name'; re-export the model"
        )

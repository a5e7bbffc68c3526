"""Model metadata (stored inside the ONNX file) and the model folder's manifest.

The ONNX file's ``metadata_props`` carry one JSON value per key ``prognos.<field>``
(feature names, spec, normalisation, threshold, horizon, model version, training-data hash,
input and output names). ``manifest.json`` beside it pins the file by SHA-256. Reading both
needs only the standard library and numpy; writing the ONNX props happens at export time.

Model folder layout::

    model.onnx        the network, input [batch, K, F] float32 -> output [batch] risk
    manifest.json     sha256, size, version, created, metadata summary
    MODEL_CARD.md     what the model is for, how it was trained, how good it is
    report.json/.md   evaluation report;  *.png  plots
    parity.npz        64 inputs and PyTorch's outputs, to check ONNX Runtime against
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import ChecksumMismatchError, CorruptModelError, ModelFileError
from models.features import FeatureSpec, NormStats

logger = logging.getLogger(__name__)

#: The committed default model (C-MAPSS FD001), shipped inside the package.
DEFAULT_MODEL = Path(__file__).resolve().parent / "default"

__all__ = [
    "DEFAULT_MODEL",
    "MANIFEST_NAME",
    "METADATA_PREFIX",
    "MODEL_NAME",
    "ModelMetadata",
    "read_manifest",
    "resolve_model_path",
    "sha256_file",
    "verify_checksum",
    "write_manifest",
]

MODEL_NAME = "model.onnx"
MANIFEST_NAME = "manifest.json"
METADATA_PREFIX = "prognos."
MANIFEST_FORMAT = "prognos-model/1"


@dataclass(frozen=True)
class ModelMetadata:
    """What a Prognos ONNX model carries about itself.

    Attributes:
        spec: The feature spec (sensors, statistics, window length W, sequence length K,
            horizon H).
        norm: Normalisation statistics learned at training time.
        threshold: Risk at or above which a device is alerted (chosen on validation data).
        model_version: Version string (e.g. ``"fd001-gru-2025.1"``).
        data_sha256: SHA-256 of the training data files.
        arch: Network architecture (``"gru"`` or ``"cnn"``).
        input_name: ONNX input name (shape ``[batch, K, F]``, float32, normalised).
        output_name: ONNX output name (shape ``[batch]``, risk in [0, 1]).
        sha256: SHA-256 of the ONNX file it was read from ("" before export).
        extra: Other ``prognos.*`` entries, kept as JSON values.
    """

    spec: FeatureSpec
    norm: NormStats
    threshold: float
    model_version: str
    data_sha256: str
    arch: str = "gru"
    input_name: str = "windows"
    output_name: str = "risk"
    sha256: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature names in model-input order."""
        return self.spec.feature_names

    @property
    def horizon_windows(self) -> int:
        """Label horizon H in windows."""
        return self.spec.horizon_windows

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(K, F)``: the per-row input shape."""
        return (self.spec.sequence_length, self.spec.n_features)

    def to_props(self) -> dict[str, str]:
        """``metadata_props`` entries: ``prognos.<field>`` -> JSON text."""
        props = {
            "feature_names": list(self.feature_names),
            "window_seconds": self.spec.window_seconds,
            "sequence_length": self.spec.sequence_length,
            "horizon_windows": self.spec.horizon_windows,
            "spec": self.spec.to_dict(),
            "normalisation": self.norm.to_dict(),
            "threshold": self.threshold,
            "model_version": self.model_version,
            "data_sha256": self.data_sha256,
            "arch": self.arch,
            "input_name": self.input_name,
            "output_name": self.output_name,
            **dict(self.extra),
        }
        return {METADATA_PREFIX + k: json.dumps(v, sort_keys=True) for k, v in props.items()}

    @classmethod
    def from_props(
        cls, props: Mapping[str, str], *, source: str, sha256: str = ""
    ) -> ModelMetadata:
        """Parse ``metadata_props``; ``source`` names the file in error messages.

        Raises:
            CorruptModelError: A required entry is missing, is not JSON, or disagrees with
                another (e.g. feature names vs the spec).
        """
        values: dict[str, Any] = {}
        for key, text in props.items():
            if key.startswith(METADATA_PREFIX):
                try:
                    values[key[len(METADATA_PREFIX) :]] = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise CorruptModelError(
                        f"{source}: metadata {key!r} is not valid JSON ({exc}); re-export the model"
                    ) from exc
        required = (
            "spec",
            "normalisation",
            "threshold",
            "model_version",
            "data_sha256",
            "feature_names",
        )
        missing = [METADATA_PREFIX + k for k in required if k not in values]
        if missing:
            raise CorruptModelError(
                f"{source}: metadata {missing} missing; this is not a Prognos model export "
                "(train one with `prognos train`)"
            )
        try:
            spec = FeatureSpec.from_dict(values.pop("spec"))
            norm = NormStats.from_dict(values.pop("normalisation"))
            threshold = float(values.pop("threshold"))
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptModelError(
                f"{source}: metadata spec/normalisation invalid ({exc})"
            ) from exc
        names = tuple(values.pop("feature_names"))
        if names != spec.feature_names:
            raise CorruptModelError(
                f"{source}: metadata 'feature_names' ({len(names)}) disagree with the spec's "
                f"features ({spec.n_features}); re-export the model"
            )
        if len(norm.mean) != spec.n_features:
            raise CorruptModelError(
                f"{source}: normalisation has {len(norm.mean)} features, the spec "
                f"{spec.n_features}; re-export the model"
            )
        if not 0.0 <= threshold <= 1.0:
            raise CorruptModelError(f"{source}: metadata threshold {threshold} not in [0, 1]")
        for derived in ("window_seconds", "sequence_length", "horizon_windows"):
            values.pop(derived, None)
        return cls(
            spec=spec,
            norm=norm,
            threshold=threshold,
            model_version=str(values.pop("model_version")),
            data_sha256=str(values.pop("data_sha256")),
            arch=str(values.pop("arch", "gru")),
            input_name=str(values.pop("input_name", "windows")),
            output_name=str(values.pop("output_name", "risk")),
            sha256=sha256,
            extra=values,
        )

    def summary(self) -> dict[str, Any]:
        """A short JSON-ready summary for manifests and ``prognos model info``."""
        return {
            "model_version": self.model_version,
            "arch": self.arch,
            "spec": self.spec.name,
            "sensors": list(self.spec.sensors),
            "statistics": list(self.spec.statistics),
            "window_seconds": self.spec.window_seconds,
            "sequence_length": self.spec.sequence_length,
            "horizon_windows": self.spec.horizon_windows,
            "n_features": self.spec.n_features,
            "threshold": self.threshold,
            "data_sha256": self.data_sha256,
            "input": f"{self.input_name} float32 [batch, {self.spec.sequence_length}, "
            f"{self.spec.n_features}]",
            "output": f"{self.output_name} float32 [batch]",
        }


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_model_path(path: str | Path) -> tuple[Path, Path | None]:
    """``(onnx_file, manifest_or_None)`` for a model folder or an ONNX file.

    Raises:
        ModelFileError: Nothing is there, or a folder has no ``model.onnx``.
    """
    p = Path(path)
    if p.is_dir():
        onnx_path = p / MODEL_NAME
        if not onnx_path.is_file():
            raise ModelFileError(
                f"model folder {p} has no {MODEL_NAME}; train one with `prognos train`"
            )
        manifest = p / MANIFEST_NAME
        return onnx_path, manifest if manifest.is_file() else None
    if not p.is_file():
        raise ModelFileError(f"model not found: {p} (give a model folder or an .onnx file)")
    manifest = p.parent / MANIFEST_NAME
    return p, manifest if manifest.is_file() else None


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a ``manifest.json``.

    Raises:
        CorruptModelError: Unreadable, not JSON, or no ``sha256``.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(f"{p}: unreadable manifest ({exc}); re-export the model") from exc
    sha = data.get("sha256") if isinstance(data, dict) else None
    if not isinstance(sha, str) or len(sha) != 64:
        raise CorruptModelError(f"{p}: field 'sha256' missing or not a SHA-256 hex digest")
    return dict(data)


def verify_checksum(onnx_path: Path, expected: str, *, pinned_by: str) -> str:
    """Check the file's SHA-256; return it.

    Raises:
        ChecksumMismatchError: The digest differs (``pinned_by`` says where ``expected``
            came from).
    """
    actual = sha256_file(onnx_path)
    if actual != expected.lower():
        raise ChecksumMismatchError(
            f"{onnx_path}: SHA-256 {actual} does not match {expected} from {pinned_by}; the "
            "model file was changed or damaged: restore it (e.g. `git checkout` it) or "
            "re-export the model with `prognos train`"
        )
    return actual


def write_manifest(
    folder: Path, metadata: ModelMetadata, *, created: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``manifest.json`` for ``folder/model.onnx``; return its content."""
    onnx_path = folder / MODEL_NAME
    manifest = {
        "format": MANIFEST_FORMAT,
        "model_file": MODEL_NAME,
        "sha256": sha256_file(onnx_path),
        "size_bytes": onnx_path.stat().st_size,
        "model_version": metadata.model_version,
        "created": created,
        "metadata": metadata.summary(),
        **dict(extra or {}),
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest

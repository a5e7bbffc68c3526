"""Errors raised by :mod:`models`.

Every message names the input (file, field, feature) and the fix. None of these errors is
``retriable``: a bad model file or a bad batch stays bad on a second try.

Hierarchy::

    ModelError                   root of this package; ``retriable`` says if a retry can help
    ├── ModelFileError           a model file or folder cannot be used
    │   ├── CorruptModelError    not a readable ONNX model, or its metadata is missing/invalid
    │   └── ChecksumMismatchError  the file's SHA-256 differs from the one it is pinned to
    ├── InputError               a batch handed to the scorer or normaliser is unusable
    │   ├── InputShapeError      wrong rank, sequence length or number of features
    │   └── NonFiniteInputError  NaN or ±Inf where a finite number is required
    ├── ProviderUnavailableError a requested execution provider is not active
    ├── DataError                training or evaluation data is unusable (format, no failures)
    └── MissingDependencyError   a training-only package (torch, onnx, ...) is not installed
"""

from __future__ import annotations

__all__ = [
    "ChecksumMismatchError",
    "CorruptModelError",
    "DataError",
    "InputError",
    "InputShapeError",
    "MissingDependencyError",
    "ModelError",
    "ModelFileError",
    "NonFiniteInputError",
    "ProviderUnavailableError",
]


class ModelError(Exception):
    """Root of the errors raised by :mod:`models`."""

    retriable = False


class ModelFileError(ModelError):
    """A model file or model folder cannot be used."""


class CorruptModelError(ModelFileError):
    """The file is not a readable ONNX model, or its Prognos metadata is missing or invalid."""


class ChecksumMismatchError(ModelFileError):
    """The model file's SHA-256 differs from the checksum it is pinned to (tampered or damaged)."""


class InputError(ModelError):
    """A batch handed to the scorer or to :func:`models.features.normalise` is unusable."""


class InputShapeError(InputError):
    """A batch has the wrong rank, sequence length or number of features."""


class NonFiniteInputError(InputError):
    """A batch holds NaN or ±Inf where only finite numbers are accepted."""


class ProviderUnavailableError(ModelError):
    """A requested ONNX Runtime execution provider is not available or did not become active."""


class DataError(ModelError):
    """Training or evaluation data is unusable: unreadable, wrong columns, or no failures."""


class MissingDependencyError(ModelError):
    """A package needed only for training or evaluation (torch, onnx, matplotlib) is missing."""

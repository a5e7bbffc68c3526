"""Prognos models: features, the PyTorch failure-risk model, training, evaluation, ONNX
export, and the ONNX Runtime scorer (numpy and onnxruntime only at run time).

:class:`Scorer` loads a model folder (checksum-verified, its :class:`ModelMetadata` with
the :class:`FeatureSpec` it was trained with) and scores sequences of window features
computed by :func:`compute_windows_features`, the code training used. Training
(``models.training``) needs the ``train`` extra (PyTorch). A user's recording is labelled
from its :class:`EventLog` (``models.labels``) and its alerts are judged by
:func:`event_metrics` (``models.events``), the same table for ``evaluate`` and a backtest.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DEFAULT_MODEL",
    "EventLog",
    "FeatureSpec",
    "ModelError",
    "ModelMetadata",
    "NormStats",
    "Scorer",
    "compute_window_features",
    "compute_windows_features",
    "evaluate_cmapss",
    "event_metrics",
    "load_data",
]

_EXPORTS = {
    "DEFAULT_MODEL": "models.metadata",
    "EventLog": "models.labels",
    "FeatureSpec": "models.features",
    "ModelError": "models.errors",
    "ModelMetadata": "models.metadata",
    "NormStats": "models.features",
    "Scorer": "models.scorer",
    "compute_window_features": "models.features",
    "compute_windows_features": "models.features",
    "evaluate_cmapss": "models.evaluation",
    "event_metrics": "models.events",
    "load_data": "models.data",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import models` (and `prognos --help`) stays cheap.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

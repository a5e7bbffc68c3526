"""Prognos models: features, the PyTorch failure-risk model, training, evaluation, ONNX
export, and the ONNX Runtime scorer (numpy and onnxruntime only at run time)."""

from __future__ import annotations

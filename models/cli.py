"""Subcommands of the models package: ``prognos model``.

``prognos train`` and ``prognos evaluate`` read recordings with ``ingest`` and apply the
stream job's alert policy, so they live in ``deploy`` (``deploy/fleet_cli.py``). Only
argparse is imported at module level; onnxruntime is imported by the handler.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``model`` to the ``prognos`` parser."""
    model = subparsers.add_parser(
        "model",
        help="inspect, import and promote models",
        description="Inspect a model folder, import an ONNX model trained elsewhere, and "
        "change the running stream job's model.",
    )
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser(
        "info",
        help="verify a model and print its metadata",
        description="Verify the checksum, load the model with ONNX "
        "Runtime and print its metadata and active provider.",
    )
    info.add_argument("path", nargs="?", default="models/default", help="model folder or .onnx")
    info.add_argument("--providers", default="auto", help="auto, or a comma-separated list")
    info.add_argument(
        "--allow-fallback", action="store_true", help="accept CPU if a GPU is missing"
    )
    info.set_defaults(handler=_info)
    drift = actions.add_parser(
        "drift-reference",
        help="record a model's training distribution for input-drift watching",
        description="Compute the deciles of each sensor's normalised window mean over a "
        "recording (the model's training data) and write them to drift.json in the model "
        "folder. `prognos train` does this itself; this is for models trained before it did.",
    )
    drift.add_argument("path", help="model folder")
    drift.add_argument(
        "--data", required=True, help="the training data: cmapss:DIR[#FD00x] or sim:PATH"
    )
    drift.set_defaults(handler=_drift_reference)
    imp = actions.add_parser(
        "import",
        help="wrap an ONNX model trained elsewhere (scikit-learn, Keras, PyTorch) as a model folder",
        description="Wrap FILE.onnx, which reads the same window features as the model "
        "folder --like, as a Prognos model folder (metadata, manifest and checksum, parity "
        "fixture) that can be evaluated, backtested and promoted. Its input is [N, K, F], "
        "[N, K*F] or [N, F] float32 (normalised as --like normalises); its output a risk "
        "[N] / [N, 1] or class probabilities [N, 2].",
    )
    imp.add_argument("file", help="the ONNX file")
    imp.add_argument("--like", required=True, help="the model folder whose features it reads")
    imp.add_argument("--out", required=True, help="the new model folder")
    imp.add_argument("--version", required=True, help="the imported model's version")
    imp.add_argument("--threshold", type=float, help="its alert threshold (default: --like's)")
    imp.set_defaults(handler=_import)


def _info(args: argparse.Namespace) -> int:
    import json

    from models.scorer import Scorer

    scorer = Scorer.load(args.path, providers=args.providers, allow_fallback=args.allow_fallback)
    summary = scorer.metadata.summary() | {
        "sha256": scorer.metadata.sha256,
        "path": str(scorer.path),
        "active_provider": scorer.active_provider,
        "providers": scorer.providers,
    }
    print(json.dumps(summary, indent=2))
    return 0


def _drift_reference(args: argparse.Namespace) -> int:
    from models.data import load_data, window_features
    from models.drift import reference_from_features, write_reference
    from models.scorer import Scorer

    scorer = Scorer.load(args.path)
    meta = scorer.metadata
    recording = load_data(args.data)
    windows = window_features(recording, meta.spec, regimes=meta.norm.regimes)
    path = write_reference(
        args.path, reference_from_features(windows.features, meta.spec, meta.norm)
    )
    print(f"wrote {path}: {len(windows.features)} windows of {recording.name}")
    return 0


def _import(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from models.importer import import_onnx

    summary = import_onnx(
        Path(args.file), Path(args.like), Path(args.out), args.version, args.threshold
    )
    print(f"imported {args.file} as {args.out} (version {args.version})")
    print(json.dumps(summary, indent=2))
    return 0

"""Subcommands of the models package: ``prognos train``, ``prognos evaluate``, ``prognos model``.

Only argparse is imported at module level; torch, onnxruntime and pandas are imported by
the handlers that need them.
"""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_CMAPSS = "cmapss:../shared/data/cmapss"


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give at least 1")
    return value


def register(subparsers: Any) -> None:
    """Add ``train``, ``evaluate`` and ``model`` to the ``prognos`` parser."""
    train = subparsers.add_parser(
        "train",
        help="train the failure-risk model and export it to ONNX (needs the train extra)",
        description="Train the failure-risk network on C-MAPSS or a simulator recording: "
        "device-grouped k-fold cross-validation to choose the architecture, early stopping, "
        "the mean risk of 5 networks trained from consecutive seeds on one device-grouped "
        "split as the model (or the fold networks: --ensemble folds; one network: --ensemble "
        "none), a logistic-regression baseline, ONNX export with metadata and a manifest, "
        "then (for C-MAPSS) the evaluation report and the model card. Needs PyTorch: "
        "pip install -c constraints.txt -e '.[train]'.",
    )
    train.add_argument(
        "--data",
        default=DEFAULT_CMAPSS,
        help=f"cmapss:DIR[#FD001] or sim:PATH (default {DEFAULT_CMAPSS})",
    )
    train.add_argument("--out", required=True, help="model folder to write (e.g. models/default)")
    train.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    train.add_argument(
        "--arch",
        choices=["gru", "cnn", "auto"],
        default="auto",
        help="network; auto chooses by cross-validation (default)",
    )
    train.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds (default 5; 1: none)"
    )
    train.add_argument(
        "--ensemble",
        choices=["seeds", "folds", "none"],
        default="seeds",
        help="seeds: export the mean risk of --seeds networks trained on one train/validation "
        "split from consecutive seeds, threshold on the validation devices (default); folds: "
        "the mean risk of the cross-validation networks, threshold from their out-of-fold "
        "predictions; none: one network on a train/validation split",
    )
    train.add_argument(
        "--seeds", type=_at_least_one, default=5, help="networks of the seeds ensemble (default 5)"
    )
    train.add_argument(
        "--rul-weight",
        type=float,
        default=0.0,
        help="weight of an auxiliary remaining-useful-life loss (default 0: off; e.g. 1.0)",
    )
    train.add_argument("--epochs", type=int, default=40, help="maximum epochs per fit (default 40)")
    train.add_argument(
        "--patience", type=int, default=6, help="early-stopping patience (default 6)"
    )
    train.add_argument(
        "--phases", type=int, default=5, help="window alignments per device (default 5)"
    )
    train.add_argument("--regimes", type=int, default=1, help="operating regimes to normalise per")
    train.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, reproducible)"
    )
    train.add_argument(
        "--cycle-seconds",
        type=float,
        default=600.0,
        help="C-MAPSS: event time per cycle (default 600, as the replay)",
    )
    train.add_argument(
        "--window-cycles", type=int, default=5, help="C-MAPSS: W in cycles (default 5)"
    )
    train.add_argument("--sequence-length", type=int, default=10, help="K windows (default 10)")
    train.add_argument(
        "--horizon-cycles", type=int, default=30, help="C-MAPSS: horizon (default 30)"
    )
    train.add_argument(
        "--window-seconds",
        type=float,
        default=None,
        help="sim: window length W in seconds (default 300)",
    )
    train.add_argument(
        "--horizon-windows", type=int, default=None, help="sim: horizon H in windows"
    )
    train.add_argument("--sensors", default=None, help="sim: comma-separated sensors (default all)")
    train.add_argument("--model-version", default="", help="version string stored in the model")
    train.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="evaluate an exported model (ONNX Runtime) and write the report and plots",
        description="Score the C-MAPSS test protocol with the exported ONNX model (label: fails "
        "within the model's horizon; the last sequence of each test engine with a full "
        "history) and write report.json, report.md and PNG plots. Plots need matplotlib.",
    )
    evaluate.add_argument("--model", default="models/default", help="model folder")
    evaluate.add_argument("--data", default=DEFAULT_CMAPSS, help="cmapss:DIR[#FD001]")
    evaluate.add_argument("--out", default=None, help="report folder (default: the model folder)")
    evaluate.add_argument("--cycle-seconds", type=float, default=600.0, help="event time per cycle")
    evaluate.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    evaluate.set_defaults(handler=_evaluate)

    model = subparsers.add_parser(
        "model", help="inspect a model folder", description="Inspect exported models."
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


def _progress(line: str) -> None:
    print(line, flush=True)


def _train(args: argparse.Namespace) -> int:
    import json
    import shlex
    import sys
    from pathlib import Path

    from models.errors import DataError
    from models.training import _require_torch

    _require_torch()  # a clear message before any data is read
    from models.data import cmapss_spec, load_data
    from models.features import FeatureSpec
    from models.modelcard import write_model_card
    from models.training import TrainConfig, train_model

    recording = load_data(args.data, cycle_seconds=args.cycle_seconds)
    test = None
    if args.data.startswith("cmapss:"):
        subset = args.data.partition("#")[2] or "FD001"
        spec = cmapss_spec(
            cycle_seconds=args.cycle_seconds,
            window_cycles=args.window_cycles,
            sequence_length=args.sequence_length,
            horizon_cycles=args.horizon_cycles,
            subset=subset,
        )
        test = load_data(args.data, split="test", cycle_seconds=args.cycle_seconds)
    else:
        sensors = tuple(args.sensors.split(",")) if args.sensors else recording.sensors
        if args.horizon_windows is None:
            raise DataError("sim data: give --horizon-windows (H) and --window-seconds (W)")
        spec = FeatureSpec(
            sensors=sensors,
            window_seconds=args.window_seconds or 300.0,
            sequence_length=args.sequence_length,
            horizon_windows=args.horizon_windows,
            name="sim",
        )
    config = TrainConfig(
        arch=args.arch,
        seed=args.seed,
        epochs=args.epochs,
        patience=args.patience,
        folds=args.folds,
        phases=args.phases,
        regimes=args.regimes,
        threads=args.threads,
        ensemble=args.ensemble,
        seeds=args.seeds,
        rul_weight=args.rul_weight,
        model_version=args.model_version,
    )
    out = Path(args.out)
    result = train_model(recording, spec, out, config, progress=_progress, test=test)
    result.training["command"] = "prognos " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    from models.study import recipe_of, summary_for

    study = summary_for(recording.data_sha256, spec.sensors)
    if study is not None and recipe_of(config) == study["chosen"]:
        # The nested-CV study that chose this recipe, kept with the model it describes.
        result.training["recipe_study"] = study
    (out / "training.json").write_text(
        json.dumps(result.training, indent=2) + "\n", encoding="utf-8"
    )
    report = None
    if test is not None:
        from models.evaluation import evaluate_cmapss

        directory, _, subset = args.data.partition(":")[2].partition("#")
        report = evaluate_cmapss(
            out,
            directory,
            out,
            subset=subset or "FD001",
            cycle_seconds=args.cycle_seconds,
            plots=not args.no_plots,
            training=result.training,
        )
        _print_metrics(report)
    write_model_card(out, result.training, report)
    print(f"model folder: {out}")
    return 0


def _print_metrics(report: dict[str, Any]) -> None:
    m, ci = report["metrics"], report["ci95"]
    print(f"{report['protocol']['name']}: {report['protocol']['engines_scored']} engines")
    for name in ("accuracy", "precision", "recall", "f1", "pr_auc"):
        print(f"  {name:<9} {m[name]:.4f}  95% CI [{ci[name][0]:.3f}, {ci[name][1]:.3f}]")
    print(f"  confusion [[tn, fp], [fn, tp]] = {m['confusion_matrix']}")


def _evaluate(args: argparse.Namespace) -> int:
    from models.errors import DataError
    from models.evaluation import evaluate_cmapss

    kind, _, where = args.data.partition(":")
    if kind != "cmapss" or not where:
        raise DataError(f"--data {args.data!r}: evaluate supports cmapss:DIR[#FD001] for now")
    directory, _, subset = where.partition("#")
    report = evaluate_cmapss(
        args.model,
        directory,
        args.out or args.model,
        subset=subset or "FD001",
        cycle_seconds=args.cycle_seconds,
        plots=not args.no_plots,
    )
    _print_metrics(report)
    print(f"report: {args.out or args.model}/report.md")
    return 0


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

"""``prognos train`` and ``prognos evaluate``: C-MAPSS, simulator recordings and a user's fleet.

The model code (``models``) takes plain data; this module joins it to the rest of the
system, which only ``deploy`` may do:

* :mod:`deploy.fleet_data` reads a recording as ``prognos replay`` reads it (the column
  options of :mod:`ingest.columns`), checks each reading with the producer's rules
  (:mod:`ingest.validation`) and reads the failure and maintenance logs; what it leaves out
  is counted and named, never dropped silently;
* :mod:`models.fleet` chooses what the user left open and holds out the test devices,
  :mod:`models.training` trains;
* :mod:`deploy.fleet_eval` applies the stream job's alert policy
  (:class:`stream.config.StreamConfig`, :func:`stream.alerts.step`) to every window the job
  would score, device by device in time order, and judges the alerts with
  :func:`models.events.event_metrics`.

``--data cmapss:DIR[#FD00x]`` and ``--data sim:PATH`` work as before (the C-MAPSS
protocol, the simulator loader). Only argparse is imported at module level.
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


def _duration(text: str) -> float:
    from models.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _regimes(text: str) -> str | int:
    if text.strip().lower() == "auto":
        return "auto"
    return _at_least_one(text)


def _recording_options(parser: argparse.ArgumentParser) -> None:
    """The column options of ``prognos replay`` and the event options."""
    from ingest.cli import add_column_options

    rec = parser.add_argument_group(
        "a recording (--data FILE): its columns, as for `prognos replay`"
    )
    add_column_options(rec, ignore=False, cycle_seconds=False)
    ev = parser.add_argument_group("failures and maintenance of a recording")
    ev.add_argument(
        "--failures",
        metavar="FILE",
        help="failure log (CSV, Parquet, JSON lines): one row per failure",
    )
    ev.add_argument(
        "--failure-column",
        metavar="COL",
        help="a column of the recording that flags a failure (1/true on the failure's reading)",
    )
    ev.add_argument(
        "--maintenance", metavar="FILE", help="maintenance log: one row per maintenance"
    )
    ev.add_argument(
        "--maintenance-keeps-age",
        action="store_true",
        help="maintenance does not renew a device (default: it does, like a repair)",
    )
    ev.add_argument(
        "--events-device-column",
        help="the logs' device column (default: the recording's device column)",
    )
    ev.add_argument(
        "--events-time-column",
        help="the logs' time column (default: the recording's time column)",
    )


def _evaluation_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``evaluate`` that ``backtest`` shares."""
    parser.add_argument("--model", default="models/default", help="model folder")
    parser.add_argument("--out", default=None, help="report folder (default: the model folder)")
    parser.add_argument("--cycle-seconds", type=float, default=600.0, help="event time per cycle")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--lead",
        type=_duration,
        default=None,
        help="a failure counts as caught by an alert at least this long before it "
        "(default one window)",
    )
    parser.add_argument(
        "--max-lead",
        type=_duration,
        default=None,
        help="... and at most this long before it (default the model's horizon)",
    )
    parser.add_argument(
        "--include-training-devices",
        action="store_true",
        help="score the devices the model was trained on too (optimistic figures)",
    )
    parser.add_argument(
        "--threshold", type=float, help="alert threshold (default the model's), as `stream`"
    )
    parser.add_argument(
        "--hysteresis", type=float, default=0.1, help="alert hysteresis (default 0.1)"
    )
    parser.add_argument(
        "--cooldown", type=int, default=3, help="windows without a new alert after a resolve"
    )
    parser.add_argument(
        "--catalogue",
        metavar="FILE",
        help="the sensor catalogue to validate readings with, as the stream job would "
        "(default: the model folder's catalogue.toml, else the default catalogue)",
    )


def register(subparsers: Any) -> None:
    """Add ``train`` and ``evaluate`` to the ``prognos`` parser."""
    train = subparsers.add_parser(
        "train",
        help="train the failure-risk model and export it to ONNX (needs the train extra)",
        description="Train the failure-risk network on C-MAPSS, a simulator recording, or a "
        "recording of your fleet (CSV, Parquet, JSON lines) with its failure log: "
        "device-grouped k-fold cross-validation to choose the architecture, early stopping, "
        "the mean risk of 5 networks trained from consecutive seeds on one device-grouped "
        "split as the model (or the fold networks: --ensemble folds; one network: --ensemble "
        "none), a logistic-regression baseline, ONNX export with metadata and a manifest, "
        "then the evaluation report and the model card. On a recording, what you leave open "
        "(window, horizon, sequence length, regimes) is chosen from the data and recorded "
        "with the reason, and a device-grouped test split is held out (split.json). Needs "
        "PyTorch: pip install -c constraints.txt -e '.[train]'.",
    )
    train.add_argument(
        "--data",
        default=DEFAULT_CMAPSS,
        help=f"cmapss:DIR[#FD001], sim:PATH, or a recording FILE (default {DEFAULT_CMAPSS})",
    )
    train.add_argument("--out", required=True, help="model folder to write (e.g. models/mine)")
    train.add_argument(
        "--features",
        metavar="TABLE",
        help="train from a table of window features `prognos features` wrote (a folder or a "
        "URI such as hdfs://nn:8020/fleet/features.parquet) instead of --data",
    )
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
        "--phases",
        type=_at_least_one,
        default=None,
        help="window alignments per device (default 5; a recording: from its readings per window)",
    )
    train.add_argument(
        "--regimes",
        type=_regimes,
        default="auto",
        help="operating regimes to normalise per: auto (default: found in the settings "
        "columns; none without settings) or a number",
    )
    train.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, reproducible)"
    )
    train.add_argument(
        "--window",
        type=_duration,
        help="recording, sim: window length W (30s, 1h, 1d; default from the data)",
    )
    train.add_argument(
        "--horizon",
        type=_duration,
        help="recording, sim: predict failures within this long (a whole number of windows; "
        "default from the data)",
    )
    train.add_argument(
        "--sequence-length",
        default=None,
        help="K windows the model reads (default 10; a recording: from the data); on a "
        "recording also a duration (7d)",
    )
    train.add_argument(
        "--statistics",
        help="recording: comma-separated window statistics (mean,std,min,max,last,slope; "
        "default from the readings per window)",
    )
    train.add_argument(
        "--log-scale",
        default="auto",
        help="recording: sensors read as log(1 + v): auto (default: the heavy-tailed "
        "non-negative ones, such as counters), none, or a comma-separated list",
    )
    train.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="recording: share of devices held out for evaluation (default 0.2)",
    )
    train.add_argument(
        "--catalogue",
        metavar="FILE",
        help="recording: the sensor catalogue to validate readings with and to record with "
        "the model as catalogue.toml (default: the default catalogue validates, and one "
        "inferred from the training data is recorded)",
    )
    train.add_argument(
        "--lead",
        type=_duration,
        default=None,
        help="recording: the evaluation's lead (default one window)",
    )
    train.add_argument(
        "--no-evaluate", action="store_true", help="recording: skip the held-out evaluation"
    )
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="recording: read the data, print what would be chosen and why, and stop (no "
        "training, nothing written; needs no PyTorch)",
    )
    cm = train.add_argument_group("C-MAPSS (cycles) and simulator recordings (sim:PATH)")
    cm.add_argument(
        "--cycle-seconds",
        type=float,
        default=600.0,
        help="event time per cycle (default 600, as the replay)",
    )
    cm.add_argument("--window-cycles", type=int, default=5, help="C-MAPSS: W in cycles (default 5)")
    cm.add_argument("--horizon-cycles", type=int, default=30, help="C-MAPSS: horizon (default 30)")
    cm.add_argument(
        "--window-seconds",
        type=float,
        default=None,
        help="sim: window length W in seconds (default 300)",
    )
    cm.add_argument("--horizon-windows", type=int, default=None, help="sim: horizon H in windows")
    train.add_argument("--model-version", default="", help="version string stored in the model")
    train.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    _recording_options(train)
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="evaluate an exported model (ONNX Runtime) and write the report and plots",
        description="Score an exported model. C-MAPSS (--data cmapss:DIR): the test protocol "
        "(label: fails within the model's horizon; the last sequence of each test engine "
        "with a full history). A recording (--data FILE, with its failure log): every window "
        "the stream job would score on the devices held out at training (split.json), "
        "window-level metrics with confidence intervals, and the alerts the stream job's "
        "policy raises, judged against the failures: caught at least --lead ahead, lead "
        "times, false alerts per device-month, beside a rule baseline where one applies. "
        "Writes report.json, report.md and PNG plots (matplotlib).",
    )
    evaluate.add_argument(
        "--data", default=DEFAULT_CMAPSS, help="cmapss:DIR[#FD001], or a recording FILE"
    )
    _evaluation_options(evaluate)
    _recording_options(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    backtest = subparsers.add_parser(
        "backtest",
        help="replay a recording through Kafka, Spark and Redis and judge the alerts",
        description="Replay the devices `evaluate` scores (those held out at training) into a "
        "topic of their own on the local stack or PROGNOS_KAFKA_BOOTSTRAP, run the stream job "
        "over it with the model (--available-now), read the alerts back from Redis and print "
        "the event table `evaluate` prints, beside evaluate's own, naming every difference "
        "(windows the job never closed, readings it dead-lettered or dropped as late). Writes "
        "backtest.json (and evaluate's report) into --out.",
    )
    backtest.add_argument("data_path", metavar="RECORDING", help="the recording (CSV, ...)")
    _evaluation_options(backtest)
    backtest.add_argument(
        "--keep",
        action="store_true",
        help="keep the backtest's topic and Redis keys (default: delete them at the end)",
    )
    _recording_options(backtest)
    backtest.set_defaults(handler=_backtest)


def _progress(line: str) -> None:
    print(line, flush=True)


def _is_builtin(data: str) -> bool:
    return data.startswith(("cmapss:", "sim:"))


# --------------------------------------------------------------------------- C-MAPSS, sim


def _sequence_windows(text: str | None, window_s: float | None, what: str) -> int:
    """``--sequence-length`` in windows: a whole number, or (``window_s`` given) a duration."""
    from models.durations import parse_duration
    from models.errors import DataError

    if text is None:
        return 10
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value >= 1:
        return value
    if window_s is None:
        raise DataError(
            f"--sequence-length {text!r}: {what} takes K as a whole number of windows (e.g. 10)"
        )
    try:
        return max(1, round(parse_duration(text) / window_s))
    except ValueError as exc:
        raise DataError(f"--sequence-length {text!r}: {exc}; or give K in windows") from None


def _train_builtin(args: argparse.Namespace) -> int:
    import json
    import shlex
    import sys
    from pathlib import Path

    from models.data import cmapss_spec, load_data
    from models.errors import DataError
    from models.features import FeatureSpec
    from models.fleet import choose_regimes
    from models.modelcard import write_model_card
    from models.training import TrainConfig, train_model

    recording = load_data(args.data, cycle_seconds=args.cycle_seconds)
    test = None
    if args.data.startswith("cmapss:"):
        if args.window is not None or args.horizon is not None:
            raise DataError(
                "C-MAPSS keeps cycles: give --window-cycles and --horizon-cycles, not "
                "--window/--horizon"
            )
        subset = args.data.partition("#")[2] or "FD001"
        spec = cmapss_spec(
            cycle_seconds=args.cycle_seconds,
            window_cycles=args.window_cycles,
            sequence_length=_sequence_windows(args.sequence_length, None, "C-MAPSS"),
            horizon_cycles=args.horizon_cycles,
            subset=subset,
        )
        test = load_data(args.data, split="test", cycle_seconds=args.cycle_seconds)
    else:
        window = args.window or args.window_seconds or 300.0
        sensors = tuple(args.sensors.split(",")) if args.sensors else recording.sensors
        if args.horizon is not None:
            horizon_windows = max(1, round(args.horizon / window))
        elif args.horizon_windows is not None:
            horizon_windows = args.horizon_windows
        else:
            raise DataError("sim data: give --horizon (e.g. 1h) or --horizon-windows (H)")
        spec = FeatureSpec(
            sensors=sensors,
            window_seconds=window,
            sequence_length=_sequence_windows(args.sequence_length, window, "sim data"),
            horizon_windows=horizon_windows,
            name="sim",
        )
    centroids = None
    if args.regimes == "auto":
        settings = recording.readings[list(recording.settings)].to_numpy()
        regimes, centroids, why = choose_regimes(settings, recording.settings, seed=args.seed)
        print(f"regimes: {regimes} ({why})", flush=True)
    else:
        regimes, why = int(args.regimes), "--regimes"
    config = TrainConfig(
        arch=args.arch,
        seed=args.seed,
        epochs=args.epochs,
        patience=args.patience,
        folds=args.folds,
        phases=args.phases or 5,
        regimes=regimes,
        threads=args.threads,
        ensemble=args.ensemble,
        seeds=args.seeds,
        rul_weight=args.rul_weight,
        model_version=args.model_version,
    )
    out = Path(args.out)
    result = train_model(
        recording, spec, out, config, progress=_progress, test=test, regime_centroids=centroids
    )
    result.training["command"] = "prognos " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.regimes == "auto" and regimes > 1:
        result.training["choices"] = {"regimes": {"value": regimes, "reason": why}}
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


def _train(args: argparse.Namespace) -> int:
    from models.training import _require_torch

    if not (args.dry_run and not _is_builtin(args.data)):
        _require_torch()  # a clear message before any data is read
    if args.features:
        return _train_features(args)
    if _is_builtin(args.data):
        return _train_builtin(args)
    from ingest.remote import local_copy

    with local_copy(args.data) as local:  # hdfs:// and other Hadoop URIs: a local copy
        args.data = str(local)
        return _train_recording(args)


def _train_features(args: argparse.Namespace) -> int:
    """Train from a table of window features (``prognos features``), not from readings."""
    import json
    import shlex
    import sys
    from pathlib import Path

    import pandas as pd

    from deploy.features import read_table
    from models.data import Recording
    from models.features import FeatureSpec
    from models.modelcard import write_model_card
    from models.training import TrainConfig, train_model

    windows, metadata = read_table(args.features)
    spec = FeatureSpec.from_dict(metadata["spec"])
    if args.sequence_length is not None or args.horizon_cycles != 30:
        print("note: the features table fixes the spec; window options are ignored")
    recording = Recording(
        name=f"features:{metadata['source']}",
        readings=pd.DataFrame({"device_id": [], "event_time": []}),
        failure_times={str(d): float(t) for d, t in metadata["failure_times"].items()},
        data_sha256=str(metadata.get("sha256") or ""),
        step_seconds=metadata.get("cycle_seconds"),
    )
    print(
        f"features table {args.features}: {len(windows.device):,} windows of "
        f"{metadata['devices']} devices, {len(recording.failure_times)} with a failure time",
        flush=True,
    )
    if args.dry_run:
        print("dry run: the table reads; nothing trained or written")
        return 0
    config = TrainConfig(
        arch=args.arch,
        seed=args.seed,
        epochs=args.epochs,
        patience=args.patience,
        folds=args.folds,
        phases=1,
        regimes=1,
        threads=args.threads,
        ensemble=args.ensemble,
        seeds=args.seeds,
        rul_weight=args.rul_weight,
        model_version=args.model_version,
    )
    out = Path(args.out)
    result = train_model(recording, spec, out, config, progress=_progress, windows=windows)
    result.training["command"] = "prognos " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result.training["features_table"] = {k: metadata[k] for k in ("source", "devices", "windows")}
    (out / "training.json").write_text(
        json.dumps(result.training, indent=2) + "\n", encoding="utf-8"
    )
    write_model_card(out, result.training, None)
    print(f"model folder: {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if not _is_builtin(args.data):
        return _evaluate_recording(args)
    from models.errors import DataError
    from models.evaluation import evaluate_cmapss

    kind, _, where = args.data.partition(":")
    if kind != "cmapss" or not where:
        raise DataError(
            f"--data {args.data!r}: evaluate takes cmapss:DIR[#FD001] or a recording file "
            "(readings.parquet of a simulator recording, with --failures)"
        )
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


# --------------------------------------------------------------------------- recordings


def _train_recording(args: argparse.Namespace) -> int:
    import json
    import shlex
    import sys
    from pathlib import Path

    from deploy import fleet_data
    from models.errors import DataError
    from models.features import STATISTICS
    from models.fleet import FleetOptions, plan_training
    from models.modelcard import write_model_card
    from models.training import TrainConfig, train_model

    if args.window_seconds is not None or args.horizon_windows is not None:
        raise DataError(
            "a recording takes durations: --window 1h and --horizon 1d (not --window-seconds, "
            "--horizon-windows)"
        )
    data = fleet_data.read(args)
    recording = data.recording
    seq_windows = seq_seconds = None
    if args.sequence_length is not None:
        text = args.sequence_length.strip()
        if text.isdigit():
            seq_windows = int(text)
        else:
            seq_seconds = _duration_or_error(text, "--sequence-length")
    statistics = None
    if args.statistics:
        statistics = tuple(s.strip() for s in args.statistics.split(",") if s.strip())
        unknown = [s for s in statistics if s not in STATISTICS]
        if unknown:
            raise DataError(f"--statistics {unknown}: choose from {', '.join(STATISTICS)}")
    out = Path(args.out)
    options = FleetOptions(
        window_s=args.window,
        horizon_s=args.horizon,
        sequence_windows=seq_windows,
        sequence_s=seq_seconds,
        statistics=statistics,
        regimes=args.regimes,
        test_fraction=args.test_fraction,
        seed=args.seed,
        phases=args.phases,
        log_scale=args.log_scale
        if args.log_scale in ("auto", "none")
        else tuple(s.strip() for s in args.log_scale.split(",") if s.strip()),
    )
    plan = plan_training(recording, options, name=fleet_data.spec_name(data.path))
    notes = [*data.notes, *plan.notes]
    for note in notes:
        print(f"note: {note}", flush=True)
    for name, choice in plan.choices.items():
        print(f"{name}: {choice['value']} ({choice['reason']})", flush=True)
    if args.dry_run:
        print(
            f"dry run: would train on {len(plan.train_devices)} devices and hold out "
            f"{len(plan.test_devices)}; nothing written"
        )
        return 0

    config = TrainConfig(
        arch=args.arch,
        seed=args.seed,
        epochs=args.epochs,
        patience=args.patience,
        folds=args.folds,
        phases=plan.phases,
        regimes=plan.regimes,
        threads=args.threads,
        ensemble=args.ensemble,
        seeds=args.seeds,
        rul_weight=args.rul_weight,
        model_version=args.model_version,
    )
    train_rec = recording.restrict(plan.train_devices)
    result = train_model(
        train_rec,
        plan.spec,
        out,
        config,
        progress=_progress,
        regime_centroids=plan.regime_centroids,
    )
    split = {
        "data": str(data.path),
        "sha256": recording.data_sha256,
        "seed": args.seed,
        "test_fraction": args.test_fraction,
        "rule": plan.choices["test_devices"]["reason"],
        "test_devices": list(plan.test_devices),
        "train_devices": list(plan.train_devices),
    }
    (out / "split.json").write_text(json.dumps(split, indent=2) + "\n", encoding="utf-8")
    catalogue = fleet_data.write_catalogue(out, args, data)
    training = result.training
    training["command"] = "prognos " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    training["choices"] = dict(plan.choices)
    training["notes"] = notes
    training["recording"] = data.describe()
    training["events"] = recording.events.to_dict() if recording.events else None
    training["split"] = {
        "file": "split.json",
        "train_devices": len(plan.train_devices),
        "test_devices": len(plan.test_devices),
    }
    training["catalogue"] = catalogue
    (out / "training.json").write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
    report = None
    if not args.no_evaluate and plan.test_devices:
        from deploy import fleet_eval

        report = fleet_eval.evaluate(
            out,
            recording.restrict(plan.test_devices),
            devices=list(plan.test_devices),
            devices_from="held out at training (split.json)",
            out=out,
            lead_s=args.lead,
            plots=not args.no_plots,
            notes=notes,
            data_source=str(data.path),
        )
        fleet_eval.print_table(report)
    write_model_card(out, training, report)
    print(f"model folder: {out}")
    return 0


def _duration_or_error(text: str, option: str) -> float:
    from models.durations import parse_duration
    from models.errors import DataError

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise DataError(f"{option} {text!r}: {exc}") from None


def _evaluate_recording(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deploy import fleet_eval

    inputs = fleet_eval.evaluation_inputs(args)
    out = Path(args.out or inputs.model_dir)
    report = fleet_eval.evaluate_inputs(inputs, args, out)
    fleet_eval.print_table(report)
    print(f"report: {out}/report.md")
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from deploy.backtest import run_backtest

    args.data = args.data_path
    return run_backtest(args)

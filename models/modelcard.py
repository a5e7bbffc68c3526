"""The model card: what a model is for, how it was made, how good it is, where it fails."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.evaluation import study_lines

logger = logging.getLogger(__name__)

__all__ = ["write_model_card"]


def write_model_card(
    folder: Path, training: Mapping[str, Any], report: Mapping[str, Any] | None
) -> Path:
    """Write ``folder/MODEL_CARD.md`` from ``training.json`` and the evaluation report."""
    spec = training["spec"]
    cfg = training["config"]
    sel = training["selection"]
    data = training["data"]
    w = float(spec["window_seconds"])
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    meta = manifest["metadata"]
    members = int(training.get("members", 1))
    chosen_on = (training.get("threshold") or {}).get("chosen_on", "validation devices (max F1)")
    history = training["history"]
    histories = [history] if isinstance(history, Mapping) else list(history)
    best_epochs = ", ".join(str(h["best_epoch"]) for h in histories)
    # The fold networks cover every device; the other recipes hold validation devices out.
    fold_ensemble = members > 1 and cfg.get("ensemble") != "seeds"
    if fold_ensemble:
        network = (
            f"- Network: the mean risk of {members} {sel['arch'].upper()} networks "
            f"({training['parameters']} parameters in all), the {cfg['folds']} networks of a "
            f"{cfg['folds']}-fold device-grouped cross-validation, each trained on the other "
            "folds and early-stopped on its own; the architecture chosen by that "
            f"cross-validation: {sel['reason']}."
        )
        split = (
            f"{data['devices']} devices in {cfg['folds']} folds of about "
            f"{data['devices'] // cfg['folds']} (split by device)"
        )
    else:
        if members > 1:
            network = (
                f"- Network: the mean risk of {members} {sel['arch'].upper()} networks "
                f"({training['parameters']} parameters in all) trained on the same "
                f"device-grouped split from seeds {cfg['seed']}..{cfg['seed'] + members - 1}, "
                "each early-stopped on the validation devices; the architecture chosen by "
                f"{cfg['folds']}-fold device-grouped cross-validation on the training devices: "
                f"{sel['reason']}."
            )
        else:
            network = (
                f"- Network: {sel['arch'].upper()} ({training['parameters']} parameters), chosen "
                f"by {cfg['folds']}-fold device-grouped cross-validation: {sel['reason']}."
            )
        split = (
            f"{data['devices']} devices ({data['train_devices']} train, "
            f"{len(data['val_devices'])} validation, split by device)"
        )
    rul = (
        f" An auxiliary remaining-useful-life head (weight {cfg['rul_weight']:g}, RUL capped "
        f"at {cfg['rul_cap_windows']:g} windows) regularises training; it is not exported."
        if cfg.get("rul_weight", 0) > 0
        else ""
    )
    lines = [
        f"# Model card: {manifest['model_version']}",
        "",
        "## What it does",
        "",
        f"Given the last K={spec['sequence_length']} tumbling event-time windows of "
        f"W={w:g} s of one device, it returns the probability that the device fails within "
        f"H={spec['horizon_windows']} windows ({spec['horizon_windows'] * w:g} s) of the end "
        f"of the last window. Alert when risk ≥ {meta['threshold']:.4f} (chosen on "
        f"{chosen_on}).",
        "",
        f"- Input `{meta['input']}`: per window, for each sensor of "
        f"{', '.join(spec['sensors'])}, the statistics {', '.join(spec['statistics'])} "
        "(definitions in `models/features.py`), normalised with the statistics stored in the "
        "ONNX metadata (`models.features.normalise`; missing -> 0).",
        f"- Output `{meta['output']}`: risk in [0, 1].",
        network,
        f"- File: `model.onnx`, SHA-256 `{manifest['sha256']}` (pinned in `manifest.json`; "
        "the scorer refuses any other bytes).",
        "",
        "## Training data",
        "",
        f"{data['source']} (SHA-256 of the files `{data['sha256'][:16]}…`): {split}, "
        f"{data['sequences']} sequences at {cfg['phases']} window alignments, "
        f"{data['positives']} positive. Seed {cfg['seed']}, early stopping (patience "
        f"{cfg['patience']}), best epoch{'s' if members > 1 else ''} {best_epochs}.{rul}",
        "",
        *study_lines(training.get("recipe_study")),
        *_choice_lines(training),
        "## How good it is",
        "",
    ]
    val = training["validation"]
    where = (
        "Out of fold (every training device scored by the member that did not see it, all "
        "sequences; one member's figures, the ensemble's own are not measurable on them)"
        if fold_ensemble
        else "Validation devices (all sequences)"
    )
    lines.append(
        f"{where}: F1 {val['f1']:.4f}, precision "
        f"{val['precision']:.4f}, recall {val['recall']:.4f}, PR-AUC {val['pr_auc']:.4f}."
    )
    fleet = "recording" in training or (report or {}).get("kind") == "recording"
    if fleet:
        lines += _fleet_result_lines(report)
    elif report is not None:
        m, ci, p = report["metrics"], report["ci95"], report["protocol"]
        lines += [
            "",
            f"Test protocol — {p['name']}: {p['engines_scored']} of {p['engines_total']} test "
            f"engines ({p['positives']} positive).",
            "",
            "| metric | value | 95% CI | published LSTM |",
            "| --- | --- | --- | --- |",
        ]
        pub = report.get("published") or {}
        for k in ("accuracy", "precision", "recall", "f1", "pr_auc"):
            pv = f"{pub[k]:.3f}" if k in pub else "–"
            lines.append(f"| {k} | {m[k]:.4f} | [{ci[k][0]:.3f}, {ci[k][1]:.3f}] | {pv} |")
        b = training.get("baseline", {}).get("test")
        if b:
            lines += [
                "",
                "Baseline (logistic regression, same features, same folds or split) on the "
                "same protocol: "
                f"F1 {b['f1']:.4f}, recall {b['recall']:.4f}, PR-AUC {b['pr_auc']:.4f}.",
            ]
        lines += [
            "",
            "Full report: `report.md`; plots: `training_curves.png`, `pr_curve.png`, "
            "`risk_over_life.png`.",
        ]
    limits = (
        [
            f"- Trained on {data['source']} only: it knows the sensors, the machines and the "
            "failure modes of that fleet and nothing else; retrain for another.",
            "- Its figures come from the devices held out at training (`split.json`); a "
            "fleet of other devices, or of the same ones later, can differ.",
        ]
        if fleet
        else [
            "- Trained on simulated turbofan data (C-MAPSS) with one operating condition and "
            "one fault mode; it knows nothing of other machines, sensors or fault modes.",
        ]
    )
    lines += [
        "",
        "## Limits",
        "",
        *limits,
        "- Errors concentrate on devices whose remaining life is near the horizon boundary; "
        "with few test devices the confidence intervals are wide (see above).",
        "- The slope statistic is per second of event time: serving must use the same time "
        "base (cycle period) as training.",
        "- Risk is a model score, not a calibrated probability outside the training data.",
        *(
            [
                "- It reads the device's age (`cycle`: cycles since its record began, or since "
                "its last overhaul) and so has learnt this fleet's lives (128-362 cycles in "
                "FD001): a device that does not report `cycle` is scored at the training mean "
                "age, and a fleet whose lives are much longer or shorter needs retraining.",
            ]
            if "cycle" in spec["sensors"]
            else []
        ),
        "",
        "## Reproduce",
        "",
        "```",
        training.get("command")
        or f"prognos train --out {folder} --seed {cfg['seed']} "
        f"--arch {cfg['arch']} --folds {cfg['folds']} --epochs {cfg['epochs']}",
        "```",
        "",
    ]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    logger.info("model card written to %s", path)
    return path


def _choice_lines(training: Mapping[str, Any]) -> list[str]:
    """What was chosen from the data, and why; what the data's reading noted."""
    choices = training.get("choices") or {}
    notes = training.get("notes") or []
    if not choices and not notes:
        return []
    lines = ["## Choices", ""]
    lines += [
        f"- {name.replace('_', ' ')}: **{c['value']}**, {c['reason']}."
        for name, c in choices.items()
    ]
    lines += [f"- Note: {n}" for n in notes]
    return [*lines, ""]


def _fleet_result_lines(report: Mapping[str, Any] | None) -> list[str]:
    """The held-out evaluation of a model trained on a recording."""
    if report is None:
        return ["", "No held-out evaluation yet: run `prognos evaluate --model <this folder> "
                "--data <the recording>`."]  # fmt: skip
    from models.durations import format_duration
    from models.fleet_report import events_rows

    ev = report["events"]
    tables = {"this model": ev} | {
        name: b["events"] for name, b in (report.get("baselines") or {}).items()
    }
    lines = [
        "",
        f"Held-out devices ({report['protocol']['devices']}), alerts as the stream job raises "
        f"them; caught: an alert opened between {format_duration(ev['max_lead_s'])} and "
        f"{format_duration(ev['lead_s'])} before the failure:",
        "",
        *events_rows(tables),
    ]
    m, ci = report.get("metrics"), report.get("ci95") or {}
    if m:
        lines += [
            "",
            f"Window by window ({report['protocol']['windows_labelled']} labelled windows): "
            + ", ".join(
                f"{k} {m[k]:.4f}"
                + (f" [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" if len(ci.get(k, ())) == 2 else "")
                for k in ("precision", "recall", "f1", "pr_auc")
            )
            + ".",
        ]
    lines += ["", "Full report: `report.md`; plots: " + ", ".join(
        f"`{p}`" for p in report.get("plots", [])) + "."]  # fmt: skip
    return lines

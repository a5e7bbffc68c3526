"""Evaluation: metrics, threshold choice, bootstrap confidence intervals, reports, plots.

Metrics need only numpy. Plots need matplotlib (the ``train`` extra). The C-MAPSS protocol
(:func:`evaluate_cmapss`) scores the ONNX model through :class:`models.scorer.Scorer`, so
what is evaluated is exactly what the stream job will load.

The widely reported FD001 protocol: label "fails within 30 cycles"; for each test engine
with at least one full sequence (K x W = 50 cycles of history: 93 of the 100 engines), score
the sequence that ends at its last recorded cycle; the truth comes from ``RUL_FD001.txt``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import MissingDependencyError

logger = logging.getLogger(__name__)

__all__ = [
    "PUBLISHED_FD001",
    "average_precision",
    "binary_metrics",
    "bootstrap_ci",
    "choose_threshold",
    "evaluate_cmapss",
    "pr_curve",
]

#: The published LSTM figures for the FD001 "fails within 30 cycles" protocol (last
#: 50-cycle sequence of the 93 test engines with at least 50 cycles).
PUBLISHED_FD001: dict[str, float] = {
    "accuracy": 0.978,
    "precision": 0.96,
    "recall": 0.96,
    "f1": 0.96,
}

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def binary_metrics(y: npt.ArrayLike, risk: npt.ArrayLike, threshold: float) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, PR-AUC and the confusion matrix at ``threshold``.

    A row is predicted positive when ``risk >= threshold``. Precision (recall) is 0 when
    nothing is predicted (is) positive.

    Example:
        >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], 0.5)
        >>> m["accuracy"], m["precision"], m["recall"], m["confusion_matrix"]
        (0.75, 0.6667, 1.0, [[1, 1], [0, 2]])
    """
    yt = np.asarray(y).astype(bool)
    r = np.asarray(risk, dtype=np.float64)
    pred = r >= threshold
    tp = int(np.sum(pred & yt))
    fp = int(np.sum(pred & ~yt))
    fn = int(np.sum(~pred & yt))
    tn = int(np.sum(~pred & ~yt))
    n = max(1, tp + fp + fn + tn)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": int(yt.size),
        "positives": int(yt.sum()),
        "threshold": round(float(threshold), 6),
        "accuracy": round((tp + tn) / n, 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "pr_auc": round(average_precision(yt, r), 4),
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def pr_curve(y: npt.ArrayLike, risk: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Precision, recall and threshold at each distinct risk, highest threshold first."""
    yt = np.asarray(y).astype(bool)
    r = np.asarray(risk, dtype=np.float64)
    order = np.argsort(-r, kind="mergesort")
    r_sorted, y_sorted = r[order], yt[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(r_sorted)), r_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    precision = tps / np.maximum(tps + fps, 1)
    recall = tps / max(int(yt.sum()), 1)
    return precision.astype(np.float64), recall.astype(np.float64), r_sorted[last_of_tie]


def average_precision(y: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (step-wise, no
    interpolation; scikit-learn's ``average_precision_score``). NaN without positives."""
    yt = np.asarray(y).astype(bool)
    if not yt.any():
        return float("nan")
    precision, recall, _ = pr_curve(yt, risk)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def choose_threshold(y: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """The threshold that maximises F1 on validation data.

    Candidates are midpoints between consecutive distinct risks; among ties the median
    candidate is taken, which keeps the threshold away from any one validation score.
    """
    yt = np.asarray(y).astype(bool)
    r = np.asarray(risk, dtype=np.float64)
    levels = np.unique(r)
    if levels.size < 2 or not yt.any():
        return 0.5
    candidates = (levels[:-1] + levels[1:]) / 2.0
    pred = r[None, :] >= candidates[:, None]
    tp = (pred & yt).sum(axis=1)
    fp = (pred & ~yt).sum(axis=1)
    fn = (~pred & yt).sum(axis=1)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(candidates[best[len(best) // 2]])


def bootstrap_ci(
    y: npt.ArrayLike,
    risk: npt.ArrayLike,
    threshold: float,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    groups: npt.ArrayLike | None = None,
) -> dict[str, list[float]]:
    """Percentile bootstrap confidence intervals of the metrics.

    Resamples rows (one per device, as in the C-MAPSS protocol), or, with ``groups``
    (a group per row, e.g. its device), whole groups: each resample draws as many groups
    as there are, with replacement, and takes all their rows.

    Returns:
        ``{metric: [low, high]}`` for accuracy, precision, recall, f1 and pr_auc.
    """
    yt = np.asarray(y).astype(bool)
    r = np.asarray(risk, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if groups is not None:
        return _group_bootstrap_ci(yt, r, threshold, np.asarray(groups), resamples, level, rng)
    idx = rng.integers(0, yt.size, size=(resamples, yt.size))
    ys, preds = yt[idx], r[idx] >= threshold
    tp = (preds & ys).sum(axis=1).astype(np.float64)
    fp = (preds & ~ys).sum(axis=1)
    fn = (~preds & ys).sum(axis=1)
    tn = (~preds & ~ys).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    values = {
        "accuracy": (tp + tn) / yt.size,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "pr_auc": np.array(
            [average_precision(ys[i], r[idx[i]]) for i in range(min(resamples, 500))]
        ),
    }
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {}
    for name, v in values.items():
        v = v[np.isfinite(v)]
        out[name] = [round(float(np.percentile(v, lo)), 4), round(float(np.percentile(v, hi)), 4)]
    return out


def _group_bootstrap_ci(
    y: npt.NDArray[np.bool_],
    r: FloatArray,
    threshold: float,
    groups: npt.NDArray[Any],
    resamples: int,
    level: float,
    rng: np.random.Generator,
) -> dict[str, list[float]]:
    _, gid = np.unique(groups, return_inverse=True)
    n_groups = int(gid.max()) + 1 if gid.size else 0
    pred = r >= threshold
    # Per group: tp, fp, fn, tn; a resample's counts are the counts of its groups, summed.
    cells = np.zeros((n_groups, 4))
    for j, mask in enumerate((pred & y, pred & ~y, ~pred & y, ~pred & ~y)):
        cells[:, j] = np.bincount(gid, weights=mask.astype(np.float64), minlength=n_groups)
    draws = rng.integers(0, n_groups, size=(resamples, n_groups))
    weight = np.stack([np.bincount(d, minlength=n_groups) for d in draws]).astype(np.float64)
    tp, fp, fn, tn = (weight @ cells).T
    with np.errstate(invalid="ignore", divide="ignore"):
        values = {
            "accuracy": (tp + tn) / np.maximum(tp + fp + fn + tn, 1),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
            "recall": np.where(tp + fn > 0, tp / (tp + fn), 0.0),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
        }
    rows_of = [np.flatnonzero(gid == g) for g in range(n_groups)]
    pr = []
    for d in draws[: min(resamples, 500)]:
        rows = np.concatenate([rows_of[g] for g in d]) if n_groups else np.empty(0, int)
        pr.append(average_precision(y[rows], r[rows]))
    values["pr_auc"] = np.asarray(pr, dtype=np.float64)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out: dict[str, list[float]] = {}
    for name, v in values.items():
        v = v[np.isfinite(v)]
        # An empty interval: the metric is undefined in every resample (PR-AUC, no positive).
        out[name] = (
            [round(float(np.percentile(v, lo)), 4), round(float(np.percentile(v, hi)), 4)]
            if v.size
            else []
        )
    return out


# ----------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError(
            "plots need matplotlib: install the training extra with pip install -e '.[train]'"
        ) from exc
    return plt


def plot_training_curves(
    history: Mapping[str, Any] | Sequence[Mapping[str, Any]], path: Path, title: str
) -> None:
    """Training and validation loss (and validation PR-AUC) per epoch.

    ``history`` is one network's, or a list of an ensemble's members' (one line each).
    """
    plt = _pyplot()
    histories = [history] if isinstance(history, Mapping) else list(history)
    fig, ax = plt.subplots(figsize=(5.5, 3.2), dpi=80)
    ax2 = ax.twinx() if any("val_pr_auc" in h for h in histories) else None
    many = len(histories) > 1
    for i, h in enumerate(histories):
        first = i == 0
        epochs = np.arange(1, len(h["train_loss"]) + 1)
        ax.plot(epochs, h["train_loss"], color="tab:blue", alpha=0.6 if many else 1.0,
                label="train loss" if first else None)  # fmt: skip
        ax.plot(epochs, h["val_loss"], color="tab:orange", alpha=0.6 if many else 1.0,
                label=("held-out loss" if many else "validation loss") if first else None)  # fmt: skip
        if "best_epoch" in h:
            best = int(np.asarray(h["best_epoch"]).item())
            if many and 1 <= best <= len(h["val_loss"]):
                ax.plot([best], [h["val_loss"][best - 1]], "o", color="grey", ms=4,
                        label="kept (early stopping)" if first else None)  # fmt: skip
            elif not many:
                ax.axvline(float(best), color="grey", ls=":", label="kept (early stopping)")
        if ax2 is not None and "val_pr_auc" in h:
            ax2.plot(epochs, h["val_pr_auc"], color="tab:green", alpha=0.4 if many else 0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (held-out: BCE)" if many else "loss (validation: BCE)")
    if ax2 is not None:
        ax2.set_ylabel("held-out PR-AUC (green)" if many else "validation PR-AUC")
        ax2.set_ylim(0, 1.02)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_pr(
    y: npt.ArrayLike, risk: npt.ArrayLike, threshold: float, path: Path, title: str
) -> None:
    """Precision-recall curve with the operating point at ``threshold``."""
    plt = _pyplot()
    precision, recall, _ = pr_curve(y, risk)
    m = binary_metrics(y, risk, threshold)
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=80)
    ax.step(np.r_[0.0, recall], np.r_[1.0, precision], where="post")
    ax.plot(
        [m["recall"]], [m["precision"]], "o", color="tab:red", label=f"threshold {threshold:.3f}"
    )
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title} (PR-AUC {m['pr_auc']:.3f})", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_risk_over_life(
    curves: Sequence[tuple[str, FloatArray, FloatArray, float]],
    threshold: float,
    horizon: float,
    path: Path,
    unit: str,
) -> None:
    """Risk against time-to-failure for sample devices: ``(device, rul, risk, _)`` tuples."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=80)
    for device, rul, risk, _ in curves:
        ax.plot(-rul, risk, lw=1.2, label=device)
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label="threshold")
    ax.axvspan(-horizon, 0, color="tab:orange", alpha=0.12, label=f"fails within {horizon:g}")
    ax.set_xlabel(f"{unit} before failure (negative = before)")
    ax.set_ylabel("risk")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Risk over life, sample test engines", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------- the protocol


def evaluate_cmapss(
    model: str | Path,
    directory: str | Path,
    out_dir: str | Path,
    *,
    subset: str = "FD001",
    cycle_seconds: float = 600.0,
    plots: bool = True,
    training: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the C-MAPSS protocol on an exported model and write the report.

    Args:
        model: Model folder (or ONNX file with its manifest).
        directory: Folder with the C-MAPSS text files.
        out_dir: Where ``report.json``, ``report.md`` and the PNG plots go.
        subset: C-MAPSS subset.
        cycle_seconds: Event-time length of a cycle (as in training).
        plots: Write the PNG plots (needs matplotlib).
        training: The model's ``training.json`` (history, cross-validation, baseline) to
            include; read from the model folder when None.

    Returns:
        The report (also written as ``report.json``).
    """
    from models.data import load_cmapss, make_sequences, window_features
    from models.features import normalise
    from models.scorer import Scorer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scorer = Scorer.load(model, providers="cpu")
    meta = scorer.metadata
    spec = meta.spec
    model_dir = scorer.path.parent
    if training is None and (model_dir / "training.json").is_file():
        training = json.loads((model_dir / "training.json").read_text(encoding="utf-8"))
    test = load_cmapss(directory, subset, "test", cycle_seconds=cycle_seconds)
    history_cycles = spec.sequence_length * spec.window_seconds / cycle_seconds
    windows = window_features(test, spec, align_end=True, regimes=meta.norm.regimes)
    last = make_sequences(
        windows,
        spec,
        test.failure_times,
        last_only=True,
        min_history_seconds=(history_cycles - 1) * cycle_seconds,
    )
    risk = scorer.score(normalise(last.x, meta.norm)).astype(np.float64)
    metrics = binary_metrics(last.y, risk, meta.threshold)
    ci = bootstrap_ci(last.y, risk, meta.threshold)
    horizon_cycles = spec.horizon_seconds / cycle_seconds
    engines = len(test.devices)
    report: dict[str, Any] = {
        "model": meta.summary() | {"sha256": meta.sha256},
        "data": {"source": test.name, "sha256": test.data_sha256},
        "protocol": {
            "name": f"C-MAPSS {subset}: fails within {horizon_cycles:g} cycles, last sequence",
            "label": f"RUL <= {horizon_cycles:g} cycles (truth from RUL_{subset}.txt)",
            "scored": f"the sequence of K={spec.sequence_length} windows of "
            f"W={spec.window_seconds / cycle_seconds:g} cycles ending at each test engine's last "
            f"cycle, for engines with at least K x W = {history_cycles:g} cycles",
            "engines_total": engines,
            "engines_scored": len(last),
            "positives": int(last.y.sum()),
        },
        "threshold": {
            "value": meta.threshold,
            "chosen_on": ((training or {}).get("threshold") or {}).get(
                "chosen_on", "validation engines (max F1)"
            ),
        },
        "metrics": metrics,
        "ci95": ci,
        "ci_method": "percentile bootstrap over the scored engines, 2000 resamples (PR-AUC 500)",
        "published": {
            "source": "LSTM, same protocol (93 engines, 50-cycle sequences)",
            **PUBLISHED_FD001,
        }
        if subset == "FD001"
        else None,
        "errors": [
            {
                "device": str(d),
                "rul_cycles": round(float(u) / cycle_seconds, 1),
                "risk": round(float(r), 4),
                "label": int(t),
            }
            for d, u, r, t in zip(last.device, last.rul_seconds, risk, last.y, strict=True)
            if (r >= meta.threshold) != bool(t)
        ],
    }
    if training:
        report["training"] = {
            k: training[k]
            for k in (
                "selection",
                "cross_validation",
                "members",
                "validation",
                "baseline",
                "config",
                "data",
                "recipe_study",
            )
            if k in training
        }
    if plots:
        report["plots"] = _write_plots(
            scorer, test, spec, risk, last.y, training, out, cycle_seconds
        )
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_report_md(report), encoding="utf-8")
    logger.info("report written to %s", out)
    return report


def _write_plots(
    scorer: Any,
    test: Any,
    spec: Any,
    risk: FloatArray,
    y: IntArray,
    training: Mapping[str, Any] | None,
    out: Path,
    cycle_seconds: float,
) -> list[str]:
    from models.data import make_sequences, window_features
    from models.features import normalise

    meta = scorer.metadata
    written = []
    if training and "history" in training:
        plot_training_curves(
            training["history"],
            out / "training_curves.png",
            f"{meta.arch.upper()} training ({meta.model_version})"
            + (" — one line per member" if not isinstance(training["history"], Mapping) else ""),
        )
        written.append("training_curves.png")
    plot_pr(y, risk, meta.threshold, out / "pr_curve.png", "Test engines, last sequence")
    written.append("pr_curve.png")
    # Risk over life: the four test engines closest to failure, every full sequence.
    ends = {d: t for d, t in test.failure_times.items()}
    closest = sorted(
        ends,
        key=lambda d: (
            ends[d] - test.readings.loc[test.readings["device_id"] == d, "event_time"].max()
        ),
    )[:4]
    sub = type(test)(
        test.name,
        test.readings[test.readings["device_id"].isin(closest)],
        test.failure_times,
        test.data_sha256,
        test.step_seconds,
        test.settings,
    )
    windows = window_features(sub, spec, align_end=True, regimes=meta.norm.regimes)
    seqs = make_sequences(windows, spec, test.failure_times)
    r_all = scorer.score(normalise(seqs.x, meta.norm)).astype(np.float64)
    curves = []
    for d in closest:
        m = seqs.device == d
        curves.append((d, seqs.rul_seconds[m] / cycle_seconds, r_all[m], 0.0))
    plot_risk_over_life(
        curves,
        meta.threshold,
        spec.horizon_seconds / cycle_seconds,
        out / "risk_over_life.png",
        "cycles",
    )
    written.append("risk_over_life.png")
    return written


def _fmt_ci(ci: Sequence[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def render_report_md(report: Mapping[str, Any]) -> str:
    """The Markdown version of a report."""
    m, ci, p = report["metrics"], report["ci95"], report["protocol"]
    pub = report.get("published") or {}
    lines = [
        f"# Evaluation report: {report['model']['model_version']}",
        "",
        f"Protocol: {p['name']}. Label: {p['label']}. Scored: {p['scored']} "
        f"({p['engines_scored']} of {p['engines_total']} engines, {p['positives']} positive).",
        f"Threshold {report['threshold']['value']:.4f}, chosen on "
        f"{report['threshold']['chosen_on']}. Model sha256 `{report['model']['sha256'][:16]}…`.",
        "",
        "| metric | this model | 95% CI | published LSTM |",
        "| --- | --- | --- | --- |",
    ]
    for name in ("accuracy", "precision", "recall", "f1", "pr_auc"):
        published = f"{pub[name]:.3f}" if name in pub else "–"
        lines.append(f"| {name} | {m[name]:.4f} | {_fmt_ci(ci[name])} | {published} |")
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    lines += [
        "",
        f"CI: {report['ci_method']}.",
        "",
        "Confusion matrix (rows: truth, columns: predicted):",
        "",
        "| | predicted 0 | predicted 1 |",
        "| --- | --- | --- |",
        f"| truth 0 | {tn} | {fp} |",
        f"| truth 1 | {fn} | {tp} |",
        "",
    ]
    if report.get("errors"):
        lines += [
            "Misclassified engines: "
            + ", ".join(
                f"{e['device']} (RUL {e['rul_cycles']:g}, risk {e['risk']:.3f})"
                for e in report["errors"]
            )
            + ".",
            "",
        ]
    training = report.get("training") or {}
    baseline = training.get("baseline", {}).get("test")
    if baseline:
        model = training["baseline"].get(
            "model", "logistic regression on the same normalised features"
        )
        lines += [
            f"Baseline ({model}):",
            "",
            "| metric | baseline | this model |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| {k} | {baseline[k]:.4f} | {m[k]:.4f} |"
            for k in ("accuracy", "precision", "recall", "f1", "pr_auc")
        ]
        lines.append("")
    cv = training.get("cross_validation")
    if cv:
        lines += [
            f"Model selection: {cv['folds']}-fold device-grouped cross-validation on the "
            "training engines (mean ± std over folds):",
            "",
            "| arch | val PR-AUC | val F1 (best threshold) | val loss | train s/fold |",
            "| --- | --- | --- | --- | --- |",
        ]
        for arch, r in cv["results"].items():
            lines.append(
                f"| {arch} | {r['pr_auc_mean']:.4f} ± {r['pr_auc_std']:.4f} | "
                f"{r['f1_mean']:.4f} ± {r['f1_std']:.4f} | {r['loss_mean']:.4f} | "
                f"{r['seconds_mean']:.1f} |"
            )
        lines += [
            "",
            f"Chosen: **{training['selection']['arch']}**: {training['selection']['reason']}",
            "",
        ]
        members = training.get("members", 1)
        if members > 1 and training.get("config", {}).get("ensemble") == "seeds":
            seed = training["config"]["seed"]
            lines += [
                f"The model is the mean risk of {members} "
                f"{training['selection']['arch'].upper()} networks trained on one "
                f"device-grouped train/validation split from seeds {seed}..{seed + members - 1}, "
                "each early-stopped on the validation devices.",
                "",
            ]
        elif members > 1:
            lines += [
                f"The model is the mean risk of the {members} "
                f"{training['selection']['arch'].upper()} "
                "networks of this cross-validation (each trained on the other folds and "
                "early-stopped on its own).",
                "",
            ]
    lines += study_lines(training.get("recipe_study"))
    for plot in report.get("plots", []):
        lines.append(f"![{plot}]({plot})")
    return "\n".join(lines).rstrip() + "\n"


def study_lines(study: Mapping[str, Any] | None) -> list[str]:
    """Markdown lines for the recipe study (``models.study``) summarised in training.json."""
    if not study:
        return []
    lines = [
        f"Recipe: **{study['chosen']}**, chosen by nested cross-validation on the training "
        f"engines only ({study['design']}). Rule, fixed before the study was run: "
        f"{study['rule']}. Results: `{study['file']}`.",
        "",
        "| recipe | networks | pooled nested F1 | F1 mean ± std | PR-AUC mean ± std |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in study["results"].items():
        mark = "**" if name == study["chosen"] else ""
        lines.append(
            f"| {mark}{name}{mark} | {r['networks']} | {r['pooled_f1']:.4f} | "
            f"{r['f1_mean']:.4f} ± {r['f1_std']:.4f} | "
            f"{r['pr_auc_mean']:.4f} ± {r['pr_auc_std']:.4f} |"
        )
    return [*lines, ""]


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None

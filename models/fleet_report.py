"""The evaluation report of a model on a user's recording: ``report.json``, ``report.md``, plots.

:func:`fleet_report` assembles what ``prognos evaluate --data RECORDING`` measured (the
window-level metrics with device-bootstrap intervals, the event table of the model and of
each rule baseline, the alert policy, the notes) into one JSON-ready dict;
:func:`write_fleet_report` writes it with its Markdown and plots:

* ``lead_times.png``: the lead times of the caught failures (model and rules);
* ``risk_before_failure.png``: the risk over each failed device's last run, against
  the time left to its failure, with the threshold and the lead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.durations import format_duration
from models.evaluation import _pyplot, binary_metrics, bootstrap_ci
from models.events import EventTable
from models.fleet import ScoredWindows

logger = logging.getLogger(__name__)

__all__ = [
    "events_rows",
    "fleet_report",
    "plot_lead_times",
    "plot_risk_before_failure",
    "render_fleet_report_md",
    "window_metrics",
    "write_fleet_report",
]


def window_metrics(scored: ScoredWindows, threshold: float) -> dict[str, Any]:
    """Window-level metrics on the windows whose label is known, with 95% intervals
    from a bootstrap over devices (a device's windows are not independent)."""
    known = scored.y >= 0
    y, risk, device = scored.y[known], scored.risk[known], scored.device[known]
    if not known.any():
        return {"metrics": None, "ci95": None}
    return {
        "metrics": binary_metrics(y, risk, threshold),
        "ci95": bootstrap_ci(y, risk, threshold, groups=device),
    }


def fleet_report(
    *,
    model: Mapping[str, Any],
    data: Mapping[str, Any],
    spec: Mapping[str, Any],
    scored: ScoredWindows,
    threshold: float,
    policy: Mapping[str, Any],
    events: EventTable,
    baselines: Mapping[str, tuple[Mapping[str, Any], ScoredWindows, EventTable]] | None = None,
    notes: Sequence[str] = (),
    training: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of one evaluation (see the module docstring).

    Args:
        model: The model's summary (version, sha256...).
        data: Where the data came from, which devices were scored and why.
        spec: The model's feature spec (``FeatureSpec.to_dict``).
        scored: The model's scored windows.
        threshold: The alert threshold in force.
        policy: The alert policy, as a dict.
        events: The model's event table.
        baselines: Rule name -> (its description, its scored windows, its event table).
        notes: What the reader should know (warnings about the data).
        training: The model's ``training.json`` (its choices are repeated here).
    """
    w = float(spec["window_seconds"])
    h = int(spec["horizon_windows"])
    window = window_metrics(scored, threshold)
    known = scored.y >= 0
    report: dict[str, Any] = {
        "kind": "recording",
        "model": dict(model),
        "data": dict(data),
        "protocol": {
            "name": f"every window the stream job scores, fails within {format_duration(h * w)}",
            "label": f"the device fails within H = {h} windows ({format_duration(h * w)}) of "
            "the window's latest reading; unknown (left out) where its run ends otherwise "
            "before the horizon is seen",
            "scored": f"each window of W = {format_duration(w)} that ends a sequence of "
            f"K = {spec['sequence_length']} non-empty windows, as the stream job emits them",
            "devices": len(scored.spans),
            "windows_scored": len(scored),
            "windows_labelled": int(known.sum()),
            "positives": int((scored.y == 1).sum()),
        },
        "threshold": {"value": threshold},
        "policy": dict(policy),
        "metrics": window["metrics"],
        "ci95": window["ci95"],
        "ci_method": "percentile bootstrap over devices (all of a device's windows together), "
        "2000 resamples (PR-AUC 500)",
        "events": events.to_dict(),
        "baselines": {},
        "notes": list(notes),
    }
    for name, (about, rule_scored, table) in (baselines or {}).items():
        rule_window = window_metrics(rule_scored, 0.5)
        report["baselines"][name] = {
            **about,
            "metrics": rule_window["metrics"],
            "events": table.to_dict(),
        }
    if training:
        report["training"] = {
            k: training[k]
            for k in ("choices", "selection", "validation", "config", "data", "events")
            if k in training
        }
    return report


def _lead(value: Any) -> str:
    return "–" if value is None else format_duration(float(value))


def events_rows(tables: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The event tables (``EventTable.to_dict``), one column each, as Markdown rows."""
    names = list(tables)
    lines = [
        "| figure | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]

    def row(label: str, fmt: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(fmt(tables[n]) for n in names) + " |")

    row("failures", lambda t: f"{t['failures']}")
    row(
        "caught ≥ lead ahead",
        lambda t: (
            f"{t['caught']} ({t['caught_share']:.0%})"
            if t["caught_share"] is not None
            else f"{t['caught']}"
        ),
    )
    row("lead time, median", lambda t: _lead(t["median_lead_s"]))
    row("lead time, quartiles", lambda t: f"{_lead(t['lead_q25_s'])} – {_lead(t['lead_q75_s'])}")
    row("alerts (true / late / false / censored)", lambda t: (
        f"{t['alerts']} ({t['true_alerts']} / {t['late_alerts']} / {t['false_alerts']} / "
        f"{t['censored_alerts']})"
    ))  # fmt: skip
    row("device-months judged", lambda t: f"{t['device_months']:.1f}")
    row(
        "false alerts per device-month",
        lambda t: (
            "–"
            if t["false_alerts_per_device_month"] is None
            else f"{t['false_alerts_per_device_month']:.4f}"
        ),
    )
    return lines


def render_fleet_report_md(report: Mapping[str, Any]) -> str:
    """The Markdown version of a :func:`fleet_report`."""
    p, ev = report["protocol"], report["events"]
    lines = [
        f"# Evaluation report: {report['model'].get('model_version', '')}",
        "",
        f"Data: {report['data'].get('source', '')}; {p['devices']} devices "
        f"({report['data'].get('devices_from', '')}).",
        "",
        "## What an operator sees",
        "",
        f"Alerts as the stream job raises them (threshold {report['threshold']['value']:.4f}, "
        f"hysteresis {report['policy'].get('hysteresis')}, resolve after "
        f"{report['policy'].get('resolve_windows')} windows, cooldown "
        f"{report['policy'].get('cooldown_windows')} windows), each opening judged against the "
        f"failure log: caught means an alert opened between {_lead(ev['max_lead_s'])} and "
        f"{_lead(ev['lead_s'])} before the failure.",
        "",
    ]
    tables = {"this model": ev} | {
        name: b["events"] for name, b in (report.get("baselines") or {}).items()
    }
    lines += events_rows(tables)
    lines.append("")
    for name, b in (report.get("baselines") or {}).items():
        lines.append(f"`{name}`: {b.get('description', '')} ({b.get('source', '')}).")
        lines.append("")
    lines += [
        "A true alert opened between the two bounds before a failure; a late one less than "
        "the lead before it (or in the window holding it); a false one with no failure "
        "within the horizon while the device was seen; a censored one too near the end of "
        "its data or a renewing maintenance to tell. Device-months count the time in which "
        "an alert would have been judged false.",
        "",
    ]
    m, ci = report.get("metrics"), report.get("ci95") or {}
    if m:
        lines += [
            "## Window by window",
            "",
            f"Protocol: {p['name']}. Scored: {p['scored']}; label: {p['label']}. "
            f"{p['windows_scored']} windows scored, {p['windows_labelled']} labelled, "
            f"{p['positives']} positive.",
            "",
            "| metric | this model | 95% CI |"
            + "".join(f" {n} |" for n in report.get("baselines") or {}),
            "| --- | --- | --- |" + " --- |" * len(report.get("baselines") or {}),
        ]
        for k in ("accuracy", "precision", "recall", "f1", "pr_auc"):
            extra = "".join(
                f" {b['metrics'][k]:.4f} |" if b.get("metrics") else " – |"
                for b in (report.get("baselines") or {}).values()
            )
            interval = f"[{ci[k][0]:.3f}, {ci[k][1]:.3f}]" if len(ci.get(k, ())) == 2 else "–"
            lines.append(f"| {k} | {m[k]:.4f} | {interval} |{extra}")
        lines += ["", f"CI: {report['ci_method']}.", ""]
    if report.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    for plot in report.get("plots", []):
        lines.append(f"![{plot}]({plot})")
    return "\n".join(lines).rstrip() + "\n"


def plot_lead_times(
    tables: Mapping[str, EventTable], path: Path, lead_s: float, max_lead_s: float
) -> None:
    """Histogram of the caught failures' lead times, one series per table."""
    plt = _pyplot()
    unit, size = ("days", 86400.0) if max_lead_s >= 2 * 86400 else ("hours", 3600.0)
    fig, ax = plt.subplots(figsize=(5.5, 3.2), dpi=80)
    bins = np.linspace(0.0, max_lead_s / size, 13)
    for name, table in tables.items():
        leads = np.asarray(table.lead_times_s) / size
        ax.hist(leads, bins=bins, alpha=0.55, label=f"{name}: {table.caught} of {table.failures}")
    ax.axvline(lead_s / size, color="grey", ls=":", label="lead")
    ax.set_xlabel(f"lead time ({unit} from the alert to the failure)")
    ax.set_ylabel("failures caught")
    ax.legend(fontsize=7)
    ax.set_title("Lead times of the caught failures", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_risk_before_failure(
    scored: ScoredWindows,
    failures: Mapping[str, Sequence[float]],
    threshold: float,
    lead_s: float,
    horizon_s: float,
    path: Path,
    *,
    most: int = 36,
) -> int:
    """Risk over each failed device's last run, one small panel per failure.

    Returns:
        The number of panels drawn (at most ``most``, the latest failures first).
    """
    plt = _pyplot()
    last_runs = []
    for device in sorted(failures):
        times = sorted(failures[device])
        if not times:
            continue
        m = scored.device == device
        f = times[-1]
        before = times[-2] if len(times) > 1 else -np.inf
        sel = m & (scored.window_end > before) & (scored.window_end <= f + horizon_s)
        if sel.any():
            last_runs.append((device, f, scored.window_end[sel] - f, scored.risk[sel]))
    last_runs = sorted(last_runs, key=lambda r: -r[1])[:most]
    if not last_runs:
        return 0
    span = max(float(-r[2].min()) for r in last_runs)
    unit, size = ("days", 86400.0) if span >= 2 * 86400 else ("hours", 3600.0)
    cols = min(6, len(last_runs))
    rows = (len(last_runs) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.9 * cols, 1.5 * rows + 0.4), dpi=80, sharey=True, squeeze=False
    )
    for ax in axes.flat[len(last_runs) :]:
        ax.axis("off")
    # Risks of rare failures are small: the axis fits them and the threshold, not [0, 1].
    top = min(1.02, max(2 * threshold, 1.1 * max(float(r[3].max()) for r in last_runs), 0.05))
    for ax, (device, _, rel, risk) in zip(axes.flat, last_runs, strict=False):
        ax.plot(rel / size, risk, lw=1.0, marker=".", ms=2)
        ax.axhline(threshold, color="tab:red", ls="--", lw=0.8)
        ax.axvspan(-horizon_s / size, -lead_s / size, color="tab:green", alpha=0.12)
        ax.axvline(0.0, color="black", lw=0.6)
        ax.set_ylim(0.0, top)
        ax.set_title(str(device)[:18], fontsize=6)
        ax.tick_params(labelsize=5)
    fig.suptitle(
        f"Risk over each failed device's last run ({unit} to the failure at 0; green: caught "
        "if an alert opens there; red: threshold)",
        fontsize=7,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return len(last_runs)


def write_fleet_report(
    report: dict[str, Any],
    out: Path,
    *,
    scored: ScoredWindows | None = None,
    tables: Mapping[str, EventTable] | None = None,
    failures: Mapping[str, Sequence[float]] | None = None,
    plots: bool = True,
) -> None:
    """Write ``report.json`` and ``report.md`` (and the plots) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if plots and scored is not None and tables:
        ev = report["events"]
        written = []
        plot_lead_times(tables, out / "lead_times.png", ev["lead_s"], ev["max_lead_s"])
        written.append("lead_times.png")
        horizon = float(ev["max_lead_s"])
        if plot_risk_before_failure(
            scored,
            failures or {},
            float(report["threshold"]["value"]),
            float(ev["lead_s"]),
            horizon,
            out / "risk_before_failure.png",
        ):
            written.append("risk_before_failure.png")
        report["plots"] = written
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_fleet_report_md(report), encoding="utf-8")
    logger.info("report written to %s", out)

"""The report of a recording's evaluation: JSON, Markdown, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.events import event_metrics
from models.fleet import ScoredWindows
from models.fleet_report import events_rows, fleet_report, window_metrics, write_fleet_report

DAY = 86400.0


def scored() -> ScoredWindows:
    ends = np.arange(1.0, 11.0) * DAY
    return ScoredWindows(
        device=np.array(["a"] * 10 + ["b"] * 10),
        window_start=np.concatenate([ends, ends]) - DAY,
        window_end=np.concatenate([ends, ends]),
        t_end=np.concatenate([ends, ends]) - DAY,
        risk=np.concatenate([np.linspace(0.0, 0.9, 10), np.full(10, 0.1)]),
        y=np.array([0] * 6 + [1] * 4 + [0] * 7 + [-1] * 3),
        rul=np.full(20, np.inf),
        spans={"a": (0.0, 10 * DAY), "b": (0.0, 10 * DAY)},
    )


def test_window_metrics_leave_unknown_labels_out() -> None:
    got = window_metrics(scored(), 0.5)
    assert got["metrics"]["n"] == 17 and got["metrics"]["positives"] == 4
    assert set(got["ci95"]) == {"accuracy", "precision", "recall", "f1", "pr_auc"}


def test_report_json_markdown_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="plots need the train extra")
    s = scored()
    table = event_metrics({"a": [7 * DAY], "b": [2 * DAY]}, {"a": [10 * DAY]}, s.spans,
                          lead_s=DAY, max_lead_s=3 * DAY)  # fmt: skip
    rule = event_metrics({}, {"a": [10 * DAY]}, s.spans, lead_s=DAY, max_lead_s=3 * DAY)
    report = fleet_report(
        model={"model_version": "m1"},
        data={"source": "plant.csv", "devices_from": "held out"},
        spec={"window_seconds": DAY, "horizon_windows": 3, "sequence_length": 2},
        scored=s,
        threshold=0.5,
        policy={"hysteresis": 0.1, "resolve_windows": 2, "cooldown_windows": 3},
        events=table,
        baselines={"rule": ({"description": "d", "source": "s"}, s, rule)},
        notes=["a note"],
    )
    write_fleet_report(report, tmp_path, scored=s, tables={"model": table, "rule": rule},
                       failures={"a": [10 * DAY]})  # fmt: skip
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["events"]["caught"] == 1 and saved["events"]["median_lead_s"] == 3 * DAY
    assert saved["baselines"]["rule"]["events"]["caught"] == 0
    assert saved["plots"] == ["lead_times.png", "risk_before_failure.png"]
    assert all((tmp_path / p).stat().st_size > 1000 for p in saved["plots"])
    md = (tmp_path / "report.md").read_text()
    assert "| caught ≥ lead ahead | 1 (100%) | 0 (0%) |" in md and "- a note" in md


def test_events_rows_one_column_per_table() -> None:
    t = event_metrics({}, {}, {"a": (0.0, 9 * DAY)}, lead_s=0.0, max_lead_s=DAY).to_dict()
    rows = events_rows({"x": t, "y": t})
    assert rows[0] == "| figure | x | y |" and "| failures | 0 | 0 |" in rows

"""The committed default model's report.json is what `prognos evaluate` gives for it now."""

from __future__ import annotations

import json
from pathlib import Path

from models.evaluation import evaluate_cmapss
from models.metadata import DEFAULT_MODEL


def test_the_committed_report_is_what_evaluating_the_model_gives_now(
    tmp_path: Path, cmapss_dir: Path
) -> None:
    report = evaluate_cmapss(DEFAULT_MODEL, cmapss_dir, tmp_path, plots=False)
    committed = json.loads((DEFAULT_MODEL / "report.json").read_text())
    assert report["model"]["sha256"] == committed["model"]["sha256"]
    assert report["protocol"] == committed["protocol"]
    assert report["threshold"]["value"] == committed["threshold"]["value"]
    assert report["metrics"] == committed["metrics"]
    assert report["ci95"] == committed["ci95"]
    assert json.loads((tmp_path / "report.json").read_text())["metrics"] == committed["metrics"]

"""Metrics, threshold choice and confidence intervals on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation import (
    average_precision,
    binary_metrics,
    bootstrap_ci,
    choose_threshold,
    pr_curve,
)


def test_binary_metrics_known_case() -> None:
    m = binary_metrics([1, 1, 1, 0, 0, 0, 0], [0.9, 0.8, 0.2, 0.7, 0.1, 0.0, 0.3], 0.5)
    assert m["confusion_matrix"] == [[3, 1], [1, 2]]
    assert (m["precision"], m["recall"], m["f1"]) == (0.6667, 0.6667, 0.6667)
    assert m["accuracy"] == pytest.approx(5 / 7, abs=1e-4)


def test_average_precision_matches_hand_computation() -> None:
    # Ranking 1, 0, 1, 0: AP = (1/2)*1 + (1/2)*(2/3).
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 + 1 / 3)
    assert average_precision([1, 1, 0], [0.9, 0.8, 0.1]) == 1.0
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_pr_curve_handles_ties() -> None:
    precision, recall, thresholds = pr_curve([1, 0, 1], [0.5, 0.5, 0.2])
    assert thresholds.tolist() == [0.5, 0.2]
    assert precision.tolist() == [0.5, 2 / 3] and recall.tolist() == [0.5, 1.0]


def test_threshold_maximises_f1() -> None:
    y = [0, 0, 0, 1, 1, 1]
    risk = [0.1, 0.2, 0.6, 0.65, 0.8, 0.9]
    t = choose_threshold(y, risk)
    assert 0.6 < t < 0.65
    assert binary_metrics(y, risk, t)["f1"] == 1.0


def test_bootstrap_ci_brackets_the_estimate() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    risk = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 200), 0, 1)
    m = binary_metrics(y, risk, 0.5)
    ci = bootstrap_ci(y, risk, 0.5, resamples=500)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert ci[name][0] <= m[name] <= ci[name][1]
        assert ci[name][1] - ci[name][0] > 0.01


def test_group_bootstrap_resamples_whole_devices() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(30), 20)
    y = (rng.random(600) < 0.3).astype(int)
    risk = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 600), 0, 1)
    rows = bootstrap_ci(y, risk, 0.5)
    by_device = bootstrap_ci(y, risk, 0.5, groups=groups)
    point = binary_metrics(y, risk, 0.5)
    for name in ("accuracy", "precision", "recall", "f1", "pr_auc"):
        low, high = by_device[name]
        assert low <= point[name] <= high
    # One device's rows are not independent draws: resampling rows understates the spread
    # less than here, where each device is one draw; both are intervals.
    assert by_device["f1"][0] <= by_device["f1"][1] and rows["f1"][0] <= rows["f1"][1]
    # A single group: every resample is the same data.
    one = bootstrap_ci(y[:20], risk[:20], 0.5, groups=np.zeros(20))
    assert one["accuracy"][0] == one["accuracy"][1]

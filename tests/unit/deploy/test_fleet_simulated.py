"""Train and evaluate on a simulated fleet with repeated failures and maintenance, and check
the event figures against lead times computed here, independently, from the simulator's
ground truth (``ground_truth.parquet``: one row per machine life).

The CLI reads the failure and maintenance logs a user would have (CSV files written from
the ground truth); this test reads the ground truth itself, takes the alert openings the
report lists, and applies the definitions with its own loop. Small enough for CI on two
cores: ten machines, eight simulated days at one reading a minute, one tiny network.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deploy.cli import main

pytest.importorskip("torch", reason="PyTorch not installed: needs the train extra")
pytest.importorskip("sklearn", reason="scikit-learn not installed: needs the train extra")

WINDOW, LEAD, HORIZON = 1800.0, 1800.0, 6 * 3600.0


def _seconds(column: pd.Series) -> np.ndarray:
    """Unix seconds of a timestamp column, whatever its unit (the ground truth's is ms)."""
    since = pd.to_datetime(column, utc=True) - pd.Timestamp("1970-01-01", tz="UTC")
    return since.dt.total_seconds().to_numpy()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("sim")
    record = folder / "record"
    assert main(["--log-level", "WARNING", "simulate", "--machines", "10", "--types",
                 "pump,motor,fan", "--step", "60", "--rate", "max", "--duration", "691200",
                 "--mean-life", "172800", "--repair", "7200", "--maintenance-interval", "259200",
                 "--seed", "3", "--record", str(record), "--no-publish"]) == 0  # fmt: skip
    truth = pd.read_parquet(record / "ground_truth.parquet")
    ended = truth[truth["end_reason"].isin(["failure", "maintenance"])]
    log = ended[ended["end_reason"] == "failure"][["device_id", "end_time"]]
    maint = ended[ended["end_reason"] == "maintenance"][["device_id", "end_time"]]
    log.rename(columns={"end_time": "event_time"}).to_csv(folder / "failures.csv", index=False)
    maint.rename(columns={"end_time": "event_time"}).to_csv(folder / "maint.csv", index=False)
    model = folder / "model"
    assert main(["--log-level", "WARNING", "train", "--data", str(record / "readings.parquet"),
                 "--failures", str(folder / "failures.csv"), "--maintenance",
                 str(folder / "maint.csv"), "--out", str(model), "--window", "30m", "--horizon",
                 "6h", "--sequence-length", "6", "--phases", "1", "--lead", "30m",
                 "--test-fraction", "0.3", "--epochs", "4", "--folds", "1", "--seeds", "1",
                 "--arch", "gru", "--threads", "1", "--no-plots"]) == 0  # fmt: skip
    return {
        "truth": truth,
        "readings": pd.read_parquet(
            record / "readings.parquet", columns=["device_id", "event_time"]
        ),
        "split": json.loads((model / "split.json").read_text()),
        "report": json.loads((model / "report.json").read_text()),
        "training": json.loads((model / "training.json").read_text()),
    }


def test_the_fleet_has_repeated_failures_and_maintenance(run: dict[str, Any]) -> None:
    truth = run["truth"]
    failures = truth[truth["end_reason"] == "failure"].groupby("device_id").size()
    assert (failures >= 2).sum() >= 5 and (truth["end_reason"] == "maintenance").sum() >= 10
    assert run["training"]["events"]["maintenance_renews"] is True
    # Every failure was labelled, none lost to a device mismatch or a time-zone slip.
    assert run["training"]["events"]["failures"] == int(failures.sum())


def test_event_figures_match_lead_times_computed_from_the_ground_truth(run: dict[str, Any]) -> None:
    truth, report = run["truth"], run["report"]
    test_devices = set(run["split"]["test_devices"])
    events = report["events"]
    assert (events["lead_s"], events["max_lead_s"]) == (LEAD, HORIZON)
    alerts: dict[str, list[float]] = {}
    for a in events["per_alert"]:
        alerts.setdefault(a["device"], []).append(a["time"])
    assert set(alerts) <= test_devices

    lives = truth[truth["device_id"].isin(test_devices)].copy()
    lives["end"] = _seconds(lives["end_time"])
    fails = lives[lives["end_reason"] == "failure"].groupby("device_id")["end"].apply(sorted)
    renew = lives[lives["end_reason"] == "maintenance"].groupby("device_id")["end"].apply(sorted)
    readings = run["readings"][run["readings"]["device_id"].isin(test_devices)]
    last_seen = pd.Series(_seconds(readings["event_time"]), index=readings["device_id"].to_numpy())
    last_seen = last_seen.groupby(level=0).max()

    # Failure by failure: caught when an alert opened between HORIZON and LEAD before it,
    # after the device's previous failure or maintenance; the lead is from the earliest.
    leads, missed = [], 0
    for device, times in fails.items():
        ends = sorted([*times, *renew.get(device, [])])
        for f in times:
            previous = max([e for e in ends if e < f], default=-np.inf)
            mine = [a for a in alerts.get(device, []) if previous < a and LEAD <= f - a <= HORIZON]
            # An alert from the window that holds the previous failure is late for it.
            mine = [a for a in mine if not (previous in times and a - previous <= WINDOW)]
            if mine:
                leads.append(f - min(mine))
            else:
                missed += 1
    assert events["failures"] == len(leads) + missed == sum(len(t) for t in fails)
    assert events["caught"] == len(leads)
    assert sorted(o["lead_s"] for o in events["per_failure"] if o["caught"]) == sorted(leads)
    if leads:
        assert events["median_lead_s"] == pytest.approx(float(np.median(leads)))
    # False alerts: no failure within HORIZON and the device seen working that long.
    false = 0
    for device, opened in alerts.items():
        dev_fails = fails.get(device, [])
        for a in opened:
            after_failure = [f for f in dev_fails if f < a and a - f <= WINDOW]
            f_next = min([f for f in dev_fails if f >= a], default=np.inf)
            m_next = min([m for m in renew.get(device, []) if m >= a], default=np.inf)
            if after_failure:
                continue
            if f_next <= m_next and f_next < np.inf:
                false += int(f_next - a > HORIZON)
            else:
                end = m_next if m_next < np.inf else float(last_seen[device])
                false += int(end - a >= HORIZON)
    assert events["false_alerts"] == false
    # The model has learnt something: most failures are caught ahead.
    assert events["caught_share"] >= 0.4, events

"""The coverage guard: a batch sharing no sensor with the model stops the job; low
coverage is counted, warned about and carried by each alert event."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ingest.config import KafkaConfig
from models.features import FeatureSpec, sensor_coverage
from stream import coverage
from stream.alerts import AlertPolicy, DeviceState, ScoredWindow, step
from stream.contract import AlertEvent
from stream.coverage import CoverageGuard
from stream.errors import CoverageError

KAFKA = KafkaConfig(topic="plant.readings")


def window(device: str, share: float, risk: float = 0.1) -> ScoredWindow:
    return ScoredWindow(device, 0, 60_000, risk, "v1", "CPU", (), share)


def test_coverage_is_the_share_of_sensors_with_any_finite_statistic() -> None:
    spec = FeatureSpec(("s2", "s3", "s4"), 60.0, 2, 1, statistics=("mean", "std"))
    nan = float("nan")
    raw = np.array(
        [
            [1, 0, 2, 0, 3, 0],  # all three
            [1, nan, nan, nan, 3, nan],  # s2 and s4 (s2's std alone missing)
            [nan] * 6,  # none: readings without the model's sensors
        ]
    )
    assert sensor_coverage(spec, raw).tolist() == pytest.approx([1.0, 2 / 3, 0.0])


def test_a_first_batch_sharing_no_sensor_stops_naming_both_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coverage, "readings_sensors", lambda kafka: {"temp", "pressure"})
    guard = CoverageGuard(("s2", "s3"), 0.8, KAFKA)
    with pytest.raises(CoverageError) as info:
        guard.check([window("m1", 0.0), window("m2", 0.0)], batch_id=0)
    message = str(info.value)
    assert "'plant.readings' share no sensor with the model" in message
    assert "the model reads s2, s3; the readings carry pressure, temp" in message
    assert "--model" in message


def test_once_windows_with_sensors_were_seen_a_blank_batch_only_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = CoverageGuard(("s2", "s3"), 0.8, KAFKA)
    assert guard.check([], 0).low == 0  # a batch without windows decides nothing
    first = guard.check([window("m1", 1.0), window("m2", 0.5)], 1)
    assert first.low == 1 and first.mean == pytest.approx(0.75)
    with caplog.at_level(logging.WARNING, logger="stream.coverage"):
        later = guard.check([window("m1", 0.0)], 2)
    assert later.low == 1 and later.mean == 0.0
    assert "1 of 1 windows had under 80% of the model's sensors" in caplog.text


def test_each_alert_event_carries_its_windows_coverage() -> None:
    _, events = step(AlertPolicy(threshold=0.5), DeviceState(), window("m1", 0.6667, 0.9), 60_000)
    assert events[0].coverage == 0.667
    assert AlertEvent.from_json(events[0].to_json()).coverage == 0.667

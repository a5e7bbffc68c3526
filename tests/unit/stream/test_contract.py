"""The Redis output contract: key names, the alert event's JSON form, the hashes' fields.

This is the one test that spells key names literally: it pins the layout users' tools
depend on, so renaming a key is a deliberate, visible change.
"""

from __future__ import annotations

import json

import pytest

from stream.alerts import AlertPolicy, DeviceState, ScoredWindow, step
from stream.contract import (
    SCHEMA_VERSION,
    AlertEvent,
    FleetSummary,
    JobMetrics,
    Keys,
    dead_letter_reason,
)
from stream.errors import AlertFormatError, StreamError
from tests.unit.stream.events import TOP, event

TOP_JSON = {"name": "s2__mean", "value": 643.1, "z": 3.2, "normal_low": 641.0, "normal_high": 643.0}


def test_the_key_layout_is_pinned() -> None:
    keys = Keys("p")
    assert (keys.alerts, keys.risk, keys.risk_rank, keys.open, keys.fleet) == (
        "p:alerts",
        "p:risk",
        "p:risk:rank",
        "p:open",
        "p:fleet",
    )
    assert (keys.metrics, keys.deadletters, keys.device("pump-1")) == (
        "p:metrics",
        "p:deadletters",
        "p:device:pump-1",
    )
    assert keys.deadletters_counted == "p:deadletters:counted"
    assert keys.device("pump-1").startswith(keys.device_key_head)
    assert keys.severity_channel("warning") == "p:alerts:severity:warning"
    assert keys.device_channel("pump-1") == "p:alerts:device:pump-1"
    assert Keys("t[1]*").device_channel_pattern("pump-*") == "t\\[1\\]\\*:alerts:device:pump-*"
    assert Keys("t[1]*").pattern == "t\\[1\\]\\*:*"
    assert keys.smoke_values("r1") == "p:smoke:r1:values"
    assert keys.smoke_deliveries("r1") == "p:smoke:r1:deliveries"
    assert Keys().alerts == "prognos:alerts"
    assert dead_letter_reason("temperature", "range") == "temperature/range"


def test_an_event_round_trips_through_json_with_its_schema_version() -> None:
    original = event()
    text = original.to_json()
    data = json.loads(text)
    assert data["schema"] == SCHEMA_VERSION == 1
    assert data["top_features"] == [
        TOP_JSON,
        {"name": "s3__std", "value": None, "z": -2.5, "normal_low": None, "normal_high": None},
    ]
    assert list(data) == sorted(data)  # keys sorted: one byte form per event
    alert = AlertEvent.from_json(text)
    assert alert == original
    assert AlertEvent.from_json(text.encode()) == alert  # bytes as Redis returns them
    assert alert.window_end.isoformat() == "2026-01-01T00:01:00+00:00"


def test_an_events_dict_names_every_field_as_asdict_does() -> None:
    """to_dict is written field by field; a field added to AlertEvent must be added there."""
    from dataclasses import asdict

    e = event()
    want = asdict(e)
    want["top_features"] = [asdict(f) for f in e.top_features]
    want["schema"] = 1
    assert e.top_features and e.to_dict() == want
    assert list(e.to_dict()) == list(want)


def test_events_without_a_schema_field_are_version_1() -> None:
    data = json.loads(event().to_json())
    del data["schema"]
    assert AlertEvent.from_dict(data) == event()


def test_integers_where_floats_are_expected_and_unknown_fields_are_accepted() -> None:
    data = json.loads(event(risk=1).to_json())
    data["new_field"] = "from a newer job"
    alert = AlertEvent.from_dict(data)
    assert alert.risk == 1.0 and isinstance(alert.risk, float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "not JSON"),
        ("[1, 2]", "is a list, not an object"),
        (json.dumps({k: v for k, v in json.loads(event().to_json()).items() if k != "device_id"}), "'device_id' is missing"),
        (event().to_json().replace('"opened"', '"closed"'), "'kind' is 'closed'"),
        (event().to_json().replace('"critical"', '"fatal"'), "'severity' is 'fatal'"),
        (event().to_json().replace('"risk":0.953', '"risk":"high"'), "'risk' is 'high', expected a number"),
        (event().to_json().replace('"window_end_ms":1767225660000', '"window_end_ms":1.5'), "'window_end_ms' is 1.5"),
        (event().to_json().replace('"z":3.2', '"z":true'), "top_features[0] field 'z'"),
        (event().to_json().replace('"schema":1', '"schema":2'), "schema 2, this reader knows up to 1: upgrade"),
        (event().to_json().replace('"schema":1', '"schema":"1"'), "'schema' is '1'"),
    ],
)  # fmt: skip
def test_a_bad_event_names_the_field(text: str, message: str) -> None:
    with pytest.raises(AlertFormatError) as info:
        AlertEvent.from_json(text)
    assert message in str(info.value)
    assert isinstance(info.value, StreamError) and not info.value.retriable


def test_what_the_policy_writes_parses_back_equal() -> None:
    window = ScoredWindow("d", 0, 60_000, 0.95, "v1", "CPU", (TOP,))
    _, events = step(AlertPolicy(threshold=0.5), DeviceState(), window, 60_000)
    assert len(events) == 1
    assert AlertEvent.from_json(events[0].to_json()) == events[0]
    assert events[0].top_features == (TOP,)


def test_the_metrics_hash_round_trips_and_tolerates_missing_or_bad_fields() -> None:
    metrics = JobMetrics(batch_id=41, input_rows_per_s=2500.5, provider="CPUExecutionProvider")
    stored = {k.encode(): v.encode() for k, v in metrics.to_hash().items()}  # as Redis returns
    assert JobMetrics.from_hash(stored) == metrics
    assert JobMetrics.from_hash({}) is None
    partial = JobMetrics.from_hash({"batch_id": "3", "alerts_total": "many"})
    assert partial is not None and partial.batch_id == 3 and partial.alerts_total == 0


def test_the_fleet_hash_leaves_out_what_is_not_known_yet() -> None:
    empty = FleetSummary(devices=2, open_alerts=0, updated_ms=5)
    assert "max_risk" not in empty.to_hash()
    assert FleetSummary.from_hash(empty.to_hash()) == empty
    full = FleetSummary(3, 1, 1, 0.9, "pump-1", 7)
    assert FleetSummary.from_hash(full.to_hash()) == full
    assert FleetSummary.from_hash({}) is None

"""Alert parsing, subscription channels, configs, rendering, status lines: no services."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from deploy.stack import free_port
from stream import subscribe
from stream.alerts import AlertEvent
from stream.alerts_cli import _LiveTable, format_features, format_line, format_time, render_table
from stream.errors import ConfigError, ServiceUnreachableError, StreamError
from stream.status_cli import read_checkpoint_offsets, render
from stream.subscribe import (
    Alert,
    AlertFormatError,
    Delivery,
    FollowConfig,
    PubSubSubscriber,
    RedisUnreachableError,
    StreamSubscriber,
    Subscriber,
    TailConfig,
    TopFeature,
)

TOP = {"name": "s2__mean", "value": 643.1, "z": 3.2, "normal_low": 641.0, "normal_high": 643.0}


def event(**changes: Any) -> AlertEvent:
    values: dict[str, Any] = dict(
        event_id="e1",
        alert_id="a1",
        kind="opened",
        device_id="pump-0007",
        severity="critical",
        risk=0.953,
        threshold=0.5,
        window_start_ms=1767225600000,
        window_end_ms=1767225660000,
        opened_window_end_ms=1767225660000,
        model_version="1.0.0",
        provider="CPUExecutionProvider",
        top_features=(TOP, {"name": "s3__std", "value": None, "z": -2.5}),
    )
    values.update(changes)
    return AlertEvent(**values)


def test_public_api_is_explicit() -> None:
    assert set(subscribe.__all__) <= set(dir(subscribe))
    assert "Alert" in subscribe.__all__ and "follow" in subscribe.__all__


def test_an_event_parses_into_a_typed_alert_and_back() -> None:
    text = event().to_json()
    alert = Alert.from_json(text)
    assert alert.kind == "opened" and alert.severity == "critical" and alert.risk == 0.953
    assert (
        isinstance(alert.window_end_ms, int)
        and alert.window_end.isoformat() == "2026-01-01T00:01:00+00:00"
    )
    assert alert.top_features == (
        TopFeature("s2__mean", 643.1, 3.2, 641.0, 643.0),
        TopFeature("s3__std", None, -2.5, None, None),
    )
    assert json.loads(alert.to_json()) == {**json.loads(text), "top_features": [
        TOP, {"name": "s3__std", "value": None, "z": -2.5, "normal_low": None, "normal_high": None}
    ]}  # fmt: skip
    assert Alert.from_json(alert.to_json()) == alert
    assert Alert.from_json(text.encode()) == alert  # bytes as Redis returns them


def test_integers_where_floats_are_expected_and_unknown_fields_are_accepted() -> None:
    data = json.loads(event(risk=1).to_json())
    data["new_field"] = "from a newer job"
    alert = Alert.from_dict(data)
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
    ],
)  # fmt: skip
def test_a_bad_event_names_the_field(text: str, message: str) -> None:
    with pytest.raises(AlertFormatError, match=None) as info:
        Alert.from_json(text)
    assert message in str(info.value)
    assert isinstance(info.value, StreamError) and not info.value.retriable


def test_channels_give_each_alert_once() -> None:
    both = TailConfig("redis://x", "p")
    assert both.channels() == (("p:alerts:severity:warning", "p:alerts:severity:critical"), ())
    critical = TailConfig("redis://x", "p", severities=("critical",))
    assert critical.channels() == (("p:alerts:severity:critical",), ())
    by_device = TailConfig("redis://x", "t[1]*", severities=("warning",), device_pattern="pump-*")
    assert by_device.channels() == ((), ("t\\[1\\]\\*:alerts:device:pump-*",))
    alert = Alert.from_json(event().to_json())
    assert not by_device.accepts(alert) and critical.accepts(alert)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TailConfig("redis://x", severities=("fatal",)),  # type: ignore[arg-type]
        lambda: TailConfig("redis://x", severities=()),
        lambda: TailConfig("redis://x", device_pattern=" "),
        lambda: FollowConfig("redis://x", group="", consumer="c"),
        lambda: FollowConfig("redis://x", group="g", consumer=""),
        lambda: FollowConfig("redis://x", group="g", consumer="c", start_from="middle"),  # type: ignore[arg-type]
        lambda: FollowConfig("redis://x", group="g", consumer="c", batch=0),
    ],
)
def test_invalid_settings_are_refused(make: Any) -> None:
    with pytest.raises(ConfigError):
        make()


def test_configs_are_frozen_and_hide_the_url() -> None:
    config = FollowConfig("redis://app:s3cret@cache:6379/0", group="g", consumer="c")
    assert "s3cret" not in repr(config) and "s3cret" not in repr(TailConfig(config.redis_url))
    assert config.stream == "prognos:alerts"
    with pytest.raises(AttributeError):
        config.group = "other"  # type: ignore[misc]


@pytest.mark.parametrize("subscriber", ["pubsub", "stream"])
def test_an_unreachable_redis_is_named_with_the_fix(subscriber: str) -> None:
    url = f"redis://app:s3cret@127.0.0.1:{free_port()}/0"
    sub: Subscriber = (
        PubSubSubscriber(TailConfig(url))
        if subscriber == "pubsub"
        else StreamSubscriber(FollowConfig(url, group="g", consumer="c"))
    )
    with pytest.raises(RedisUnreachableError) as info:
        sub.open()
    message = str(info.value)
    assert "app:***@127.0.0.1" in message and "s3cret" not in message
    assert "prognos stack up" in message and "PROGNOS_REDIS_URL" in message
    assert isinstance(info.value, ServiceUnreachableError) and info.value.retriable


def test_a_delivery_without_acknowledgement_acks_nothing() -> None:
    alert = Alert.from_json(event().to_json())
    assert Delivery(alert).ack() is False
    calls: list[int] = []
    assert Delivery(alert, "1-0", False, lambda: calls.append(1) or True).ack() is True
    assert calls == [1]


# -- rendering ---------------------------------------------------------------------------------


def test_a_line_per_alert() -> None:
    alert = Alert.from_json(event().to_json())
    assert format_time(alert.window_end_ms) == "2026-01-01 00:01:00"
    assert format_features(alert.top_features) == "s2__mean=643.1 (z+3.2), s3__std=NA (z-2.5)"
    assert format_line(alert) == (
        "2026-01-01 00:01:00Z  pump-0007  opened    critical  risk 0.953  "
        "s2__mean=643.1 (z+3.2), s3__std=NA (z-2.5)"
    )


def test_the_table_fits_the_width_and_colours_only_when_asked() -> None:
    alerts = [
        Alert.from_json(event(device_id=f"pump-{i}", severity="warning").to_json())
        for i in range(3)
    ]
    for width in (40, 80, 200):
        lines = render_table(alerts, width, header="prognos alerts tail")
        assert len(lines) == 2 + 3 and all(len(line) <= width for line in lines)
        assert "\x1b[" not in "".join(lines)
    wide = render_table(alerts, 200)
    assert wide[0].startswith("TIME (UTC)") and "TOP FEATURES" in wide[0]
    assert "pump-2" in wide[-1] and "s2__mean=643.1" in wide[-1]
    coloured = render_table(alerts, 200, colour=True)
    assert "\x1b[33mwarning" in coloured[-1]


def test_the_live_table_redraws_in_place_and_keeps_the_last_rows() -> None:
    out = io.StringIO()
    table = _LiveTable(out, rows=2, header="h")
    for i in range(3):
        table.add(Alert.from_json(event(device_id=f"dev-{i}").to_json()))
    assert [a.device_id for a in table.alerts] == ["dev-1", "dev-2"] and table.received == 3
    frames = out.getvalue()
    assert frames.count("\x1b[J") == 3 and f"\x1b[{table.drawn}F" in frames


# -- status --------------------------------------------------------------------------------------


def test_checkpoint_offsets_come_from_the_newest_batch(tmp_path: Path) -> None:
    assert read_checkpoint_offsets(tmp_path, "t") is None
    folder = tmp_path / "main" / "offsets"
    folder.mkdir(parents=True)
    (folder / "9").write_text('v1\n{}\n{"t":{"0":5}}\n')
    (folder / "10").write_text('v1\n{"batchWatermarkMs":1}\n{"t":{"0":7,"1":9}}\n')
    (folder / ".10.crc").write_text("x")
    assert read_checkpoint_offsets(tmp_path, "t") == (10, {0: 7, 1: 9})
    assert read_checkpoint_offsets(tmp_path, "other") is None


def _report(**changes: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "prefix": "prognos",
        "services": [
            {"name": "kafka", "state": "stopped", "address": "127.0.0.1:9092", "pid": None}
        ],
        "redis": {"url": "redis://127.0.0.1:6379/0", "reachable": True},
        "metrics": {},
        "dead_letters": {},
        "fleet": {},
        "top_devices": [],
        "lag": {"readings": None, "detail": "no offsets"},
    }
    report.update(changes)
    return report


def test_status_says_no_data_yet_and_not_running() -> None:
    lines = "\n".join(render(_report()))
    assert "kafka  stopped" in lines
    assert "no data yet: no batch recorded" in lines and "no data yet: no window scored" in lines
    assert "kafka lag: unknown (no offsets)" in lines and "dead letters: none" in lines
    stale = "\n".join(render(_report(metrics={"batch_id": "3", "updated_ms": "0"}), now_ms=10**9))
    assert "not running (no batch for a while); last batch 3" in stale
    down = "\n".join(
        render(_report(redis={"url": "redis://h:1/0", "reachable": False, "error": "refused"}))
    )
    assert "not reachable (refused): run `prognos stack up`" in down

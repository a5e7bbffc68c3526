"""Subscription channels, configs, rendering: no services."""

from __future__ import annotations

import io
from typing import Any

import pytest

from deploy.stack import free_port
from stream import subscribe
from stream.alerts_cli import _LiveTable, format_features, format_line, format_time, render_table
from stream.contract import Keys
from stream.errors import ConfigError, ServiceUnreachableError
from stream.subscribe import (
    Delivery,
    FollowConfig,
    PubSubSubscriber,
    RedisUnreachableError,
    StreamSubscriber,
    Subscriber,
    TailConfig,
)
from tests.unit.stream.events import event


def test_public_api_is_explicit() -> None:
    assert set(subscribe.__all__) <= set(dir(subscribe))
    assert "AlertEvent" in subscribe.__all__ and "follow" in subscribe.__all__


def test_channels_give_each_alert_once() -> None:
    keys = Keys("p")
    both = TailConfig("redis://x", "p")
    assert both.channels() == (
        (keys.severity_channel("warning"), keys.severity_channel("critical")),
        (),
    )
    critical = TailConfig("redis://x", "p", severities=("critical",))
    assert critical.channels() == ((keys.severity_channel("critical"),), ())
    by_device = TailConfig("redis://x", "t[1]*", severities=("warning",), device_pattern="pump-*")
    assert by_device.channels() == ((), (Keys("t[1]*").device_channel_pattern("pump-*"),))
    alert = event()
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
    assert config.stream == Keys().alerts
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
    alert = event()
    assert Delivery(alert).ack() is False
    calls: list[int] = []
    assert Delivery(alert, "1-0", False, lambda: calls.append(1) or True).ack() is True
    assert calls == [1]


# -- rendering ---------------------------------------------------------------------------------


def test_a_line_per_alert() -> None:
    alert = event()
    assert format_time(alert.window_end_ms) == "2026-01-01 00:01:00"
    assert format_features(alert.top_features) == "s2__mean=643.1 (z+3.2), s3__std=NA (z-2.5)"
    assert format_line(alert) == (
        "2026-01-01 00:01:00Z  pump-0007  opened    critical  risk 0.953  "
        "s2__mean=643.1 (z+3.2), s3__std=NA (z-2.5)"
    )


def test_the_table_fits_the_width_and_colours_only_when_asked() -> None:
    alerts = [event(device_id=f"pump-{i}", severity="warning") for i in range(3)]
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
        table.add(event(device_id=f"dev-{i}"))
    assert [a.device_id for a in table.alerts] == ["dev-1", "dev-2"] and table.received == 3
    frames = out.getvalue()
    assert frames.count("\x1b[J") == 3 and f"\x1b[{table.drawn}F" in frames

"""Subscribers against a real redis-server: pub/sub tail, consumer-group follow, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from stream.alerts import AlertPolicy, ScoredWindow
from stream.contract import AlertEvent, Keys, TopFeature
from stream.sink import RedisAlertSink
from stream.subscribe import (
    Delivery,
    FollowConfig,
    PubSubSubscriber,
    StreamSubscriber,
    Subscriber,
    TailConfig,
    follow,
    tail,
)

ROOT = Path(__file__).resolve().parents[2]
W = 60_000
POLICY = AlertPolicy(threshold=0.5, hysteresis=0.1, resolve_windows=1, cooldown_windows=0)
TOP = (TopFeature("s2__mean", 643.1, 3.2, 641.0, 643.0),)


def _windows(device: str, risks: list[float], first: int = 0) -> list[ScoredWindow]:
    return [
        ScoredWindow(
            device, (first + i) * W, (first + i + 1) * W, r, "v1", "CPUExecutionProvider", TOP
        )
        for i, r in enumerate(risks)
    ]


def _write_alerts(redis_url: str, prefix: str, devices: list[str], first: int = 0) -> int:
    """Two alert events per device (opened warning, resolved); returns how many."""
    sink = RedisAlertSink(redis_url, POLICY, W, prefix=prefix)
    try:
        windows = [w for d in devices for w in _windows(d, [0.7, 0.1], first)]
        return sink.write(windows).events
    finally:
        sink.close()


def _stream_ids(redis_url: str, prefix: str) -> list[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [entry_id for entry_id, _ in client.xrange(Keys(prefix).alerts)]
    finally:
        client.close()


def _group(redis_url: str, prefix: str, group: str) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        groups = {g["name"]: g for g in client.xinfo_groups(Keys(prefix).alerts)}
        info = dict(groups[group])
        info["pending_entries"] = client.xpending(Keys(prefix).alerts, group)["pending"]
        return info
    finally:
        client.close()


def _consume(
    subscriber: Subscriber, n: int, handle: Callable[[Delivery], None], timeout_s: float = 15
) -> list[Delivery]:
    got: list[Delivery] = []
    for delivery in subscriber.deliveries(timeout_s):
        handle(delivery)
        got.append(delivery)
        if len(got) == n:
            break
    return got


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


# -- the contract: both implementations --------------------------------------------------


def _pubsub(redis_url: str, prefix: str) -> Subscriber:
    return PubSubSubscriber(TailConfig(redis_url, prefix))


def _stream(redis_url: str, prefix: str) -> Subscriber:
    return StreamSubscriber(FollowConfig(redis_url, group="contract", consumer="c1", prefix=prefix))


@pytest.mark.parametrize("make", [_pubsub, _stream], ids=["pubsub", "stream"])
def test_subscriber_contract(
    make: Callable[[str, str], Subscriber], redis_url: str, key_prefix: str
) -> None:
    subscriber = make(redis_url, key_prefix)
    assert isinstance(subscriber, Subscriber)
    with subscriber:
        subscriber.open()  # alerts written after open() are delivered
        thread, out = _in_thread(lambda: _consume(subscriber, 6, lambda d: d.ack()))
        n = _write_alerts(redis_url, key_prefix, ["pump-1", "pump-2", "pump-3"])
        thread.join(20)
    got = out[0]
    assert n == 6 and len(got) == 6
    assert all(isinstance(d.alert, AlertEvent) for d in got)
    assert len({d.alert.event_id for d in got}) == 6, "each alert delivered once"
    by_device: dict[str, list[str]] = {}
    for d in got:
        by_device.setdefault(d.alert.device_id, []).append(d.alert.kind)
    assert by_device == {f"pump-{i}": ["opened", "resolved"] for i in (1, 2, 3)}

    # close() from another thread ends a blocked iteration within about a poll interval.
    again = make(redis_url, key_prefix)
    thread, out = _in_thread(lambda: list(again.deliveries(30)))
    time.sleep(0.5)
    started = time.monotonic()
    again.close()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5


# -- follow: consumer groups ---------------------------------------------------------------


def test_follow_reads_everything_and_acks_each_once(redis_url: str, key_prefix: str) -> None:
    n = _write_alerts(redis_url, key_prefix, [f"pump-{i}" for i in range(5)])
    ids = _stream_ids(redis_url, key_prefix)
    acks: list[bool] = []
    with follow(redis_url, key_prefix, group="g", consumer="a", start_from="earliest") as sub:
        got = _consume(sub, n, lambda d: acks.append(d.ack()))
        assert [d.entry_id for d in got] == ids
        assert all(d.ack() is False for d in got), "a second ack acknowledges nothing"
    assert acks == [True] * n
    info = _group(redis_url, key_prefix, "g")
    assert info["pending_entries"] == 0
    assert info["last-delivered-id"] == ids[-1]
    assert info["entries-read"] == n


def test_a_crashed_consumers_alerts_are_reclaimed_nothing_lost_nothing_acked_twice(
    redis_url: str, key_prefix: str
) -> None:
    n = _write_alerts(redis_url, key_prefix, [f"pump-{i}" for i in range(4)])
    ids = _stream_ids(redis_url, key_prefix)
    config = FollowConfig(
        redis_url,
        group="g",
        consumer="dead",
        prefix=key_prefix,
        start_from="earliest",
        claim_idle_ms=300,
    )
    crashed = StreamSubscriber(config)
    handled_by_dead = _consume(crashed, 3, lambda d: None)  # read, never acknowledged
    crashed.close()  # "crash": no ack
    # It fetched the whole batch (3 handled, 5 not yet yielded): all 8 are pending on it.
    assert _group(redis_url, key_prefix, "g")["pending_entries"] == n

    time.sleep(0.5)  # idle longer than claim_idle_ms
    acked: list[str] = []
    survivor = StreamSubscriber(
        FollowConfig(redis_url, group="g", consumer="alive", prefix=key_prefix, claim_idle_ms=300)
    )
    with survivor:
        got = _consume(survivor, n, lambda d: acked.append(d.entry_id) if d.ack() else None)
    assert sorted(acked) == sorted(ids), "nothing lost"
    assert len(acked) == len(set(acked)) == n, "nothing acknowledged twice"
    assert {d.entry_id for d in handled_by_dead} <= {d.entry_id for d in got if d.redelivered}
    assert all(d.redelivered for d in got)
    assert _group(redis_url, key_prefix, "g")["pending_entries"] == 0


def test_a_restarted_consumer_resumes_after_the_last_acked_entry(
    redis_url: str, key_prefix: str
) -> None:
    _write_alerts(redis_url, key_prefix, ["pump-1", "pump-2"])  # 4 events
    config = FollowConfig(
        redis_url, group="g", consumer="a", prefix=key_prefix, start_from="earliest"
    )
    first = StreamSubscriber(config)
    got = _consume(first, 4, lambda d: None)
    for d in got[:3]:
        assert d.ack()
    first.close()  # crashed after handling 3 of 4

    _write_alerts(redis_url, key_prefix, ["pump-3"])  # written while it is down
    ids = _stream_ids(redis_url, key_prefix)
    with StreamSubscriber(config) as restarted:
        again = _consume(restarted, 3, lambda d: d.ack())
    assert [d.entry_id for d in again] == ids[3:]
    assert [d.redelivered for d in again] == [True, False, False]
    info = _group(redis_url, key_prefix, "g")
    assert info["pending_entries"] == 0 and info["entries-read"] == 6


def test_a_new_group_from_latest_sees_only_new_alerts(redis_url: str, key_prefix: str) -> None:
    _write_alerts(redis_url, key_prefix, ["old"])
    with follow(redis_url, key_prefix, group="late", consumer="a", start_from="latest") as sub:
        sub.open()
        _write_alerts(redis_url, key_prefix, ["new"])
        got = _consume(sub, 2, lambda d: d.ack(), timeout_s=5)
    assert {d.alert.device_id for d in got} == {"new"}


def test_follow_skips_and_acks_an_event_that_is_not_an_alert(
    redis_url: str, key_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.xadd(Keys(key_prefix).alerts, {"event": "{not json"})
    client.close()
    _write_alerts(redis_url, key_prefix, ["pump-1"])
    with follow(redis_url, key_prefix, group="g", consumer="a", start_from="earliest") as sub:
        got = _consume(sub, 2, lambda d: d.ack())
        assert sub.skipped == 1
    assert [d.alert.kind for d in got] == ["opened", "resolved"]
    assert _group(redis_url, key_prefix, "g")["pending_entries"] == 0


# -- tail: pub/sub ------------------------------------------------------------------------------


def test_tail_yields_typed_alerts_filtered_by_severity_and_device(
    redis_url: str, key_prefix: str
) -> None:
    def collect(**filters: Any) -> Callable[[], list[AlertEvent]]:
        def run() -> list[AlertEvent]:
            out = []
            for alert in tail(redis_url, key_prefix, timeout_s=4, **filters):
                out.append(alert)
            return out

        return run

    threads = [
        _in_thread(collect()),
        _in_thread(collect(severities=("critical",))),
        _in_thread(collect(device_pattern="pump-1*")),
        _in_thread(collect(device_pattern="pump-*", severities=("critical",))),
    ]
    time.sleep(1.0)  # the generators subscribe on their first next()
    sink = RedisAlertSink(redis_url, POLICY, W, prefix=key_prefix)
    sink.write(_windows("pump-10", [0.7]) + _windows("pump-2", [0.95]) + _windows("fan-1", [0.99]))
    sink.close()
    results = []
    for thread, out in threads:
        thread.join(10)
        results.append(out[0])
    everything, critical, pump1, pump_critical = results
    assert sorted(a.device_id for a in everything) == ["fan-1", "pump-10", "pump-2"]
    assert sorted(a.device_id for a in critical) == ["fan-1", "pump-2"]
    assert [a.device_id for a in pump1] == ["pump-10"]
    assert [a.device_id for a in pump_critical] == ["pump-2"]
    alert = pump1[0]
    assert isinstance(alert, AlertEvent) and alert.kind == "opened" and alert.severity == "warning"
    assert alert.risk == 0.7 and isinstance(alert.window_end_ms, int)
    assert alert.top_features == (TopFeature("s2__mean", 643.1, 3.2, 641.0, 643.0),)


# -- the CLI -----------------------------------------------------------------------------------------


def _prognos(*args: str) -> list[str]:
    """The ``prognos`` command line."""
    return [sys.executable, "-m", "deploy.cli", *args]


def _env(redis_url: str) -> dict[str, str]:
    return {**os.environ, "PROGNOS_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}


def test_cli_follow_prints_json_lines_and_acks(redis_url: str, key_prefix: str) -> None:
    n = _write_alerts(redis_url, key_prefix, ["pump-1", "pump-2", "pump-3"])
    cmd = _prognos(
        "alerts", "follow", "--group", "cli", "--consumer", "c1", "--from", "earliest",
        "--key-prefix", key_prefix, "--json", "--count", str(n - 1), "--timeout", "30",
    )  # fmt: skip
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=_env(redis_url), timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == n - 1
    assert all(AlertEvent.from_dict(line).device_id.startswith("pump-") for line in lines)
    info = _group(redis_url, key_prefix, "cli")
    assert info["pending_entries"] == 0 and info["entries-read"] == n - 1

    # Run again: the rest, then the timeout ends it (exit 1: fewer than --count arrived).
    result = subprocess.run(
        [*cmd[: -4], "--count", "5", "--timeout", "2"],
        capture_output=True, text=True, env=_env(redis_url), timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert "1 of 5" in result.stderr


def test_cli_tail_prints_a_line_per_alert(redis_url: str, key_prefix: str) -> None:
    cmd = _prognos("alerts", "tail", "--key-prefix", key_prefix, "--count", "2", "--timeout", "30")
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(redis_url),
        cwd=ROOT,
    )
    try:
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until it has subscribed
            if client.pubsub_numsub(Keys(key_prefix).severity_channel("warning"))[0][1]:
                break
            time.sleep(0.1)
        client.close()
        _write_alerts(redis_url, key_prefix, ["pump-9"])
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and all("pump-9" in line for line in lines)
    assert "opened" in lines[0] and "warning" in lines[0] and "s2__mean" in lines[0]


def test_cli_reports_an_unreachable_redis(tmp_path: Path) -> None:
    from deploy.stack import free_port

    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        _prognos("alerts", "follow", "--group", "g", "--timeout", "5"),
        capture_output=True, text=True, env=_env(url), timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr and "user:***@127.0.0.1" in result.stderr
    assert "prognos stack up" in result.stderr and "PROGNOS_REDIS_URL" in result.stderr


def test_a_group_whose_unread_alerts_were_trimmed_while_away_is_told_how_many(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The stream's length bound trims the oldest entries whether a group read them or
    not: a group back after the bound passed it hears what it lost (trimmed entries it had
    read are no loss)."""
    config = FollowConfig(
        redis_url, group="away", consumer="a", prefix=key_prefix, start_from="earliest"
    )
    _write_alerts(redis_url, key_prefix, ["pump-1", "pump-2"])  # 4 entries
    with StreamSubscriber(config) as first:
        _consume(first, 4, lambda d: d.ack())
    client = redis.Redis.from_url(redis_url)
    caplog.set_level("WARNING", logger="stream.subscribe")
    try:
        _write_alerts(redis_url, key_prefix, ["pump-3"], first=5)  # 2 more, unread
        client.xtrim(Keys(key_prefix).alerts, maxlen=2, approximate=False)  # the read 4 go
        with StreamSubscriber(config) as again:
            again.open()
        assert "trimmed before it read them" not in caplog.text
        _write_alerts(redis_url, key_prefix, ["pump-4"], first=9)  # 2 more
        client.xtrim(Keys(key_prefix).alerts, maxlen=1, approximate=False)  # 3 unread go
        back = StreamSubscriber(config)
        back.open()
        back.close()
    finally:
        client.close()
    said = [r.getMessage() for r in caplog.records if "trimmed before it read" in r.getMessage()]
    assert len(said) == 1 and "away" in said[0] and ": 3 alerts written" in said[0], said
    assert "--stream-maxlen" in said[0]

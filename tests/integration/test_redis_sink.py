"""The Redis sink against a real redis-server: idempotent, pipelined, complete."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import redis

from stream.alerts import AlertPolicy, ScoredWindow
from stream.contract import Keys, TopFeature
from stream.sink import RedisAlertSink

W = 60_000
POLICY = AlertPolicy(threshold=0.5, hysteresis=0.1, resolve_windows=2, cooldown_windows=3)


def _windows(device: str, risks: list[float], first: int = 0) -> list[ScoredWindow]:
    top = (TopFeature("s2__mean", 643.1, 3.2, 641.0, 643.0),)
    return [
        ScoredWindow(
            device, (first + i) * W, (first + i + 1) * W, r, "v1", "CPUExecutionProvider", top
        )
        for i, r in enumerate(risks)
    ]


def _events(client: Any, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(fields[b"event"]) for _, fields in client.xrange(Keys(prefix).alerts)]


def test_a_replayed_batch_writes_nothing_twice(redis_url: str, key_prefix: str) -> None:
    sink = RedisAlertSink(redis_url, POLICY, W, prefix=key_prefix)
    batch = _windows("pump-1", [0.2, 0.7, 0.8, 0.2, 0.1]) + _windows("pump-2", [0.9, 0.95])
    first = sink.write(batch)
    again = sink.write(batch)  # foreachBatch replays the batch after a crash
    client = redis.Redis.from_url(redis_url)
    try:
        events = _events(client, key_prefix)
        assert first.events == 3 and again.events == 0
        assert first.skipped_devices == 0 and again.skipped_devices == 2  # seen as a replay
        # Redis round trips are part of the sink's time, and not all of it (the policy).
        assert 0 < first.redis_seconds < first.seconds
        assert [(e["device_id"], e["kind"]) for e in events] == [
            ("pump-1", "opened"),
            ("pump-1", "resolved"),
            ("pump-2", "opened"),
        ]
        assert len({e["event_id"] for e in events}) == len(events)
        assert float(client.hget(Keys(key_prefix).risk, "pump-1")) == 0.1
        assert float(client.hget(Keys(key_prefix).risk, "pump-2")) == 0.95
        assert client.smembers(Keys(key_prefix).open) == {b"pump-2"}
        fleet = {k.decode(): v.decode() for k, v in client.hgetall(Keys(key_prefix).fleet).items()}
        assert (
            fleet["devices"] == "2"
            and fleet["open_alerts"] == "1"
            and fleet["max_risk_device"] == "pump-2"
        )
        assert events[0]["top_features"][0]["name"] == "s2__mean"
    finally:
        client.close()
        sink.close()


def test_windows_split_across_batches_give_the_events_of_one_batch(
    redis_url: str, key_prefix: str
) -> None:
    risks = [0.1, 0.6, 0.7, 0.95, 0.3, 0.2, 0.1, 0.8, 0.9, 0.9, 0.9]
    whole = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:a")
    whole.write(_windows("d", risks))
    split = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:b")
    for i in range(0, len(risks), 3):
        chunk = _windows("d", risks[i : i + 3], first=i)
        split.write(chunk)
        split.write(chunk)
    client = redis.Redis.from_url(redis_url)
    try:
        a = [e["event_id"] for e in _events(client, f"{key_prefix}:a")]
        b = [e["event_id"] for e in _events(client, f"{key_prefix}:b")]
        assert a == b and len(a) >= 3
    finally:
        client.close()
        whole.close()
        split.close()


def test_alerts_are_published_per_severity_and_device(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    keys = Keys(key_prefix)
    pubsub.psubscribe(keys.severity_channel("*"), keys.device_channel_pattern("*"))
    received: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + 10
    confirmed = 0
    while confirmed < 2 and time.monotonic() < deadline:  # the psubscribe confirmations
        confirmed += pubsub.get_message(timeout=0.2) is not None

    def listen() -> None:
        while time.monotonic() < deadline and len(received) < 2:
            message = pubsub.get_message(timeout=0.2)
            if message and message["type"] == "pmessage":
                received.append((message["channel"].decode(), json.loads(message["data"])))

    thread = threading.Thread(target=listen)
    thread.start()
    sink = RedisAlertSink(redis_url, POLICY, W, prefix=key_prefix)
    sink.write(_windows("pump-7", [0.95]))
    thread.join()
    pubsub.close()
    client.close()
    sink.close()
    channels = sorted(c for c, _ in received)
    assert channels == [
        Keys(key_prefix).device_channel("pump-7"),
        Keys(key_prefix).severity_channel("critical"),
    ]
    assert all(e["kind"] == "opened" and e["risk"] == 0.95 for _, e in received)


def test_a_crash_part_way_through_a_batch_duplicates_nothing(
    redis_url: str, key_prefix: str
) -> None:
    """Some devices of a batch were written when the job died; the replayed batch adds the rest."""
    batch = (
        _windows("a", [0.9, 0.2, 0.1])
        + _windows("b", [0.6, 0.7])
        + _windows("c", [0.95])
        + _windows("d", [0.1])
    )
    golden = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:golden")
    golden.write(batch)
    crashed = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:crashed")
    crashed.write([w for w in batch if w.device_id in ("a", "c")])  # what got through
    crashed.write(batch)  # Spark replays the whole batch after the restart
    client = redis.Redis.from_url(redis_url)
    try:
        want = sorted(
            json.dumps(e, sort_keys=True) for e in _events(client, f"{key_prefix}:golden")
        )
        got = sorted(
            json.dumps(e, sort_keys=True) for e in _events(client, f"{key_prefix}:crashed")
        )
        assert got == want and len(want) == 4
        assert client.hgetall(Keys(f"{key_prefix}:golden").risk) == client.hgetall(
            Keys(f"{key_prefix}:crashed").risk
        )
    finally:
        client.close()
        golden.close()
        crashed.close()


def _fleet(client: Any, prefix: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(Keys(prefix).fleet).items()}


def _hgetall_calls(client: Any) -> int:
    return int(client.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0))


def test_the_fleet_summary_does_not_read_the_whole_risk_hash_each_batch(
    redis_url: str, key_prefix: str
) -> None:
    """Highest risk and count at risk come from the rank (a sorted set), not an HGETALL of
    every device's risk per batch."""
    sink = RedisAlertSink(redis_url, POLICY, W, prefix=key_prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        sink.write(_windows("a", [0.2]) + _windows("b", [0.7]) + _windows("c", [0.4]))
        before = _hgetall_calls(client)
        sink.write(_windows("a", [0.8], first=1) + _windows("c", [0.1], first=1))
        assert _hgetall_calls(client) == before
        fleet = _fleet(client, key_prefix)
        assert fleet["devices"] == "3" and fleet["at_risk"] == "2"
        assert fleet["max_risk_device"] == "a" and float(fleet["max_risk"]) == 0.8
        ranked = client.zrange(Keys(key_prefix).risk_rank, 0, -1, withscores=True)
        assert ranked == [(b"c", 0.1), (b"b", 0.7), (b"a", 0.8)]
    finally:
        client.close()
        sink.close()


def test_a_missing_rank_is_rebuilt_from_the_risk_hash(redis_url: str, key_prefix: str) -> None:
    """Data written before the rank existed (or a rank lost): the summary is still right."""
    sink = RedisAlertSink(redis_url, POLICY, W, prefix=key_prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        sink.write(_windows("a", [0.9]) + _windows("b", [0.3]))
        client.delete(Keys(key_prefix).risk_rank)
        sink.write(_windows("c", [0.6]))
        fleet = _fleet(client, key_prefix)
        assert fleet["devices"] == "3" and fleet["at_risk"] == "2"
        assert fleet["max_risk_device"] == "a" and float(fleet["max_risk"]) == 0.9
        assert client.zcard(Keys(key_prefix).risk_rank) == 3
    finally:
        client.close()
        sink.close()


def test_each_device_keeps_a_bounded_risk_history_and_alert_lifecycle_written_once(
    redis_url: str, key_prefix: str
) -> None:
    from stream.contract import HISTORY_LENGTH, LIFECYCLE_LENGTH, AlertEvent, parse_history

    sink = RedisAlertSink(redis_url, POLICY, W, prefix=key_prefix)
    keys = Keys(key_prefix)
    first = _windows("pump-1", [0.2, 0.7, 0.8, 0.2, 0.1])
    sink.write(first)
    sink.write(first)  # a replay: nothing appended twice
    second = _windows("pump-1", [0.6, 0.3], first=5)
    sink.write(second)
    client = redis.Redis.from_url(redis_url)
    try:
        history = parse_history(client.lrange(keys.history("pump-1"), 0, -1))
        assert history == [(w.window_end_ms, w.risk) for w in first + second]
        lifecycle = [
            AlertEvent.from_json(e) for e in client.lrange(keys.lifecycle("pump-1"), 0, -1)
        ]
        assert [e.kind for e in lifecycle] == ["opened", "resolved"]  # the second alert cools down
        assert [e.event_id for e in lifecycle] == [
            e["event_id"] for e in _events(client, key_prefix)
        ]
        # A long run keeps the last HISTORY_LENGTH windows and LIFECYCLE_LENGTH events only.
        risks = [0.9, 0.1, 0.1, 0.1, 0.1] * ((HISTORY_LENGTH + 600) // 5)
        sink.write(_windows("pump-2", risks))
        kept = parse_history(client.lrange(keys.history("pump-2"), 0, -1))
        assert len(kept) == HISTORY_LENGTH
        assert kept[-1] == (len(risks) * W, 0.1)
        assert client.llen(keys.lifecycle("pump-2")) == LIFECYCLE_LENGTH
    finally:
        client.close()
        sink.close()


def _dump(client: Any, prefix: str, devices: list[str]) -> dict[str, Any]:
    """Everything the sink wrote under ``prefix`` but the fleet summary's time."""
    keys = Keys(prefix)
    return {
        "risk": client.hgetall(keys.risk),
        "rank": client.zrange(keys.risk_rank, 0, -1, withscores=True),
        "open": client.smembers(keys.open),
        "events": sorted(json.dumps(e, sort_keys=True) for e in _events(client, prefix)),
        "devices": {
            d: (
                client.hgetall(keys.device(d)),
                client.lrange(keys.history(d), 0, -1),
                client.lrange(keys.lifecycle(d), 0, -1),
            )
            for d in devices
        },
    }


def test_a_batch_in_many_script_calls_writes_what_one_device_at_a_time_writes(
    redis_url: str, key_prefix: str, monkeypatch: Any
) -> None:
    """The sink applies a batch in chunks of devices, one Lua call a chunk: the chunks'
    edges, ids JSON must escape and a device with many windows change nothing."""
    import stream.sink

    odd = ['pump "7"', "pompe-é-1", "泵-2", "back\\slash", "{brace}", "sp ace", "emoji-😀"]
    devices = odd + [f"pump-{i:04d}" for i in range(60)]
    batch = [
        w
        for i, d in enumerate(devices)
        for w in _windows(d, [0.2, 0.7, 0.95, 0.3, 0.1, 0.6][: 1 + i % 6])
    ] + _windows("long", [0.9, 0.1, 0.1] * 300)  # 900 windows: history slices of 500
    one = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:one")
    chunked = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:chunked")
    client = redis.Redis.from_url(redis_url)
    try:
        for d in [*devices, "long"]:  # one device a write: one chunk of one
            one.write([w for w in batch if w.device_id == d])
        monkeypatch.setattr(stream.sink, "CHUNK_DEVICES", 7)
        monkeypatch.setattr(stream.sink, "CHUNK_ITEMS", 25)
        written = chunked.write(batch)
        assert written.devices == len(devices) + 1 and written.skipped_devices == 0
        assert written.events > 100
        want = _dump(client, f"{key_prefix}:one", [*devices, "long"])
        assert _dump(client, f"{key_prefix}:chunked", [*devices, "long"]) == want
        assert set(want["risk"]) == {d.encode() for d in [*devices, "long"]}
        again = chunked.write(batch)  # a replay, read in chunks too
        assert again.skipped_devices == len(devices) + 1 and again.events == 0
        # Half the devices written when the job died: the replay writes the other half.
        half = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:half")
        half.write([w for w in batch if w.device_id in devices[::2]])
        rest = half.write(batch)
        assert 0 < rest.skipped_devices < len(devices) + 1
        assert _dump(client, f"{key_prefix}:half", [*devices, "long"]) == want
        half.close()
    finally:
        client.close()
        one.close()
        chunked.close()


def test_a_batch_that_fails_part_way_through_building_is_completed_by_its_replay(
    redis_url: str, key_prefix: str, monkeypatch: Any
) -> None:
    """Chunks go to Redis as they are built: an error while building a later chunk leaves
    the earlier chunks' devices written (each whole), the sink's next write works, and
    the replayed batch writes the rest, as a crash part-way through a batch does."""
    import stream.sink

    devices = [f"pump-{i:02d}" for i in range(12)]
    batch = [w for i, d in enumerate(devices) for w in _windows(d, [0.9, 0.2, 0.6][: 1 + i % 3])]
    golden = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:golden")
    failing = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:failing")
    client = redis.Redis.from_url(redis_url)
    real_step = stream.sink.step

    def step_failing_at_pump_09(*args: Any, **kwargs: Any) -> Any:
        if args[2].device_id == "pump-09":
            raise RuntimeError("policy bug")
        return real_step(*args, **kwargs)

    try:
        golden.write(batch)
        monkeypatch.setattr(stream.sink, "CHUNK_DEVICES", 4)
        monkeypatch.setattr(stream.sink, "step", step_failing_at_pump_09)
        try:
            failing.write(batch)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the policy's error was not raised")
        written = set(client.hkeys(Keys(f"{key_prefix}:failing").risk))
        assert written == {d.encode() for d in devices[:8]}  # two chunks of four sent
        monkeypatch.setattr(stream.sink, "step", real_step)
        replay = failing.write(batch)  # the same sink: its connection is usable
        assert replay.skipped_devices == 8 and replay.devices == 12
        assert _dump(client, f"{key_prefix}:failing", devices) == _dump(
            client, f"{key_prefix}:golden", devices
        )
    finally:
        client.close()
        golden.close()
        failing.close()


def test_a_batch_after_redis_lost_its_script_cache_is_written(
    redis_url: str, key_prefix: str
) -> None:
    """A restarted Redis has no scripts cached: the sink loads its script each batch."""
    sink = RedisAlertSink(redis_url, POLICY, W, prefix=key_prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        sink.write(_windows("a", [0.9]))
        client.script_flush()
        second = sink.write(_windows("a", [0.95], first=1) + _windows("b", [0.1], first=1))
        assert second.devices == 2 and second.skipped_devices == 0
        assert client.hgetall(Keys(key_prefix).risk) == {b"a": b"0.95", b"b": b"0.1"}
    finally:
        client.close()
        sink.close()


def test_a_slow_batch_with_a_health_check_interval_in_the_url_is_written(
    redis_url: str, key_prefix: str, monkeypatch: Any
) -> None:
    """A URL's health_check_interval makes redis-py PING a connection idle for longer: the
    chunks' replies are read at the end, so the sink must not let it read one as the PING's
    reply while a slow batch is still being built."""
    import stream.sink

    devices = [f"pump-{i:02d}" for i in range(6)]
    batch = [w for d in devices for w in _windows(d, [0.9, 0.2])]
    golden = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:golden")
    checked = RedisAlertSink(
        f"{redis_url}?health_check_interval=1", POLICY, W, prefix=f"{key_prefix}:checked"
    )
    client = redis.Redis.from_url(redis_url)
    real_step = stream.sink.step
    slept: list[str] = []

    def slow_step(*args: Any, **kwargs: Any) -> Any:
        device = args[2].device_id
        if device == "pump-04" and not slept:  # after two chunks were sent
            slept.append(device)
            time.sleep(1.3)
        return real_step(*args, **kwargs)

    try:
        golden.write(batch)
        monkeypatch.setattr(stream.sink, "CHUNK_DEVICES", 2)
        monkeypatch.setattr(stream.sink, "step", slow_step)
        written = checked.write(batch)
        assert slept and written.devices == 6 and written.skipped_devices == 0
        assert _dump(client, f"{key_prefix}:checked", devices) == _dump(
            client, f"{key_prefix}:golden", devices
        )
    finally:
        client.close()
        golden.close()
        checked.close()


def test_a_window_whose_risk_is_not_a_number_is_left_out_and_named(
    redis_url: str, key_prefix: str, caplog: Any
) -> None:
    """A model's NaN or infinite risk: written, a NaN as a device's latest risk failed the
    batch and every replay of it (the sorted set of risks refuses NaN), an infinite one
    opened an alert. The sink leaves such windows out, says so, and writes the rest as if
    they were not there."""
    batch = _windows("pump-1", [0.2, 0.7, float("nan"), 0.8, 0.2, float("nan")]) + _windows(
        "pump-2", [float("inf"), 0.9]
    )
    finite = [w for w in batch if w.risk == w.risk and w.risk != float("inf")]
    golden = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:golden")
    want = golden.write(finite)
    sink = RedisAlertSink(redis_url, POLICY, W, prefix=f"{key_prefix}:nan")
    with caplog.at_level("WARNING", logger="stream.sink"):
        result = sink.write(batch)
    again = sink.write(batch)  # the replay after a crash
    client = redis.Redis.from_url(redis_url)
    try:
        assert result.not_finite == 3 and result.windows == len(finite) == 5
        assert result.events == want.events == 2  # pump-1's and pump-2's alerts opened
        assert again.events == 0 and again.skipped_devices == 2
        assert _dump(client, f"{key_prefix}:nan", ["pump-1", "pump-2"]) == _dump(
            client, f"{key_prefix}:golden", ["pump-1", "pump-2"]
        )
        warned = [r.getMessage() for r in caplog.records if "not a finite number" in r.getMessage()]
        assert warned and "3 scored windows" in warned[0] and "pump-1" in warned[0]
        assert "prognos model rollback" in warned[0]
    finally:
        client.close()
        golden.close()
        sink.close()

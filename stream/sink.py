"""The Redis sink: alert stream, pub/sub channels, latest risk per device, fleet summary.

What it writes, and under which names, is the Redis output contract
(:mod:`stream.contract`); this module decides when and how.

Durability: Redis acknowledges a write before it is on disk unless it runs with
``appendfsync always``; with ``wait_replicas`` the sink also waits (``WAIT``) until that many
replicas have the batch's writes before the batch counts as written, so a machine crash of
the primary loses nothing Spark committed. Either costs time per batch (docs/performance.md).

Idempotence: Spark's ``foreachBatch`` is at-least-once, so a batch can be written twice
after a crash. Each device's windows are applied in event-time order and its state records
the last window applied; the writes of one device for one batch run in one Lua script that
first checks that state is still what the batch read (compare-and-set); one call of the
script applies a chunk of devices (:data:`CHUNK_DEVICES`), each checked on its own. A replayed batch
therefore finds every window already applied and writes nothing again, and a crash part-way
through a batch leaves each device either fully written or not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from stream.alerts import AlertPolicy, DeviceState, LazyFeatures, ScoredWindow, step
from stream.contract import (
    DEFAULT_PREFIX,
    HISTORY_LENGTH,
    LIFECYCLE_LENGTH,
    AlertEvent,
    FleetSummary,
    Keys,
    history_entry,
)
from stream.errors import SinkError
from stream.redis_config import redact_url

if TYPE_CHECKING:
    import pyarrow as pa

    from stream.contract import TopFeature
    from stream.scoring import TopFeatureFormatter

logger = logging.getLogger(__name__)

# One call applies a chunk of devices (one Lua call a device was the sink's largest cost:
# redis-py packing some 30 arguments a device). Each device is applied on its own, with
# its own compare-and-set, as before.
# KEYS: alert stream, risk hash, open set, risk rank (sorted set), then per device: its
#       hash, its risk history (list), its alert lifecycle (list)
# ARGV: the devices (JSON, below), max stream length, history length, lifecycle length
# Each device: [device, expected last window, new last window, state json, risk,
#       window end, model version, provider, open flag, coverage, the device's channel,
#       [history entries], [[event json, event id, alert id, kind, severity,
#       severity channel], ...]]; every value a string (JSON numbers would come back
#       as Lua doubles, printed differently).
# Returns one character a device: 1 applied, 0 its state had moved (already applied).
# The fields are stream.contract's DEVICE_FIELDS and STREAM_FIELDS.
_APPLY = """
local devices = cjson.decode(ARGV[1])
local maxlen, hlen, llen = ARGV[2], -tonumber(ARGV[3]), -tonumber(ARGV[4])
local out = {}
for d = 1, #devices do
  local a = devices[d]
  local k = 4 + (d - 1) * 3
  local cur = redis.call('HGET', KEYS[k + 1], 'last_window_end')
  if (cur or '') ~= a[2] then
    out[d] = '0'
  else
    out[d] = '1'
    redis.call('HSET', KEYS[k + 1], 'last_window_end', a[3], 'state', a[4], 'risk', a[5],
               'window_end', a[6], 'model_version', a[7], 'provider', a[8], 'coverage', a[10])
    redis.call('HSET', KEYS[2], a[1], a[5])
    redis.call('ZADD', KEYS[4], a[5], a[1])
    if a[9] == '1' then redis.call('SADD', KEYS[3], a[1]) else redis.call('SREM', KEYS[3], a[1]) end
    local h = a[12]
    if #h > 0 then
      for i = 1, #h, 500 do  -- in slices: unpack's stack is bounded
        redis.call('RPUSH', KEYS[k + 2], unpack(h, i, math.min(i + 499, #h)))
      end
      redis.call('LTRIM', KEYS[k + 2], hlen, -1)
    end
    local events = a[13]
    for i = 1, #events do
      local e = events[i]
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'event', e[1], 'event_id', e[2],
                 'alert_id', e[3], 'kind', e[4], 'device_id', a[1], 'severity', e[5],
                 'risk', a[5])
      redis.call('RPUSH', KEYS[k + 3], e[1])
      redis.call('PUBLISH', e[6], e[1])
      redis.call('PUBLISH', a[11], e[1])
    end
    if #events > 0 then redis.call('LTRIM', KEYS[k + 3], llen, -1) end
  end
end
return table.concat(out)
"""

# The state and last applied window of each device of a chunk, in one call (KEYS: the
# devices' hashes), as one JSON array (state, last window, state, ...; a missing field is
# false): one string to parse, not a reply of two values a device.
_READ = """
local out = {}
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'state', 'last_window_end')
  out[2 * i - 1] = v[1]
  out[2 * i] = v[2]
end
return cjson.encode(out)
"""

_APPLIED = ord("1")  # a device's character in _APPLY's reply

#: Devices per Lua call: Redis runs a script to its end before any other command, so a
#: chunk bounds how long a reader (a subscriber, the dashboard) can wait on the sink.
CHUNK_DEVICES = 500
#: ... and a chunk closes early past this many history entries and events (a replay of
#: recorded data brings many windows a device).
CHUNK_ITEMS = 20_000


class _ReplicasBehind(Exception):
    """Fewer replicas than asked for acknowledged a batch's writes in time."""


@dataclass(frozen=True)
class SinkResult:
    """What one batch wrote."""

    windows: int
    events: int
    devices: int
    skipped_devices: int
    seconds: float
    #: Of ``seconds``, the time in Redis round trips (the pipelines' ``execute``, the fleet
    #: summary's writes); the rest is the alert policy and building the commands.
    redis_seconds: float = 0.0
    #: The events written, by ``(kind, severity)``; a replay's events are not counted.
    event_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: The fleet summary written after the batch.
    fleet: FleetSummary | None = None
    #: Windows left out because their risk is not a finite number (NaN, infinity).
    not_finite: int = 0


class _Sender:
    """Sends each chunk's call of :data:`_APPLY` as soon as it is built, on one connection,
    and reads the replies after the last: Redis runs a chunk while the sink builds the next
    (a pipeline sends nothing until it is executed, so Redis waited for the whole batch to
    be built, and the sink for Redis)."""

    def __init__(self, client: Any, shared: list[str], tail: list[str]) -> None:
        self.seconds = 0.0  # sending and waiting for the replies
        self._shared = shared  # the script's keys before the chunk's devices'
        self._tail = tail  # its arguments after the chunk's JSON
        self._pool = client.connection_pool
        self._sha = client.script_load(_APPLY)  # the script cache is empty after a restart
        self._conn = self._pool.get_connection()  # connected and checked
        self._pending = 0
        self._broken = False

    def send(self, chunk: list[list[Any]], names: list[str]) -> None:
        """One call of the script for ``chunk`` (devices' entries) whose keys are ``names``."""
        import redis

        keys = self._shared + names
        data = json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))
        t0 = time.perf_counter()
        try:
            # No health check: with a health_check_interval (the URL may set one) redis-py
            # would PING once the interval passed since the last reply read, and read an
            # earlier chunk's reply as the PING's.
            self._conn.send_command(
                "EVALSHA", self._sha, len(keys), *keys, data, *self._tail, check_health=False
            )
        except (redis.ConnectionError, redis.TimeoutError):
            self._broken = True
            raise
        self._pending += 1
        self.seconds += time.perf_counter() - t0

    def replies(self) -> list[bytes]:
        """Every chunk's reply, in the order sent; the first error reply raised after all
        are read."""
        import redis

        t0 = time.perf_counter()
        out: list[bytes] = []
        error: redis.ResponseError | None = None
        try:
            while self._pending:
                try:
                    out.append(self._conn.read_response())
                except redis.ResponseError as exc:
                    error = error or exc
                self._pending -= 1
        except (redis.ConnectionError, redis.TimeoutError):
            self._broken = True
            raise
        finally:
            self.seconds += time.perf_counter() - t0
        if error is not None:
            raise error
        return out

    def close(self) -> None:
        """Give the connection back. After an error of the sink's own (the policy's, say)
        the chunks already sent are waited for, so what the batch wrote does not depend on
        timing; a connection that failed, or whose replies could not all be read, is
        closed first."""
        if self._pending and not self._broken:
            # An error reply or a failure: a failure leaves it broken or with replies unread.
            with contextlib.suppress(Exception):
                self.replies()
        if self._broken or self._pending:
            self._conn.disconnect()
        self._pool.release(self._conn)


class RedisAlertSink:
    """Applies the alert policy to scored windows and writes the results to Redis.

    Contract: :meth:`write` may be called again with the same windows (a replayed batch);
    the second call writes nothing. Windows of one device must arrive in event-time order
    across calls (Spark's append-mode windows do). A window whose risk is not a finite
    number is left out, with a warning naming it (:attr:`SinkResult.not_finite`). Raises
    :class:`SinkError` (retriable) when Redis cannot be reached, or (``wait_replicas``)
    fewer replicas acknowledged the writes within ``wait_timeout_ms``, after ``retries``
    attempts.
    """

    def __init__(
        self,
        redis_url: str,
        policy: AlertPolicy,
        window_ms: int,
        prefix: str = DEFAULT_PREFIX,
        stream_maxlen: int = 100_000,
        retries: int = 5,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self.redis_url = redis_url
        self.policy = policy
        self.window_ms = window_ms
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.stream_maxlen = stream_maxlen
        self.retries = retries
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._client: Any = None
        self._read: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.redis_url, socket_timeout=30, socket_connect_timeout=10
            )
            self._read = self._client.register_script(_READ)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def write(self, windows: Iterable[ScoredWindow]) -> SinkResult:
        """Apply and write a batch of scored windows; retried on connection errors."""
        import redis

        by_device: dict[str, list[ScoredWindow]] = defaultdict(list)
        not_finite: list[ScoredWindow] = []
        for w in windows:
            if math.isfinite(w.risk):
                by_device[w.device_id].append(w)
            else:
                not_finite.append(w)
        if not_finite:
            _warn_not_finite(not_finite)
        for items in by_device.values():
            items.sort(key=lambda w: w.window_end_ms)
        delay = 0.5
        for attempt in range(1, self.retries + 1):
            try:
                return replace(self._write(by_device), not_finite=len(not_finite))
            except _ReplicasBehind as exc:
                if attempt == self.retries:
                    raise SinkError(
                        f"Redis at {redact_url(self.redis_url)}: {exc} ({attempt} tries). The "
                        "batch is not committed; check the replicas (INFO replication), or "
                        "lower --redis-wait-replicas, and restart the job on its checkpoint."
                    ) from exc
                logger.warning("%s; retry %d/%d", exc, attempt, self.retries)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if attempt == self.retries:
                    raise SinkError(
                        f"Redis at {redact_url(self.redis_url)} failed {attempt} times: "
                        f"{str(exc).rstrip('.')}. The batch is "
                        "not committed; the job can be restarted on its checkpoint once Redis is back."
                    ) from exc
                logger.warning(
                    "Redis write failed (%s); retry %d/%d in %.1fs",
                    exc,
                    attempt,
                    self.retries,
                    delay,
                )
                self.close()
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")

    def _write(self, by_device: dict[str, list[ScoredWindow]]) -> SinkResult:
        started = time.perf_counter()
        client = self.client
        keys = self.keys
        devices = sorted(by_device)
        device_keys = [keys.device(d) for d in devices]
        read = client.pipeline(transaction=False)
        for i in range(0, len(devices), CHUNK_DEVICES):
            self._read(keys=device_keys[i : i + CHUNK_DEVICES], client=read)
        t0 = time.perf_counter()
        stored = [v for part in read.execute() for v in json.loads(part)]
        redis_s = time.perf_counter() - t0

        write = _Sender(
            client,
            [keys.alerts, keys.risk, keys.open, keys.risk_rank],
            [str(self.stream_maxlen), str(HISTORY_LENGTH), str(LIFECYCLE_LENGTH)],
        )
        try:
            applied_before, batch_events = self._send(
                write, devices, device_keys, stored, by_device
            )
            applied = [flag == _APPLIED for part in write.replies() for flag in part]
        finally:
            write.close()
        redis_s += write.seconds
        # Found applied when read, or by the compare-and-set (a write between read and write).
        skipped = applied_before + applied.count(False)
        counts: Counter[tuple[str, str]] = Counter(
            (e.kind, e.severity)
            for done, events in zip(applied, batch_events, strict=True)
            if done
            for e in events
        )
        if skipped:
            logger.info(
                "%d of %d devices already had this batch applied (a replayed batch, or "
                "windows this key prefix holds from an earlier run)",
                skipped,
                len(devices),
            )
        fleet_s, fleet = self._update_fleet(client)
        redis_s += fleet_s
        if self.wait_replicas:
            t0 = time.perf_counter()
            acked = int(client.wait(self.wait_replicas, self.wait_timeout_ms))
            redis_s += time.perf_counter() - t0
            if acked < self.wait_replicas:
                raise _ReplicasBehind(
                    f"{acked} of {self.wait_replicas} replicas acknowledged the batch's writes "
                    f"within {self.wait_timeout_ms} ms"
                )
        return SinkResult(
            windows=sum(len(v) for v in by_device.values()),
            events=sum(counts.values()),
            devices=len(devices),
            skipped_devices=skipped,
            seconds=time.perf_counter() - started,
            redis_seconds=redis_s,
            event_counts=dict(counts),
            fleet=fleet,
        )

    def _send(
        self,
        write: _Sender,
        devices: list[str],
        device_keys: list[str],
        stored: list[Any],
        by_device: dict[str, list[ScoredWindow]],
    ) -> tuple[int, list[list[AlertEvent]]]:
        """Step the policy through each device's windows (its state and last applied
        window as ``stored`` read them) and send what changed, in chunks. Returns how many
        devices had everything applied before (a replay) and the events of each device
        sent, in the order sent."""
        keys = self.keys
        batch_events: list[list[AlertEvent]] = []
        chunk: list[list[Any]] = []
        names: list[str] = []
        items = 0
        applied_before = 0
        for i, device in enumerate(devices):
            state_json, last = stored[2 * i], stored[2 * i + 1]
            state = DeviceState.from_json(state_json)
            before = last or ""
            events: list[AlertEvent] = []
            windows = by_device[device]
            for window in windows:
                state, produced = step(self.policy, state, window, self.window_ms)
                if produced:
                    events.extend(produced)
            latest = windows[-1]
            last_window = str(state.last_window_end_ms)
            if last_window == before and not events:
                applied_before += 1
                continue  # everything in this batch was applied before (a replay)
            # The windows this batch applies for the first time (a replay's are older).
            if before:
                done = int(before)
                fresh = [w for w in windows if w.window_end_ms > done]
            else:
                fresh = windows
            chunk.append(
                [
                    device,
                    before,
                    last_window,
                    state.to_json(),
                    repr(float(latest.risk)),
                    str(latest.window_end_ms),
                    latest.model_version,
                    latest.provider,
                    "1" if state.alert_id is not None else "0",
                    repr(round(float(latest.coverage), 3)),
                    keys.device_channel(device),
                    [history_entry(w.window_end_ms, w.risk) for w in fresh],
                    [
                        [
                            e.to_json(),
                            e.event_id,
                            e.alert_id,
                            e.kind,
                            e.severity,
                            keys.severity_channel(e.severity),
                        ]
                        for e in events
                    ],
                ]
            )
            names.extend((device_keys[i], keys.history(device), keys.lifecycle(device)))
            batch_events.append(events)
            items += len(fresh) + len(events)
            if len(chunk) >= CHUNK_DEVICES or items >= CHUNK_ITEMS:
                write.send(chunk, names)
                chunk, names, items = [], [], 0
        if chunk:
            write.send(chunk, names)
        return applied_before, batch_events

    def _update_fleet(self, client: Any) -> tuple[float, FleetSummary]:
        """Rewrite the fleet summary; returns the seconds spent in Redis round trips and it.

        The highest risk and the count at risk come from ``P:risk:rank`` in O(log n). A
        rank that does not hold every device of ``P:risk`` (written by an older version,
        or lost) is rebuilt from the hash once.
        """
        risk, rank = self.keys.risk, self.keys.risk_rank

        def read() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.hlen(risk)
            pipe.scard(self.keys.open)
            pipe.zcard(rank)
            pipe.zrevrange(rank, 0, 0, withscores=True)
            pipe.zcount(rank, self.policy.threshold, "+inf")
            return list(pipe.execute())

        t0 = time.perf_counter()
        count, open_alerts, ranked, top, high = read()
        if ranked != count:
            logger.info("rebuilding %s from %s (%d of %d devices)", rank, risk, ranked, count)
            self._rebuild_rank(client, risk, rank)
            count, open_alerts, ranked, top, high = read()
        redis_s = time.perf_counter() - t0
        summary = FleetSummary(devices=count, open_alerts=open_alerts)
        if top:
            device, score = top[0]
            summary.max_risk, summary.max_risk_device = float(score), device.decode()
            summary.at_risk = high
        summary.updated_ms = int(time.time() * 1000)
        t0 = time.perf_counter()
        client.hset(self.keys.fleet, mapping=summary.to_hash())
        return redis_s + time.perf_counter() - t0, summary

    @staticmethod
    def _rebuild_rank(client: Any, risk: str, rank: str) -> None:
        """``rank`` anew from the ``risk`` hash (read once, in slices)."""
        pipe = client.pipeline(transaction=True)
        pipe.delete(rank)
        cursor = 0
        while True:
            cursor, part = client.hscan(risk, cursor, count=10_000)
            if part:
                pipe.zadd(rank, {k: float(v) for k, v in part.items()})
            if cursor == 0:
                break
        pipe.execute()


def _warn_not_finite(windows: list[ScoredWindow]) -> None:
    """Name the windows the sink leaves out for a risk that is not a number, and the fix.

    Written, a device's NaN as its latest risk failed the batch (Redis's sorted set of
    risks refuses it) after the risk hash held it, so every replay failed again in the
    fleet summary's rebuild of that set; an infinite risk opened an alert, and either went
    into the alert stream and history as JSON that is not JSON (``NaN``, ``Infinity``)."""
    first = windows[0]
    logger.warning(
        "%d scored windows have a risk that is not a finite number (%s for %s, window "
        "ending %d, model %s); they are left out of the alerts and the device's risk. The "
        "model gives NaN or infinity for these inputs: check it on the recording "
        "(prognos evaluate), or switch back (prognos model rollback)",
        len(windows),
        first.risk,
        first.device_id,
        first.window_end_ms,
        first.model_version,
    )


def windows_from_arrow(table: pa.Table, formatter: TopFeatureFormatter) -> list[ScoredWindow]:
    """Scored windows from the job's rows (:func:`stream.scoring.output_schema`, unpacked)
    as an Arrow table (``toArrow``).

    Columns come to Python once each, not a Spark Row a window. Each window's top
    features are described by ``formatter`` only when used, that is when the window raises
    an alert event.
    """
    from functools import partial

    top = [table.column(n).combine_chunks() for n in ("top_index", "top_value", "top_z")]

    def describe(i: int) -> tuple[TopFeature, ...]:
        return formatter.describe(*(c[i].as_py() for c in top))

    columns = (
        table.column(n).to_pylist()
        for n in (
            "device_id",
            "window_start_ms",
            "window_end_ms",
            "risk",
            "model_version",
            "provider",
            "coverage",
        )
    )
    return [
        ScoredWindow(
            device_id=device,
            window_start_ms=start,
            window_end_ms=end,
            risk=float(risk),
            model_version=version,
            provider=provider,
            coverage=float(coverage),
            top_features=LazyFeatures(partial(describe, i)),
        )
        for i, (device, start, end, risk, version, provider, coverage) in enumerate(
            zip(*columns, strict=True)
        )
    ]

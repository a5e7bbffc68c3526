"""Subscribing to alerts: live pub/sub (``tail``) and reliable stream consumption (``follow``).

The stream job writes every alert event to Redis twice (see :mod:`stream.sink` for the key
layout): appended to the stream ``P:alerts`` and published on the channels
``P:alerts:severity:SEV`` and ``P:alerts:device:ID``. This module reads them back as typed
:class:`~stream.contract.AlertEvent` objects in one of two modes:

``tail`` (:class:`PubSubSubscriber`)
    Live view over pub/sub. Cheap and instant, but **at-most-once**: an alert published
    while the subscriber is disconnected is never seen by it. Use it for dashboards and
    terminals, never to drive actions.
``follow`` (:class:`StreamSubscriber`)
    Reliable consumption through a Redis Streams consumer group: **at-least-once**. Each
    :class:`Delivery` stays pending in the group until :meth:`Delivery.ack` is called, so an
    alert read by a consumer that crashes before acknowledging it is delivered again: to the
    same consumer name when it restarts (its own pending entries come first), or to another
    consumer of the group once it was idle for ``claim_idle_ms`` (``XAUTOCLAIM``). A consumer
    that restarts resumes after the last entry the group delivered; nothing is lost while it
    is offline (as long as the stream's ``MAXLEN`` bound does not trim unread entries; a
    group that comes back after it did is told how many, with the fix).
    Handlers must therefore be idempotent: use :attr:`AlertEvent.event_id` (stable across
    replays) to drop a duplicate.

Both implement :class:`Subscriber`. Example, reliable::

    from stream.subscribe import FollowConfig, StreamSubscriber

    config = FollowConfig(redis_url, group="ticketing", consumer="worker-1")
    with StreamSubscriber(config) as subscriber:
        for delivery in subscriber:
            open_ticket(delivery.alert)   # idempotent on delivery.alert.event_id
            delivery.ack()                # only after the alert was handled

Errors: :class:`RedisUnreachableError` (retriable) when Redis does not answer at start or
stays unreachable longer than ``reconnect_timeout_s``; :class:`AlertFormatError` for an
event that is not a valid alert (it names the field).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from stream.contract import DEFAULT_PREFIX, SEVERITIES, AlertEvent, Keys, Severity
from stream.errors import AlertFormatError, ConfigError, RedisUnreachableError
from stream.redis_config import NO_ANSWER, explain_redis_error, redact_url

logger = logging.getLogger(__name__)

__all__ = [
    "SEVERITIES",
    "AlertEvent",
    "AlertFormatError",
    "Delivery",
    "FollowConfig",
    "PubSubSubscriber",
    "RedisUnreachableError",
    "StreamSubscriber",
    "Subscriber",
    "TailConfig",
    "follow",
    "tail",
]

StartFrom = Literal["earliest", "latest"]


def _entry_id(text: str) -> tuple[int, int]:
    """A stream entry id (``ms-seq``) as a pair that orders as Redis orders them."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def unreachable(url: str, exc: BaseException | None = None) -> RedisUnreachableError:
    """The error for a Redis that does not answer, or refuses the subscriber's credentials
    or TLS, naming the address and the fix."""
    problem = explain_redis_error(url, exc) if exc is not None else f"no answer: {NO_ANSWER}"
    return RedisUnreachableError(f"Redis at {redact_url(url)}: {problem}")


# -- the interface -----------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One alert handed to a subscriber, with the means to acknowledge it.

    Attributes:
        alert: the parsed alert.
        entry_id: the stream entry id (``follow``), ``None`` for pub/sub.
        redelivered: ``True`` when the entry was delivered before and not acknowledged
            (this consumer's own pending entries after a restart, or reclaimed from
            another consumer); handle it idempotently.
    """

    alert: AlertEvent
    entry_id: str | None = None
    redelivered: bool = False
    _ack: Callable[[], bool] | None = field(default=None, repr=False, compare=False)

    def ack(self) -> bool:
        """Acknowledge the alert as handled; call it only after handling it.

        Returns:
            ``True`` when this call acknowledged it; ``False`` when there was nothing to
            acknowledge (pub/sub, or the entry was acknowledged or reclaimed already).

        Raises:
            RedisUnreachableError: Redis did not answer; the entry stays pending and will
                be delivered again.
        """
        return self._ack() if self._ack is not None else False


@runtime_checkable
class Subscriber(Protocol):
    """A source of alert deliveries.

    Contract:

    * :meth:`open` connects (and subscribes or creates the consumer group); it raises
      :class:`RedisUnreachableError` at once when Redis does not answer, rather than hang.
      Alerts written after ``open`` returns are delivered. Iterating opens when needed.
    * Iterating yields :class:`Delivery` objects in the order Redis handed them over, each
      with a typed :class:`AlertEvent`; it blocks while none arrive and ends when :meth:`close`
      is called (from any thread or a signal handler, within about one poll interval),
      or when ``timeout_s`` given to :meth:`deliveries` has elapsed.
    * Events that are not valid alerts are logged and skipped, never yielded.
    * Connection errors while running are retried with backoff; after
      ``reconnect_timeout_s`` without Redis, :class:`RedisUnreachableError` is raised.
    * :meth:`Delivery.ack` is what makes an alert handled; implementations without
      acknowledgement (pub/sub) return ``False`` from it.
    * It is a context manager; leaving the block closes it.
    """

    def open(self) -> None: ...

    def deliveries(self, timeout_s: float | None = None) -> Iterator[Delivery]: ...

    def __iter__(self) -> Iterator[Delivery]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Subscriber: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _Base:
    """Shared mechanics: a client, a stop flag, connection retries with backoff."""

    redis_url: str
    poll_s: float
    reconnect_timeout_s: float | None

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._client: Any = None
        self._active = 0  # iterations running; they release the connection when closed
        self.skipped = 0  # events that were not valid alerts

    def _connect(self) -> Any:
        import redis

        client = redis.Redis.from_url(
            self.redis_url,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=self.poll_s + 10,
            health_check_interval=30,
        )
        try:
            client.ping()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            client.close()
            raise unreachable(self.redis_url, exc) from exc
        return client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _drop_client(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a broken connection may fail too; it is gone anyway
                logger.debug("closing the Redis client failed", exc_info=True)
            self._client = None

    def _wait_for_redis(self, exc: BaseException, since: float, attempt: int) -> None:
        """Back off after a connection error; raise once the reconnect timeout passed."""
        limit = self.reconnect_timeout_s
        if limit is not None and time.monotonic() - since > limit:
            raise unreachable(self.redis_url, exc) from exc
        delay = min(0.5 * 2 ** min(attempt, 4), 8.0)
        logger.warning("Redis connection lost (%s); reconnecting in %.1fs", exc, delay)
        self._release()
        self._stop.wait(delay)

    def _release(self) -> None:
        self._drop_client()

    def close(self) -> None:
        """Stop iterating (within one poll interval) and release the connection.

        Safe to call from another thread or a signal handler: a running iteration ends
        and releases the connection itself.
        """
        self._stop.set()
        if self._active == 0:
            self._release()

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def __iter__(self) -> Iterator[Delivery]:
        return self.deliveries()

    def deliveries(self, timeout_s: float | None = None) -> Iterator[Delivery]:
        raise NotImplementedError

    def _parse(self, text: str | None, where: str) -> AlertEvent | None:
        if not text:
            self.skipped += 1
            logger.error("%s has no alert event; skipped", where)
            return None
        try:
            return AlertEvent.from_json(text)
        except AlertFormatError as exc:
            self.skipped += 1
            logger.error("%s is not a valid alert (%s); skipped", where, exc)
            return None


# -- pub/sub -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TailConfig:
    """What a live (pub/sub) subscriber listens to.

    Attributes:
        redis_url: the Redis the stream job writes to (password never shown in the repr).
        prefix: the key prefix (``PROGNOS_KEY_PREFIX``, ``prognos``).
        severities: severities to show; default both.
        device_pattern: a Redis glob over device ids (``pump-00*``); default all devices.
        poll_s: how long one wait for a message blocks (bounds the reaction to ``close``).
        reconnect_timeout_s: give up after Redis was unreachable this long (None: never).
    """

    redis_url: str = field(repr=False)
    prefix: str = DEFAULT_PREFIX
    severities: tuple[Severity, ...] = SEVERITIES
    device_pattern: str | None = None
    poll_s: float = 0.5
    reconnect_timeout_s: float | None = 300.0

    def __post_init__(self) -> None:
        bad = [s for s in self.severities if s not in SEVERITIES]
        if bad or not self.severities:
            raise ConfigError(
                f"severities {list(self.severities)!r}: choose from {list(SEVERITIES)}"
            )
        if self.device_pattern is not None and not self.device_pattern.strip():
            raise ConfigError("the device pattern is empty; give a glob such as 'pump-*'")

    def channels(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(channels to SUBSCRIBE, patterns to PSUBSCRIBE), chosen so each alert comes once.

        Every alert is published once per severity channel and once per device channel.
        Without a device pattern we subscribe to the chosen severities' channels (Redis
        filters); with one, to the matching device channels only, and filter severities
        here (:meth:`accepts`).
        """
        keys = Keys(self.prefix)
        if self.device_pattern is None:
            return tuple(keys.severity_channel(s) for s in self.severities), ()
        return (), (keys.device_channel_pattern(self.device_pattern),)

    def accepts(self, alert: AlertEvent) -> bool:
        """Whether an alert received on :meth:`channels` passes the severity filter."""
        return alert.severity in self.severities


class PubSubSubscriber(_Base):
    """Live alerts over pub/sub (at-most-once: alerts published while offline are lost).

    See :class:`Subscriber` for the contract; :meth:`Delivery.ack` is a no-op here.
    """

    def __init__(self, config: TailConfig) -> None:
        super().__init__()
        self.config = config
        self.redis_url = config.redis_url
        self.poll_s = config.poll_s
        self.reconnect_timeout_s = config.reconnect_timeout_s
        self._pubsub: Any = None

    def open(self) -> None:
        """Subscribe and wait for Redis to confirm, so alerts published after this arrive."""
        if self._pubsub is not None:
            return
        import redis

        pubsub = self.client.pubsub(ignore_subscribe_messages=False)
        channels, patterns = self.config.channels()
        try:
            if channels:
                pubsub.subscribe(*channels)
            if patterns:
                pubsub.psubscribe(*patterns)
            confirmed = 0
            deadline = time.monotonic() + 10
            while confirmed < len(channels) + len(patterns):
                message = pubsub.get_message(timeout=0.5)
                if message and message["type"] in ("subscribe", "psubscribe"):
                    confirmed += 1
                if time.monotonic() > deadline:
                    raise unreachable(self.redis_url, TimeoutError("no subscribe confirmation"))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            pubsub.close()
            raise unreachable(self.redis_url, exc) from exc
        self._pubsub = pubsub
        logger.info(
            "listening on %s (pub/sub: alerts published while disconnected are not seen)",
            ", ".join(channels + patterns),
        )

    def _release(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:
                logger.debug("closing the pub/sub connection failed", exc_info=True)
            self._pubsub = None
        self._drop_client()

    def deliveries(self, timeout_s: float | None = None) -> Iterator[Delivery]:
        """Yield deliveries until :meth:`close` or ``timeout_s`` seconds; see the contract."""
        import redis

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        lost_since: float | None = None
        attempt = 0
        self._active += 1
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    return
                try:
                    self.open()
                    wait = self.poll_s
                    if deadline is not None:
                        wait = max(0.0, min(wait, deadline - time.monotonic()))
                    message = self._pubsub.get_message(timeout=wait)
                    if lost_since is not None:
                        logger.warning(
                            "pub/sub reconnected; alerts published in the last %.0fs were missed",
                            time.monotonic() - lost_since,
                        )
                        lost_since, attempt = None, 0
                except (redis.ConnectionError, redis.TimeoutError, RedisUnreachableError) as exc:
                    lost_since = lost_since or time.monotonic()
                    self._wait_for_redis(exc, lost_since, attempt)
                    attempt += 1
                    continue
                if not message or message["type"] not in ("message", "pmessage"):
                    continue
                alert = self._parse(message["data"], f"message on {message['channel']}")
                if alert is not None and self.config.accepts(alert):
                    yield Delivery(alert)
        finally:
            self._active -= 1
            if self._stop.is_set():
                self._release()

    def __enter__(self) -> PubSubSubscriber:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        self._release()


def tail(
    redis_url: str,
    prefix: str = DEFAULT_PREFIX,
    severities: tuple[Severity, ...] = SEVERITIES,
    device_pattern: str | None = None,
    timeout_s: float | None = None,
) -> Iterator[AlertEvent]:
    """Live alerts over pub/sub, as typed :class:`AlertEvent` objects (at-most-once).

    Args:
        redis_url: the Redis the stream job writes to.
        prefix: the key prefix.
        severities: severities to yield.
        device_pattern: a Redis glob over device ids; ``None`` for all.
        timeout_s: stop after this many seconds; ``None`` runs until the generator is closed.

    Raises:
        RedisUnreachableError: Redis does not answer (at the first ``next``).
    """
    config = TailConfig(redis_url, prefix, tuple(severities), device_pattern)
    with PubSubSubscriber(config) as subscriber:
        for delivery in subscriber.deliveries(timeout_s):
            yield delivery.alert


# -- streams consumer group ------------------------------------------------------------------


@dataclass(frozen=True)
class FollowConfig:
    """One consumer of a consumer group on the alert stream ``P:alerts``.

    Attributes:
        redis_url: the Redis the stream job writes to (password never shown in the repr).
        group: consumer group name; each group gets every alert once (shared by its
            consumers).
        consumer: this consumer's name within the group; restart with the same name to
            get back its own unacknowledged entries first.
        prefix: the key prefix (``PROGNOS_KEY_PREFIX``, ``prognos``).
        start_from: where a *new* group starts: ``earliest`` (the whole stream) or
            ``latest`` (only alerts written from now on). An existing group resumes.
        batch: entries per read at most.
        poll_s: how long one read blocks (``XREADGROUP BLOCK``).
        claim_idle_ms: entries pending on another consumer for longer than this are
            reclaimed (``XAUTOCLAIM``), so alerts of a crashed consumer are not stuck.
        claim_every_s: how often to look for such entries.
        reconnect_timeout_s: give up after Redis was unreachable this long (None: never).
    """

    redis_url: str = field(repr=False)
    group: str
    consumer: str
    prefix: str = DEFAULT_PREFIX
    start_from: StartFrom = "latest"
    batch: int = 100
    poll_s: float = 1.0
    claim_idle_ms: int = 60_000
    claim_every_s: float = 5.0
    reconnect_timeout_s: float | None = 300.0

    def __post_init__(self) -> None:
        if not self.group.strip():
            raise ConfigError("the consumer group name is empty; give --group NAME")
        if not self.consumer.strip():
            raise ConfigError("the consumer name is empty; give --consumer NAME")
        if self.start_from not in get_args(StartFrom):
            raise ConfigError(f"start_from is {self.start_from!r}; choose 'earliest' or 'latest'")
        if self.batch < 1 or self.poll_s <= 0 or self.claim_idle_ms < 0:
            raise ConfigError("batch must be >= 1, poll_s > 0 and claim_idle_ms >= 0")

    @property
    def stream(self) -> str:
        """The alert stream's key."""
        return Keys(self.prefix).alerts


class StreamSubscriber(_Base):
    """Reliable alerts from a consumer group (at-least-once; acknowledge with ``ack``).

    Order of delivery: first this consumer's own pending entries (after a restart), then
    new entries; every ``claim_every_s`` entries idle on other consumers for more than
    ``claim_idle_ms`` are claimed and delivered (``redelivered=True``). See
    :class:`Subscriber` for the contract.
    """

    def __init__(self, config: FollowConfig) -> None:
        super().__init__()
        self.config = config
        self.redis_url = config.redis_url
        self.poll_s = config.poll_s
        self.reconnect_timeout_s = config.reconnect_timeout_s
        self._opened = False

    def open(self) -> None:
        """Connect and create the group (``XGROUP CREATE ... MKSTREAM``) unless it exists."""
        if self._opened and self._client is not None:
            return
        import redis

        c = self.config
        try:
            self.client.xgroup_create(
                c.stream, c.group, id="0" if c.start_from == "earliest" else "$", mkstream=True
            )
            logger.info("created consumer group %s on %s from %s", c.group, c.stream, c.start_from)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            existed = True
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._drop_client()
            raise unreachable(self.redis_url, exc) from exc
        else:
            existed = False
        self._opened = True
        if existed:
            try:
                self._warn_if_trimmed_unread()
            except redis.RedisError:  # advisory: a user without XINFO, a stream deleted
                logger.debug("could not check %s for trimmed entries", c.stream, exc_info=True)

    def _warn_if_trimmed_unread(self) -> None:
        """Say so when the stream's length bound trimmed entries the group never read (it
        was offline for longer than the stream holds): they are not delivered."""
        c = self.config
        stream = self.client.xinfo_stream(c.stream)
        group = next(
            (g for g in self.client.xinfo_groups(c.stream) if g.get("name") == c.group),
            None,
        )
        first = stream.get("first-entry")
        if group is None or not first:
            return
        last = group.get("last-delivered-id") or "0-0"  # the client decodes replies
        if _entry_id(last) >= _entry_id(first[0]):
            return  # its next entry is still there
        # Redis 7 counts the entries ever added and those the group read (None where it
        # cannot tell): what neither the stream holds nor the group read was trimmed unread.
        # Older servers lack the counts, and the ids alone cannot tell a loss: no warning.
        added, read = stream.get("entries-added"), group.get("entries-read")
        if added is None or read is None:
            return
        lost = int(added) - int(stream.get("length", 0)) - int(read)
        if lost <= 0:
            return  # the entries trimmed were ones it had read
        logger.warning(
            "consumer group %s last read entry %s of %s, which now starts at %s: %s alerts "
            "written while it was away were trimmed before it read them (the stream keeps "
            "about --stream-maxlen entries, 100,000 by default). Raise the job's "
            "--stream-maxlen, or keep a consumer of the group running",
            c.group,
            last,
            c.stream,
            first[0],
            f"{lost:,}",
        )

    def _ack_entry(self, entry_id: str) -> bool:
        import redis

        c = self.config
        since = time.monotonic()
        attempt = 0
        while True:
            try:
                return bool(self.client.xack(c.stream, c.group, entry_id))
            except (redis.ConnectionError, redis.TimeoutError, RedisUnreachableError) as exc:
                if self._stop.is_set():
                    raise unreachable(self.redis_url, exc) from exc
                self._wait_for_redis(exc, since, attempt)
                attempt += 1

    def _deliveries(
        self, entries: list[tuple[str, dict[str, str]]], redelivered: bool, seen: set[str]
    ) -> Iterator[Delivery]:
        for entry_id, fields in entries:
            if entry_id is None or entry_id in seen:
                continue  # the same entry from history and from a claim: deliver it once
            seen.add(entry_id)
            alert = self._parse(fields.get("event"), f"{self.config.stream} entry {entry_id}")
            if alert is None:
                # Acknowledged so it does not circle the group forever; the log has it.
                self._ack_entry(entry_id)
                continue
            yield Delivery(
                alert, entry_id, redelivered, functools.partial(self._ack_entry, entry_id)
            )

    def _own_pending(self) -> list[tuple[str, dict[str, str]]]:
        """This consumer's delivered-but-unacknowledged entries (its history, from 0)."""
        c = self.config
        out: list[tuple[str, dict[str, str]]] = []
        after = "0"
        while True:
            reply = self.client.xreadgroup(c.group, c.consumer, {c.stream: after}, count=c.batch)
            entries = reply[0][1] if reply else []
            if not entries:
                return out
            out.extend(entries)
            after = entries[-1][0]

    def _claim(self) -> list[tuple[str, dict[str, str]]]:
        c = self.config
        out: list[tuple[str, dict[str, str]]] = []
        cursor = "0-0"
        while True:
            reply = self.client.xautoclaim(
                c.stream, c.group, c.consumer, c.claim_idle_ms, start_id=cursor, count=c.batch
            )
            cursor, claimed = reply[0], reply[1]
            if len(reply) > 2 and reply[2]:
                logger.warning(
                    "%d pending entries of %s were trimmed from the stream before anyone "
                    "acknowledged them (raise --stream-maxlen)",
                    len(reply[2]),
                    c.stream,
                )
            out.extend(e for e in claimed if e[0] is not None)
            if cursor in ("0-0", b"0-0"):
                break
        if out:
            logger.info("claimed %d alerts left pending by other consumers", len(out))
        return out

    def deliveries(self, timeout_s: float | None = None) -> Iterator[Delivery]:
        """Yield deliveries until :meth:`close` or ``timeout_s`` seconds; see the contract."""
        import redis

        c = self.config
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        need_history = True  # own pending entries: at start and after every reconnect
        next_claim = 0.0
        lost_since: float | None = None
        attempt = 0
        self._active += 1
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return
                try:
                    batches = self._read(deadline, need_history, now >= next_claim)
                except (redis.ConnectionError, redis.TimeoutError, RedisUnreachableError) as exc:
                    # Back off, then read this consumer's history again: a read whose reply
                    # was lost left entries pending on it.
                    self._opened = False
                    lost_since = lost_since or time.monotonic()
                    need_history = True
                    self._wait_for_redis(exc, lost_since, attempt)
                    attempt += 1
                    continue
                need_history = False
                if now >= next_claim:
                    next_claim = now + c.claim_every_s
                lost_since, attempt = None, 0
                seen: set[str] = set()
                for entries, redelivered in batches:
                    for delivery in self._deliveries(entries, redelivered, seen):
                        if self._stop.is_set():
                            return  # the rest stays pending and is delivered again
                        yield delivery
        finally:
            self._active -= 1
            if self._stop.is_set():
                self._release()

    def _read(
        self, deadline: float | None, history: bool, claim: bool
    ) -> list[tuple[list[tuple[str, dict[str, str]]], bool]]:
        """One round of reads: own history, claims, else new entries (blocking)."""
        import redis

        c = self.config
        batches: list[tuple[list[tuple[str, dict[str, str]]], bool]] = []
        try:
            self.open()
            if history:
                batches.append((self._own_pending(), True))
            if claim:
                batches.append((self._claim(), True))
            if not any(entries for entries, _ in batches):
                block = c.poll_s
                if deadline is not None:
                    block = max(0.001, min(block, deadline - time.monotonic()))
                reply = self.client.xreadgroup(
                    c.group, c.consumer, {c.stream: ">"}, count=c.batch, block=int(block * 1000)
                )
                batches.append((reply[0][1] if reply else [], False))
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream or its group was deleted under us: recreate it on the next round.
            logger.warning("consumer group %s on %s vanished; recreating it", c.group, c.stream)
            self._opened = False
        return batches

    def __enter__(self) -> StreamSubscriber:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        self._drop_client()


def follow(
    redis_url: str,
    prefix: str = DEFAULT_PREFIX,
    group: str = "prognos",
    consumer: str = "consumer-1",
    start_from: StartFrom = "latest",
    claim_idle_ms: int = 60_000,
) -> StreamSubscriber:
    """A reliable subscriber of consumer group ``group`` (at-least-once).

    Iterate it for :class:`Delivery` objects and call :meth:`Delivery.ack` after handling
    each; use it as a context manager. See :class:`FollowConfig` for the arguments.

    Raises:
        RedisUnreachableError: Redis does not answer (when iteration starts).
    """
    return StreamSubscriber(
        FollowConfig(
            redis_url,
            group=group,
            consumer=consumer,
            prefix=prefix,
            start_from=start_from,
            claim_idle_ms=claim_idle_ms,
        )
    )

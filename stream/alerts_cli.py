"""``prognos alerts tail`` and ``prognos alerts follow``: alerts from Redis on the terminal.

``tail`` is a live view over pub/sub (alerts published while it is not running are not
seen); ``follow`` consumes reliably through a consumer group and acknowledges each alert
only after its line was written. Both read the Redis of the local stack or
``PROGNOS_REDIS_URL`` and the key prefix ``PROGNOS_KEY_PREFIX`` (``prognos``); see
:mod:`stream.subscribe` for the semantics.

Only ``argparse`` (and the standard library) is imported at module level, as the
dispatcher (:mod:`deploy.cli`) expects.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from stream.contract import AlertEvent, TopFeature
    from stream.subscribe import Subscriber

logger = logging.getLogger(__name__)

_RED, _YELLOW, _GREEN, _DIM, _BOLD, _RESET = (
    "\x1b[31;1m",
    "\x1b[33m",
    "\x1b[32m",
    "\x1b[2m",
    "\x1b[1m",
    "\x1b[0m",
)


def register(subparsers: Any) -> None:
    """Add ``alerts`` with its ``tail`` and ``follow`` subcommands."""
    alerts = subparsers.add_parser(
        "alerts",
        help="show or consume alerts from Redis (tail, follow)",
        description="Alerts the stream job writes to Redis. `tail` shows them live over "
        "pub/sub (at-most-once: alerts published while it is not running are missed); "
        "`follow` consumes them through a Redis Streams consumer group (at-least-once: "
        "nothing is lost across restarts). Redis comes from the local stack or "
        "PROGNOS_REDIS_URL, the key prefix from PROGNOS_KEY_PREFIX.",
    )
    commands = alerts.add_subparsers(dest="alerts_command", metavar="COMMAND", required=True)

    tail = commands.add_parser(
        "tail",
        help="live view of alerts (pub/sub), as a table on a terminal",
        description="Show alerts as they are published: a table of the latest alerts that "
        "redraws on a terminal, one line per alert otherwise, JSON lines with --json. "
        "Alerts published while tail is not running are not seen; use `follow` for that.",
    )
    tail.add_argument(
        "--severity",
        action="append",
        choices=["warning", "critical"],
        help="show only this severity (repeatable; default both)",
    )
    tail.add_argument("--device", metavar="PATTERN", help="device id glob, e.g. 'pump-00*'")
    tail.add_argument(
        "--rows", type=int, default=20, help="alerts in the live table at most (default 20)"
    )
    _common(tail)
    tail.set_defaults(handler=_tail)

    follow = commands.add_parser(
        "follow",
        help="consume alerts reliably through a consumer group (at-least-once)",
        description="Read alerts through a Redis Streams consumer group: each alert is "
        "acknowledged after its line is written, a restart resumes where the group left "
        "off (this consumer's unacknowledged alerts first), and alerts another consumer "
        "left pending longer than --claim-idle are taken over. Give each process of a group "
        "its own --consumer name. Downstream tools should drop duplicates by event_id.",
    )
    follow.add_argument("--group", required=True, help="consumer group name")
    follow.add_argument(
        "--consumer", help="this consumer's name in the group (default: the host name)"
    )
    follow.add_argument(
        "--from",
        dest="start_from",
        choices=["earliest", "latest"],
        default="latest",
        help="where a new group starts (default latest); an existing group resumes",
    )
    follow.add_argument(
        "--claim-idle",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="take over alerts pending on another consumer this long (default 60)",
    )
    _common(follow)
    follow.set_defaults(handler=_follow)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument("--key-prefix", help="Redis key prefix (PROGNOS_KEY_PREFIX, prognos)")
    parser.add_argument(
        "--count",
        type=int,
        metavar="N",
        help="exit after N alerts (exit code 1 if fewer arrived before --timeout)",
    )
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="exit after this many seconds"
    )


# -- rendering (pure functions) ------------------------------------------------------------


def format_time(ms: int) -> str:
    """Epoch milliseconds as ``YYYY-MM-DD HH:MM:SS`` in UTC.

    >>> format_time(1767225660000)
    '2026-01-01 00:01:00'
    """
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_features(features: Sequence[TopFeature], limit: int = 3) -> str:
    """The top features as ``name=value (z+3.2)``, strongest first."""
    parts = []
    for f in features[:limit]:
        value = "NA" if f.value is None else f"{f.value:g}"
        parts.append(f"{f.name}={value} (z{f.z:+.1f})")
    return ", ".join(parts)


def format_line(alert: AlertEvent) -> str:
    """One alert as one line of text (the output of ``tail`` and ``follow`` off a terminal)."""
    return (
        f"{format_time(alert.window_end_ms)}Z  {alert.device_id}  {alert.kind:<8}  "
        f"{alert.severity:<8}  risk {alert.risk:.3f}  {format_features(alert.top_features)}"
    ).rstrip()


def _colour(alert: AlertEvent, text: str, field: str) -> str:
    if field == "severity":
        return f"{_RED if alert.severity == 'critical' else _YELLOW}{text}{_RESET}"
    if field == "kind" and alert.kind == "resolved":
        return f"{_GREEN}{text}{_RESET}"
    return text


def render_table(
    alerts: Sequence[AlertEvent], width: int, header: str = "", colour: bool = False
) -> list[str]:
    """The live table: a header line, column titles, then one row per alert, newest last.

    Every line fits in ``width`` columns (so redrawing in place never wraps).
    """
    device_w = max([6, *(len(a.device_id) for a in alerts)])
    device_w = min(device_w, 24)
    cols = [("TIME (UTC)", 19), ("DEVICE", device_w), ("KIND", 8), ("SEVERITY", 8), ("RISK", 5)]
    fixed = sum(w for _, w in cols) + 2 * len(cols)
    room = max(width - fixed, 0)

    def cut(text: str, n: int) -> str:
        return text if len(text) <= n else text[: max(n - 1, 0)] + "…"

    titles = "  ".join(f"{t:<{w}}" for t, w in cols) + "  TOP FEATURES"
    lines = [cut(header, width)] if header else []
    lines.append(cut(titles, width))
    for a in alerts:
        cells = {
            "time": format_time(a.window_end_ms),
            "device": f"{cut(a.device_id, device_w):<{device_w}}",
            "kind": f"{a.kind:<8}",
            "severity": f"{a.severity:<8}",
            "risk": f"{a.risk:.3f}",
        }
        features = cut(format_features(a.top_features), room)
        plain = "  ".join(cells.values())
        if len(plain) > width:  # too narrow even for the fixed columns: cut, no colour
            lines.append(cut(plain, width))
            continue
        if colour:
            cells = {k: _colour(a, v, k) for k, v in cells.items()}
        row = "  ".join(cells.values())
        lines.append(f"{row}  {features}" if features else row)
    if colour and lines and header:
        lines[0] = f"{_BOLD}{lines[0]}{_RESET}"
    return lines


class _LiveTable:
    """Redraws the last ``rows`` alerts in place with ANSI cursor movement."""

    def __init__(self, out: TextIO, rows: int, header: str) -> None:
        self.out = out
        self.rows = rows
        self.header = header
        self.alerts: list[AlertEvent] = []
        self.drawn = 0
        self.received = 0

    def add(self, alert: AlertEvent) -> None:
        self.received += 1
        self.alerts = [*self.alerts, alert][-self.rows :]
        self.draw()

    def draw(self) -> None:
        import shutil

        size = shutil.get_terminal_size((100, 24))
        shown = self.alerts[-max(size.lines - 3, 1) :]
        now = datetime.now(tz=UTC).strftime("%H:%M:%S")
        header = f"{self.header} · {self.received} received · {now} UTC · Ctrl-C to stop"
        lines = render_table(shown, size.columns - 1, header, colour=True)
        up = f"\x1b[{self.drawn}F" if self.drawn else ""
        self.out.write(up + "\x1b[J" + "\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = len(lines)


# -- commands ---------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> tuple[str, str]:
    from stream.redis_config import RedisConfig

    config = RedisConfig.from_env(key_prefix=args.key_prefix)
    return config.url, config.key_prefix


def _stop_on_sigterm(subscriber: Subscriber) -> Any:
    """SIGTERM ends the iteration like the end of --timeout; returns the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda *_: subscriber.close())


def _restore(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _check_bounds(args: argparse.Namespace) -> None:
    from stream.errors import ConfigError

    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count {args.count}: give a number of alerts >= 1")
    if args.timeout is not None and args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout}: give a number of seconds > 0")


def _finish(args: argparse.Namespace, seen: int) -> int:
    import sys

    if args.count is not None and args.timeout is not None and seen < args.count:
        print(
            f"prognos alerts: {seen} of {args.count} alerts arrived within {args.timeout:g}s",
            file=sys.stderr,
        )
        return 1
    return 0


def _tail(args: argparse.Namespace) -> int:
    import sys

    from stream.subscribe import PubSubSubscriber, TailConfig

    _check_bounds(args)
    redis_url, prefix = _settings(args)
    config = TailConfig(
        redis_url,
        prefix,
        severities=tuple(dict.fromkeys(args.severity))
        if args.severity
        else ("warning", "critical"),
        device_pattern=args.device,
    )
    out = sys.stdout
    live = None
    if not args.json and out.isatty():
        what = f"{', '.join(config.severities)} · devices {args.device or '*'}"
        live = _LiveTable(out, max(args.rows, 1), f"prognos alerts tail {prefix} · {what}")
    seen = 0
    with PubSubSubscriber(config) as subscriber:
        subscriber.open()  # fail now, with the address, if Redis does not answer
        if live is not None:
            live.draw()
        previous = _stop_on_sigterm(subscriber)
        try:
            for delivery in subscriber.deliveries(args.timeout):
                alert = delivery.alert
                if live is not None:
                    live.add(alert)
                else:
                    out.write((alert.to_json() if args.json else format_line(alert)) + "\n")
                    out.flush()
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
        except BrokenPipeError:
            return _quiet_broken_pipe()
        finally:
            _restore(previous)
    return _finish(args, seen)


def _follow(args: argparse.Namespace) -> int:
    import socket
    import sys

    from stream.subscribe import FollowConfig, StreamSubscriber

    _check_bounds(args)
    redis_url, prefix = _settings(args)
    config = FollowConfig(
        redis_url,
        group=args.group,
        consumer=args.consumer or socket.gethostname(),
        prefix=prefix,
        start_from=args.start_from,
        claim_idle_ms=int(args.claim_idle * 1000),
        # With --count, fetch no more than needed: the rest stays unread rather than pending.
        batch=min(100, args.count or 100),
    )
    out = sys.stdout
    seen = 0
    with StreamSubscriber(config) as subscriber:
        subscriber.open()
        logger.info(
            "following %s as %s/%s (at-least-once)", config.stream, config.group, config.consumer
        )
        previous = _stop_on_sigterm(subscriber)
        try:
            for delivery in subscriber.deliveries(args.timeout):
                alert = delivery.alert
                out.write((alert.to_json() if args.json else format_line(alert)) + "\n")
                out.flush()  # handled = written out; only then acknowledged
                delivery.ack()
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
        except BrokenPipeError:
            # The reader went away: the alert being written stays pending for the next run.
            return _quiet_broken_pipe()
        finally:
            _restore(previous)
    return _finish(args, seen)


def _quiet_broken_pipe() -> int:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0

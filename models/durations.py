"""Durations as people write them (``30s``, ``15m``, ``1h``, ``7d``) and as reports print them.

``--window``, ``--horizon``, ``--sequence-length`` and ``--lead`` take a duration: a number
and a unit, ``ms``, ``s``, ``m`` (minutes), ``h``, ``d`` or ``w``; several parts add up
(``1h30m``); a bare number is seconds. :func:`nice_floor` and :func:`nice_ceil` round a
duration chosen from the data to one a person would pick (``1h``, not ``3517s``).

>>> parse_duration("90m"), parse_duration("1d12h"), parse_duration("45")
(5400.0, 129600.0, 45.0)
>>> format_duration(5400.0), format_duration(129600.0), format_duration(0.5)
('1h30m', '1d12h', '500ms')
>>> format_duration(nice_floor(3517.0)), format_duration(nice_ceil(7.0))
('30m', '10s')
"""

from __future__ import annotations

import logging
import math
import re
from typing import Final

logger = logging.getLogger(__name__)

__all__ = ["NICE_DURATIONS", "format_duration", "nice_ceil", "nice_floor", "parse_duration"]

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*", re.IGNORECASE)

#: The durations :func:`nice_floor` and :func:`nice_ceil` round to, in seconds.
NICE_DURATIONS: Final[tuple[float, ...]] = (
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
    3600.0, 7200.0, 10800.0, 21600.0, 43200.0,
    86400.0, 172800.0, 604800.0, 1209600.0, 2592000.0,
)  # fmt: skip


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``30s``, ``15m``, ``1h30m``, ``7d``, ``2w``; a bare number: seconds).

    Raises:
        ValueError: ``text`` is not a positive duration (the caller names the option).
    """
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    total, pos = 0.0, 0
    while pos < len(s):
        match = _PART.match(s, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"{text!r} is not a duration such as 30s, 15m, 1h, 7d")
        unit = (match.group(2) or "s").lower()
        if match.group(2) is None and match.end() < len(s):
            if s[match.end()].isalpha():
                raise ValueError(f"{text!r}: unknown unit; use ms, s, m, h, d or w")
            raise ValueError(f"{text!r}: give a unit after each number (ms, s, m, h, d, w)")
        total += float(match.group(1)) * _UNITS[unit]
        pos = match.end()
    if not (total > 0 and math.isfinite(total)):
        raise ValueError(f"{text!r} is not a positive duration")
    return total


def format_duration(seconds: float) -> str:
    """A short text for ``seconds``: ``1d12h``, ``30m``, ``45s``, ``500ms``.

    Whole weeks are written in days (``14d``): a report reads better in one unit.
    """
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts = []
    rest = seconds
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        count = math.floor(rest / size + 1e-9)
        if count:
            parts.append(f"{count}{unit}")
            rest -= count * size
    if rest > 1e-6 or not parts:
        parts.append(f"{round(rest, 3):g}s")
    return "".join(parts[:2]) if len(parts) > 2 and seconds >= 86400 else "".join(parts)


def nice_floor(seconds: float) -> float:
    """The largest of :data:`NICE_DURATIONS` not above ``seconds`` (the smallest one below 1 s)."""
    below = [d for d in NICE_DURATIONS if d <= seconds * (1 + 1e-9)]
    return below[-1] if below else NICE_DURATIONS[0]


def nice_ceil(seconds: float) -> float:
    """The smallest of :data:`NICE_DURATIONS` not below ``seconds`` (``seconds`` past the last)."""
    above = [d for d in NICE_DURATIONS if d >= seconds * (1 - 1e-9)]
    return above[0] if above else float(seconds)

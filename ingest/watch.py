"""A whole recording rejected by one rule: noticed after its first readings, said loudly.

When a recording does not fit the catalogue in force (a unit it did not expect, a sensor
it does not declare), every reading goes to the dead-letter topic, and a run that only
counts them says so at its end. :class:`RejectionWatch` watches the first ``window``
readings a producer takes (1,000 by default) and, as soon as more than ``share`` of them
(half) broke the same rule, or at the end of a shorter run, returns a :class:`Rejection`
once; :func:`rejection_message` says which rule, the share, and the fix.

>>> from ingest.validation import Violation
>>> watch = RejectionWatch(window=4)
>>> bad = Violation("x.pressure", "range", "50.0 is outside [0, 40] bar")
>>> [watch.observe(v) for v in (bad, None, bad)]
[None, None, None]
>>> watch.observe(bad)
Rejection(reason='x.pressure/range', count=3, seen=4, example='x.pressure: 50.0 is outside [0, 40] bar')
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ingest.validation import Violation

logger = logging.getLogger(__name__)

__all__ = ["Rejection", "RejectionWatch", "rejection_message"]

_ROW_RULES: Final = frozenset(
    {"number", "required", "timestamp", "columns", "csv", "json", "object"}
)


@dataclass(frozen=True)
class Rejection:
    """Most of the first readings broke the same rule.

    Attributes:
        reason: ``field/rule``.
        count: how many of the first readings broke it.
        seen: how many readings were watched.
        example: the first such violation, ``field: message``.
    """

    reason: str
    count: int
    seen: int
    example: str

    @property
    def share(self) -> float:
        """``count / seen``."""
        return self.count / self.seen if self.seen else 0.0


class RejectionWatch:
    """Watches the first readings for one rule that rejects most of them.

    Args:
        window: how many readings to watch.
        share: the share of them one rule must reject (more than) to be reported.
        minimum: a run shorter than the window is judged at its end only from this many.
    """

    def __init__(self, window: int = 1000, share: float = 0.5, minimum: int = 20) -> None:
        self.window = window
        self.share = share
        self.minimum = minimum
        self.seen = 0
        self._counts: Counter[str] = Counter()
        self._examples: dict[str, str] = {}
        self._done = False

    def observe(self, violation: Violation | None) -> Rejection | None:
        """Count one reading (its first violation, or None when it was sent); the
        :class:`Rejection` when the window is full and one rule took more than the share."""
        if self._done:
            return None
        self.seen += 1
        if violation is not None:
            reason = f"{violation.field}/{violation.rule}"
            self._counts[reason] += 1
            self._examples.setdefault(reason, f"{violation.field}: {violation.message}")
        return self._judge() if self.seen >= self.window else None

    def observe_counts(
        self, seen: int, broken: Mapping[str, int], examples: Mapping[str, str]
    ) -> Rejection | None:
        """Count ``seen`` readings at once, ``broken`` of them by reason (``field/rule``),
        with an example of each (``field: message``); as :meth:`observe` (a consumer's
        batch, where :meth:`observe` takes a producer's readings one by one)."""
        if self._done:
            return None
        self.seen += seen
        for reason, count in broken.items():
            self._counts[reason] += count
            self._examples.setdefault(reason, examples.get(reason, reason))
        return self._judge() if self.seen >= self.window else None

    @property
    def done(self) -> bool:
        """True once judged: nothing more is counted."""
        return self._done

    def finish(self) -> Rejection | None:
        """At the end of a run: the :class:`Rejection` of a run shorter than the window."""
        if self._done or self.seen < self.minimum:
            return None
        return self._judge()

    def _judge(self) -> Rejection | None:
        self._done = True
        if not self._counts:
            return None
        reason, count = self._counts.most_common(1)[0]
        if count <= self.share * self.seen:
            return None
        return Rejection(reason, count, self.seen, self._examples[reason])


def rejection_message(rejection: Rejection, catalogue: str, source: str) -> str:
    """What went wrong and the fix, in a few sentences.

    Args:
        rejection: what the watch found.
        catalogue: the catalogue in force, as its origin.
        source: the recording's path (or the producer's name).
    """
    field, _, rule = rejection.reason.rpartition("/")
    head = (
        f"{rejection.share:.0%} of the first {rejection.seen:,} readings from {source} "
        f"({rejection.count:,}) broke the same rule, {rejection.reason} ({rejection.example})."
    )
    recording = source if Path(source).suffix else "RECORDING"
    if rule in ("range", "unknown"):
        return (
            f"{head} The catalogue in force, {catalogue}, does not fit these readings: declare "
            f"the sensors and their ranges in a catalogue. `prognos catalogue infer {recording} "
            "[the same column options] --out catalogue.toml` proposes one from the recording; "
            "fill in its units, then replay with --catalogue catalogue.toml."
        )
    if rule in _ROW_RULES and "." not in field:
        return (
            f"{head} The rows do not map to readings: check the column options (--device-column, "
            "--time-column, --time-format, --sensors, --metadata or --mapping); a text column "
            "belongs in --metadata."
        )
    return f"{head} Check how these readings are made; docs/readings.md lists the rules."

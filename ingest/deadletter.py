"""The dead-letter topic: where messages that break a rule go, with the reason in headers.

A dead letter is the *original bytes* of the message (the row as read from a file, the
payload as received, or for a reading built in Python its JSON with NaN/Infinity written
as tokens) published to ``<topic>.dlq`` with the same key and these headers:

==========================  =============================================================
header                      value (UTF-8)
==========================  =============================================================
``prognos.error.field``     the first offending field (``x.vibration``, ``t``, ``payload``,
                            or a file's column name)
``prognos.error.rule``      the rule it breaks (``range``, ``finite``, ``required``,
                            ``json``, ``number``...)
``prognos.error.reason``    every violation, ``field: message (rule)``, joined by ``; ``
``prognos.source``          where it came from: ``path:line`` for a file, else ``producer``
==========================  =============================================================
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ingest.validation import Violation

logger = logging.getLogger(__name__)

__all__ = [
    "HEADER_FIELD",
    "HEADER_REASON",
    "HEADER_RULE",
    "HEADER_SOURCE",
    "DeadLetterCounts",
    "dead_letter_headers",
]

HEADER_FIELD: Final = "prognos.error.field"
HEADER_RULE: Final = "prognos.error.rule"
HEADER_REASON: Final = "prognos.error.reason"
HEADER_SOURCE: Final = "prognos.source"
_MAX_REASON: Final = 2000


def dead_letter_headers(violations: Sequence[Violation], source: str) -> list[tuple[str, bytes]]:
    """Kafka headers for a dead letter breaking ``violations`` (at least one)."""
    first = violations[0]
    reason = "; ".join(f"{v.field}: {v.message} ({v.rule})" for v in violations)[:_MAX_REASON]
    return [
        (HEADER_FIELD, first.field.encode()),
        (HEADER_RULE, first.rule.encode()),
        (HEADER_REASON, reason.encode()),
        (HEADER_SOURCE, source.encode()),
    ]


@dataclass
class DeadLetterCounts:
    """Dead letters counted by reason, ``field/rule`` of their first violation."""

    by_reason: Counter[str]

    def __init__(self) -> None:
        self.by_reason = Counter()

    def add(self, violation: Violation) -> None:
        self.by_reason[f"{violation.field}/{violation.rule}"] += 1

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def summary(self) -> str:
        """One line: ``N dead letters: x.vibration/range 3, t/timestamp 1``, or ``no dead letters``."""
        if not self.by_reason:
            return "no dead letters"
        parts = ", ".join(f"{k} {n}" for k, n in self.by_reason.most_common())
        return f"{self.total} dead letters: {parts}"

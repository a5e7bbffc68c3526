"""The publishing loop shared by ``prognos replay`` and ``prognos simulate``.

:func:`publish` takes items (a recording's rows, a fleet's steps) one at a time and hands
each to the caller's ``handle``, which sends its readings. Around that it does, once for
both commands, what a long-running publisher needs:

* **pacing**: with a ``speed``, an item is handled when it is due, its recorded time
  (``clock``) divided by ``speed`` after the first timed item;
* **Ctrl-C**: ends the loop cleanly; the report says ``interrupted`` and the caller's
  producer still flushes what it was given;
* **progress**: an optional one-line bar with rate and ETA (:class:`Progress`);
* **the report** (:class:`PublishReport`): items, wall seconds, rate, and the dead letters
  the producer made during the run, by reason.

>>> report = publish(range(3), lambda item: None)
>>> report.items, report.interrupted, report.dead_letters
(3, False, {})
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO, TypeVar

if TYPE_CHECKING:
    from ingest.producer import ReadingProducer

logger = logging.getLogger(__name__)

__all__ = ["Progress", "PublishReport", "publish"]

T = TypeVar("T")


@dataclass(frozen=True)
class PublishReport:
    """What a publishing loop did.

    Attributes:
        items: items handled (rows of a recording, steps of a fleet).
        seconds: wall time of the loop, the ``close`` callback included.
        interrupted: Ctrl-C ended it early.
        dead_letters: dead letters the producer made during the loop, by reason
            ``field/rule`` (empty without a producer).
    """

    items: int
    seconds: float
    interrupted: bool = False
    dead_letters: dict[str, int] = field(default_factory=dict)

    @property
    def dead_lettered(self) -> int:
        """How many dead letters, all reasons together."""
        return sum(self.dead_letters.values())

    @property
    def rate(self) -> float:
        """Items per second of wall time."""
        return self.items / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """A one-line progress bar with rate and ETA, drawn at most 5 times a second.

    Args:
        label: what is running (``replay plant.csv``).
        total: how many items to expect; None draws a count and a rate only.
        stream: where to draw (default stderr).
    """

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        """Redraw with ``done`` items handled (skipped if drawn under 0.2 s ago, unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(frac * 24)
            eta = (self.total - done) / rate if rate > 0 else 0.0
            text = (
                f"\r{self.label} [{bar:<24}] {done:,}/{self.total:,} {frac:4.0%} "
                f"{rate:,.0f}/s ETA {int(eta) // 60}:{int(eta) % 60:02d}"
            )
        else:
            text = f"\r{self.label} {done:,} {rate:,.0f}/s"
        self.stream.write(text)
        self.stream.flush()

    def close(self, done: int) -> None:
        """Draw the final state and end the line."""
        self.update(done, force=True)
        self.stream.write("\n")
        self.stream.flush()


def publish(
    items: Iterable[T],
    handle: Callable[[T], object],
    *,
    speed: float | None = None,
    clock: Callable[[T], float | None] | None = None,
    producer: ReadingProducer | None = None,
    progress: Progress | None = None,
    close: Callable[[], object] | None = None,
    label: str = "publishing",
    unit: str = "items",
) -> PublishReport:
    """Hand each of ``items`` to ``handle``, paced, until they run out or Ctrl-C.

    Args:
        items: what to publish, in order.
        handle: sends one item's readings (and counts what it needs to); an exception
            it raises ends the loop and propagates (after ``progress`` and ``close``).
        speed: recorded seconds per wall second; None publishes as fast as possible.
        clock: an item's recorded time in seconds (any origin), or None for an item
            that is not paced (a bad row); needed with ``speed``.
        producer: the producer ``handle`` sends through, for the dead-letter counts.
        progress: a bar to update after each item and close at the end.
        close: called when the loop ends however it ends, before the time is taken
            (e.g. writing the last row group of a recording).
        label: names the run in the log line about an interrupt.
        unit: what an item is, in that log line (``rows``, ``steps``).

    Returns:
        The report; ``interrupted`` is True after Ctrl-C.
    """
    if speed is not None and clock is None:
        raise TypeError("publish(speed=...) needs a clock to pace by")
    before = Counter(producer.stats().dead_letters) if producer is not None else Counter()
    started = time.monotonic()
    origin: float | None = None
    done = 0
    interrupted = False
    try:
        try:
            for item in items:
                if speed is not None and clock is not None:
                    at = clock(item)
                    if at is not None:
                        if origin is None:
                            origin = at
                        delay = started + (at - origin) / speed - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)  # pacing, not synchronisation
                handle(item)
                done += 1
                if progress is not None:
                    progress.update(done)
        except KeyboardInterrupt:
            interrupted = True
            logger.warning("%s interrupted after %d %s; closing cleanly", label, done, unit)
        finally:
            if progress is not None:
                progress.close(done)
    finally:
        if close is not None:
            close()
    dead: dict[str, int] = {}
    if producer is not None:
        after = Counter(producer.stats().dead_letters)
        after.subtract(before)
        dead = {reason: n for reason, n in after.items() if n > 0}
    return PublishReport(done, time.monotonic() - started, interrupted, dead)

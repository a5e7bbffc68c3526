"""The shared publishing loop: pacing, Ctrl-C, the progress bar and the run's report."""

from __future__ import annotations

import io
import time

import pytest

from ingest.producer import ProducerStats
from ingest.publish import Progress, PublishReport, publish


class CountingProducer:
    """Only what the loop reads from a producer: its dead-letter counts."""

    def __init__(self, dead_letters: dict[str, int] | None = None) -> None:
        self.dead_letters = dict(dead_letters or {})

    def stats(self) -> ProducerStats:
        return ProducerStats(0, 0, dict(self.dead_letters), None)


def test_every_item_is_handled_in_order() -> None:
    seen: list[int] = []
    report = publish(range(5), seen.append)
    assert seen == [0, 1, 2, 3, 4]
    assert (report.items, report.interrupted, report.dead_letters) == (5, False, {})
    assert report.seconds >= 0 and report.rate >= 0


def test_paced_items_are_handled_when_due() -> None:
    handled: list[float] = []
    started = time.monotonic()
    # Recorded times 100, 101, 102 s: at speed 10 the last one is due 0.2 s after the first.
    publish(
        [100.0, 101.0, 102.0],
        lambda _: handled.append(time.monotonic() - started),
        speed=10.0,
        clock=lambda t: t,
    )
    assert handled[0] < 0.1
    assert 0.09 <= handled[1] < 0.5 and 0.19 <= handled[2] < 0.6


def test_items_without_a_time_are_not_paced_and_do_not_set_the_origin() -> None:
    started = time.monotonic()
    report = publish(
        [None, 50.0, None, 51.0],
        lambda _: None,
        speed=20.0,
        clock=lambda t: t,
    )
    assert report.items == 4
    assert 0.04 <= time.monotonic() - started < 0.5  # one recorded second at x20


def test_without_speed_nothing_waits() -> None:
    started = time.monotonic()
    publish([0.0, 3600.0], lambda _: None, clock=lambda t: t)
    assert time.monotonic() - started < 0.5


def test_speed_needs_a_clock() -> None:
    with pytest.raises(TypeError, match="clock"):
        publish([1], lambda _: None, speed=1.0)


def test_ctrl_c_stops_cleanly_and_reports_interrupted(caplog: pytest.LogCaptureFixture) -> None:
    closed: list[bool] = []
    stream = io.StringIO()

    def handle(item: int) -> None:
        if item == 3:
            raise KeyboardInterrupt

    report = publish(
        range(10),
        handle,
        progress=Progress("demo", 10, stream),
        close=lambda: closed.append(True),
        label="demo run",
        unit="steps",
    )
    assert report.interrupted and report.items == 3
    assert closed == [True]
    assert stream.getvalue().endswith("\n") and "3/10" in stream.getvalue()
    assert "demo run interrupted after 3 steps" in caplog.text


def test_an_error_in_handle_propagates_after_closing() -> None:
    closed: list[bool] = []
    stream = io.StringIO()

    def handle(item: int) -> None:
        if item == 1:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        publish(
            range(3),
            handle,
            progress=Progress("demo", 3, stream),
            close=lambda: closed.append(True),
        )
    assert closed == [True] and stream.getvalue().endswith("\n")


def test_dead_letters_are_those_made_during_the_run() -> None:
    producer = CountingProducer({"x.vibration/range": 4})

    def handle(item: str) -> None:
        producer.dead_letters[item] = producer.dead_letters.get(item, 0) + 1

    report = publish(["x.vibration/range", "d/required", "d/required"], handle, producer=producer)  # type: ignore[arg-type]
    assert report.dead_letters == {"x.vibration/range": 1, "d/required": 2}
    assert report.dead_lettered == 3


def test_report_rate() -> None:
    assert PublishReport(items=50, seconds=2.0).rate == 25.0
    assert PublishReport(items=50, seconds=0.0).rate == 0.0


def test_progress_bar_draws_count_rate_and_eta() -> None:
    stream = io.StringIO()
    bar = Progress("replay plant.csv", 200, stream)
    bar.update(50, force=True)
    line = stream.getvalue()
    assert line.startswith("\rreplay plant.csv [######") and "50/200  25%" in line and "ETA" in line
    bar.update(60)  # under 0.2 s since the last draw: skipped
    assert stream.getvalue() == line
    unknown = io.StringIO()
    Progress("simulate", None, unknown).close(7)
    assert unknown.getvalue().startswith("\rsimulate 7 ") and unknown.getvalue().endswith("/s\n")

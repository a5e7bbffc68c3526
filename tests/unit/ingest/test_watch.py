"""A whole recording rejected by one rule is noticed after its first readings, with the fix."""

from __future__ import annotations

from ingest.validation import Violation
from ingest.watch import Rejection, RejectionWatch, rejection_message

RANGE = Violation("x.pressure", "range", "50.0 is outside [0, 40] bar")
OTHER = Violation("x.speed", "finite", "NaN is not a finite number")


def test_one_rule_rejecting_most_of_the_window_is_reported_once_when_it_is_full() -> None:
    watch = RejectionWatch(window=1000)
    found = [watch.observe(RANGE if i % 4 else None) for i in range(3000)]
    reported = [(i, f) for i, f in enumerate(found) if f is not None]
    assert len(reported) == 1
    i, rejection = reported[0]
    assert i == 999  # at once: the 1,000th reading
    assert rejection == Rejection(
        "x.pressure/range", 750, 1000, "x.pressure: 50.0 is outside [0, 40] bar"
    )
    assert rejection.share == 0.75
    assert watch.finish() is None


def test_half_or_less_or_many_rules_is_not_reported() -> None:
    watch = RejectionWatch(window=100)
    assert not any(watch.observe(RANGE if i % 2 else None) for i in range(100))
    mixed = RejectionWatch(window=100)
    assert not any(mixed.observe(RANGE if i % 2 else OTHER) for i in range(100))


def test_a_short_run_is_judged_at_its_end() -> None:
    watch = RejectionWatch(window=1000, minimum=20)
    for _ in range(30):
        assert watch.observe(RANGE) is None
    rejection = watch.finish()
    assert rejection is not None and (rejection.count, rejection.seen) == (30, 30)
    tiny = RejectionWatch(minimum=20)
    tiny.observe(RANGE)
    assert tiny.finish() is None


def test_the_message_names_the_rule_the_share_and_the_fix() -> None:
    rejection = Rejection(
        "x.pressure/range", 43_200, 43_200, "x.pressure: 5.0 is outside [0, 4] bar"
    )
    text = rejection_message(
        rejection, "default catalogue (simulator.toml + cmapss.toml)", "plant.csv"
    )
    assert "100% of the first 43,200 readings from plant.csv" in text
    assert "x.pressure/range" in text and "5.0 is outside [0, 4] bar" in text
    assert "default catalogue" in text
    assert "prognos catalogue infer plant.csv" in text and "--catalogue catalogue.toml" in text
    unknown = Rejection("x.failure/unknown", 900, 1000, "x.failure: not declared")
    assert "prognos catalogue infer RECORDING" in rejection_message(
        unknown, "fleet.toml", "producer"
    )
    rows = Rejection("model/number", 1000, 1000, "drives.csv:2: 'ST4000' is not a number")
    assert "a text column belongs in --metadata" in rejection_message(rows, "c", "drives.csv")

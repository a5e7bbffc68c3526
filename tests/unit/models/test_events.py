"""The event table: caught failures, lead times, false alerts per device-month.

Hand-made cases for each rule, and a property test against a second implementation that
walks the failures instead of the alerts.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.events import MONTH_SECONDS, event_metrics

DAY = 86400.0


def _verdicts(table: object) -> list[tuple[float, str]]:
    return [(a.time / DAY, a.verdict) for a in table.alert_outcomes]  # type: ignore[attr-defined]


def test_an_alert_between_max_lead_and_lead_before_a_failure_catches_it() -> None:
    t = event_metrics(
        {"d": [2 * DAY, 6 * DAY, 9.5 * DAY]},
        {"d": [10 * DAY]},
        {"d": (0.0, 10 * DAY)},
        lead_s=DAY,
        max_lead_s=5 * DAY,
    )
    # 2 d: 8 d ahead, beyond max lead: false. 6 d: 4 d ahead: true. 9.5 d: too late.
    assert _verdicts(t) == [(2.0, "false"), (6.0, "true"), (9.5, "late")]
    assert (t.failures, t.caught, t.caught_share, t.median_lead_s) == (1, 1, 1.0, 4 * DAY)
    assert (t.alerts, t.true_alerts, t.late_alerts, t.false_alerts) == (3, 1, 1, 1)
    # Judged time: from the start to max lead before the failure.
    assert t.device_months == pytest.approx(5 * DAY / MONTH_SECONDS)
    assert t.false_alerts_per_device_month == pytest.approx(1 / t.device_months)


def test_the_earliest_true_alert_gives_the_lead_and_a_missed_failure_keeps_its_late_alert() -> None:
    t = event_metrics(
        {"a": [5 * DAY, 7 * DAY], "b": [9.8 * DAY]},
        {"a": [10 * DAY], "b": [10 * DAY]},
        {"a": (0.0, 10 * DAY), "b": (0.0, 10 * DAY)},
        lead_s=DAY,
        max_lead_s=5 * DAY,
    )
    by_device = {o.device: o for o in t.outcomes}
    assert by_device["a"].caught and by_device["a"].lead_s == 5 * DAY
    assert not by_device["b"].caught and by_device["b"].late_alert_s == pytest.approx(0.2 * DAY)
    assert t.caught_share == 0.5 and t.lead_q25_s == t.lead_q75_s == 5 * DAY


def test_alerts_near_the_end_of_the_data_or_a_renewal_are_censored_not_false() -> None:
    t = event_metrics(
        {"d": [1 * DAY, 18 * DAY, 27 * DAY]},
        {},
        {"d": (0.0, 30 * DAY)},
        lead_s=DAY,
        max_lead_s=5 * DAY,
        renewals={"d": [20 * DAY]},
    )
    # 1 d: seen working 19 d until the maintenance: false. 18 d: the maintenance 2 d later
    # renewed the device: unknown. 27 d: the data ends 3 d later: unknown.
    assert _verdicts(t) == [(1.0, "false"), (18.0, "censored"), (27.0, "censored")]
    # Judged: 0..15 d (maintenance at 20) and 20..25 d (data ends at 30).
    assert t.device_months == pytest.approx(20 * DAY / MONTH_SECONDS)
    assert t.observed_device_months == pytest.approx(30 * DAY / MONTH_SECONDS)


def test_a_renewal_between_an_alert_and_a_failure_cuts_the_alert_off() -> None:
    t = event_metrics(
        {"d": [6 * DAY]},
        {"d": [10 * DAY]},
        {"d": (0.0, 12 * DAY)},
        lead_s=DAY,
        max_lead_s=5 * DAY,
        renewals={"d": [8 * DAY]},
    )
    assert _verdicts(t) == [(6.0, "censored")] and t.caught == 0


def test_repeated_failures_each_need_their_own_alert() -> None:
    t = event_metrics(
        {"d": [8 * DAY, 10.5 * DAY, 17 * DAY]},
        {"d": [10 * DAY, 20 * DAY]},
        {"d": (0.0, 30 * DAY)},
        lead_s=DAY,
        max_lead_s=5 * DAY,
        grace_s=DAY,
    )
    # 10.5 d comes from the window holding the first failure (within grace): late for it.
    assert _verdicts(t) == [(8.0, "true"), (10.5, "late"), (17.0, "true")]
    assert [o.lead_s for o in t.outcomes] == [2 * DAY, 3 * DAY]
    # Judged: 0..5, 10..15 and 20..25 days.
    assert t.device_months == pytest.approx(15 * DAY / MONTH_SECONDS)


def test_failures_before_the_data_are_not_counted_and_after_it_are() -> None:
    t = event_metrics(
        {"d": [16 * DAY]},
        {"d": [2 * DAY, 20 * DAY]},
        {"d": (5 * DAY, 17 * DAY)},
        lead_s=DAY,
        max_lead_s=5 * DAY,
    )
    assert t.failures_before_data == 1 and t.failures == 1 and t.caught == 1
    assert t.median_lead_s == 4 * DAY


def test_devices_without_alerts_or_failures_add_judged_time_only() -> None:
    t = event_metrics({}, {}, {"a": (0.0, 10 * DAY), "b": (0.0, 2 * DAY)}, lead_s=0.0,
                      max_lead_s=5 * DAY)  # fmt: skip
    assert (t.devices, t.failures, t.alerts) == (2, 0, 0)
    assert t.caught_share is None and t.median_lead_s is None
    assert t.false_alerts_per_device_month == 0.0
    assert t.to_dict()["device_months"] == round(5 * DAY / MONTH_SECONDS, 6)


def test_the_report_keys() -> None:
    d = event_metrics({}, {}, {"a": (0.0, DAY)}, lead_s=0.0, max_lead_s=DAY).to_dict()
    for key in ("failures", "caught", "caught_share", "median_lead_s", "false_alerts",
                "device_months", "false_alerts_per_device_month"):  # fmt: skip
        assert key in d
    assert d["per_failure"] == [] and d["per_alert"] == []


def test_lead_must_not_exceed_max_lead() -> None:
    with pytest.raises(ValueError, match="lead"):
        event_metrics({}, {}, {}, lead_s=2.0, max_lead_s=1.0)


# -- a second implementation, failure by failure ------------------------------------------


def _reference(
    alerts: list[float], fails: list[float], maint: list[float], last: float, lead: float,
    max_lead: float,
) -> tuple[int, list[float], int]:  # fmt: skip
    """(caught, leads, false alerts) of one device observed from 0 to ``last``, no grace."""
    caught, leads = 0, []
    for f in fails:
        # An alert speaks for f when f is the first failure or renewal at or after it.
        mine = [
            a for a in alerts
            if lead <= f - a <= max_lead
            and not any(a <= g < f for g in fails)
            and not any(a <= m < f for m in maint)
        ]  # fmt: skip
        if mine:
            caught += 1
            leads.append(f - min(mine))
    false = 0
    for a in alerts:
        f = min((g for g in fails if g >= a), default=math.inf)
        m = min((x for x in maint if x >= a), default=math.inf)
        if f <= m and f < math.inf:  # the run ends in a failure
            false += int(f - a > max_lead)
        else:  # it ends in a maintenance, or the data ends first
            false += int(min(m, last) - a >= max_lead if m == math.inf else m - a >= max_lead)
    return caught, leads, false


times = st.lists(st.integers(0, 60).map(float), max_size=6, unique=True).map(sorted)


@settings(max_examples=300, deadline=None)
@given(alerts=times, fails=times, maint=times, lead=st.integers(0, 3), extra=st.integers(0, 8))
def test_matches_a_failure_by_failure_reference(
    alerts: list[float], fails: list[float], maint: list[float], lead: int, extra: int
) -> None:
    maint = [m for m in maint if m not in fails]
    last = 60.0
    t = event_metrics(
        {"d": alerts}, {"d": fails}, {"d": (0.0, last)}, lead_s=float(lead),
        max_lead_s=float(lead + extra), renewals={"d": maint},
    )  # fmt: skip
    caught, leads, false = _reference(alerts, fails, maint, last, lead, lead + extra)
    assert t.caught == caught
    assert sorted(t.lead_times_s) == sorted(leads)
    assert t.false_alerts == false
    assert t.true_alerts + t.late_alerts + t.false_alerts + t.censored_alerts == len(alerts)

"""The figures an operator decides on: failures caught ahead, lead times, false alerts.

:func:`event_metrics` takes plain data (when each device's alerts opened, when it failed,
when it was observed) and needs nothing else, so ``prognos evaluate`` (alerts from the
stream job's policy applied to scored windows) and a backtest (alerts read back from Redis)
compute the same table the same way.

Definitions (times in seconds; ``lead`` and ``max_lead`` are parameters):

* An **alert** is an alert's opening (``opened`` event), at the end of the window that
  opened it. Updates and resolutions are not new alerts.
* An alert at ``a`` is attributed to the device's next failure ``f >= a`` in the same run
  (no renewing maintenance between them). It is **true** when
  ``lead <= f - a <= max_lead``, **late** when ``f - a < lead`` (or it came from the window
  holding the failure: within ``grace`` after a failure), and **false** when the next
  failure is more than ``max_lead`` away or never comes while the device is observed for
  ``max_lead`` after ``a``. An alert whose ``max_lead`` reaches past the end of the data or
  a renewing maintenance, with no failure first, is **censored**: neither true nor false.
* A failure is **caught** when a true alert points at it; its **lead time** is ``f`` minus
  the earliest such alert. A failure before the device's first observation is not counted.
* **Device-months** are the time in which an alert would have been judged false had one
  opened: each run from its start to ``max_lead`` before its end (a failure, a renewing
  maintenance or the end of the data), in months of 365.25 / 12 days.

>>> day = 86400.0
>>> table = event_metrics(
...     alerts={"a": [8 * day], "b": [2 * day, 20 * day]},
...     failures={"a": [10 * day]},
...     spans={"a": (0.0, 10 * day), "b": (0.0, 40 * day)},
...     lead_s=day, max_lead_s=5 * day)
>>> table.failures, table.caught, table.median_lead_s / day, table.false_alerts
(1, 1, 2.0, 2)
>>> round(table.device_months, 3)  # a: 0..5 days; b: 0..35 days
1.314
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["MONTH_SECONDS", "AlertOutcome", "EventTable", "FailureOutcome", "event_metrics"]

#: A month: 365.25 / 12 days.
MONTH_SECONDS = 365.25 / 12 * 86400.0


@dataclass(frozen=True)
class FailureOutcome:
    """One failure and whether it was caught.

    Attributes:
        device: The device.
        time: When it failed.
        caught: A true alert pointed at it.
        lead_s: ``time`` minus the earliest true alert (None when missed).
        late_alert_s: ``time`` minus the latest late alert, if only a late one came.
    """

    device: str
    time: float
    caught: bool
    lead_s: float | None
    late_alert_s: float | None = None


@dataclass(frozen=True)
class AlertOutcome:
    """One alert opening and how it was judged (``true``, ``late``, ``false``, ``censored``)."""

    device: str
    time: float
    verdict: str
    failure_time: float | None = None


@dataclass(frozen=True)
class EventTable:
    """The event figures of one set of alerts (see the module docstring).

    ``to_dict`` gives the report's ``events`` object: ``failures``, ``caught``,
    ``caught_share``, ``median_lead_s``, ``false_alerts``, ``device_months``,
    ``false_alerts_per_device_month`` and the rest below.
    """

    devices: int
    failures: int
    caught: int
    caught_share: float | None
    median_lead_s: float | None
    lead_q25_s: float | None
    lead_q75_s: float | None
    alerts: int
    true_alerts: int
    late_alerts: int
    false_alerts: int
    censored_alerts: int
    device_months: float
    observed_device_months: float
    false_alerts_per_device_month: float | None
    lead_s: float
    max_lead_s: float
    failures_before_data: int = 0
    outcomes: tuple[FailureOutcome, ...] = field(default=(), repr=False)
    alert_outcomes: tuple[AlertOutcome, ...] = field(default=(), repr=False)

    @property
    def lead_times_s(self) -> list[float]:
        """Lead times of the caught failures."""
        return [o.lead_s for o in self.outcomes if o.lead_s is not None]

    def to_dict(self, *, details: bool = True) -> dict[str, Any]:
        """JSON-ready figures (``details``: each failure's and each alert's outcome too)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("outcomes", "alert_outcomes")}
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 6)
        if details:
            out["per_failure"] = [asdict(o) for o in self.outcomes]
            out["per_alert"] = [asdict(a) for a in self.alert_outcomes]
        return out


def _quantile(values: Sequence[float], q: float) -> float | None:
    return float(np.quantile(np.asarray(values, dtype=np.float64), q)) if values else None


def event_metrics(
    alerts: Mapping[str, Sequence[float]],
    failures: Mapping[str, Sequence[float]],
    spans: Mapping[str, tuple[float, float]],
    *,
    lead_s: float,
    max_lead_s: float,
    renewals: Mapping[str, Sequence[float]] | None = None,
    grace_s: float = 0.0,
) -> EventTable:
    """The event table of a fleet (definitions in the module docstring).

    Args:
        alerts: Device -> times its alerts opened (any order).
        failures: Device -> its failure times.
        spans: Device -> (first, last) time it was observed. These are the devices
            evaluated; alerts and failures of other devices are ignored.
        lead_s: A failure counts as caught only by an alert at least this long before it.
        max_lead_s: ... and at most this long before it (the horizon an alert speaks for).
        renewals: Device -> times of maintenance that renewed it (a run ends there).
        grace_s: An alert within this long after a failure is late for it, not false
            (the window holding the failure closes after it).

    Raises:
        ValueError: ``lead_s`` is negative or above ``max_lead_s``.
    """
    if lead_s < 0 or max_lead_s < lead_s:
        raise ValueError(f"need 0 <= lead ({lead_s:g} s) <= max lead ({max_lead_s:g} s)")
    outcomes: list[FailureOutcome] = []
    judged: list[AlertOutcome] = []
    exposure = observed = 0.0
    before_data = 0
    for device in sorted(spans):
        first, last = spans[device]
        observed += max(0.0, last - first)
        fails = sorted(float(t) for t in failures.get(device, ()))
        before_data += sum(1 for f in fails if f < first)
        fails = [f for f in fails if f >= first]
        maint = sorted(float(t) for t in (renewals or {}).get(device, ()) if float(t) >= first)
        # Run ends in time order: (time, is_failure); the data's end closes the last run.
        # Each run ends at a failure, a renewing maintenance or the end of the data; an
        # alert in it is judged false only if it opened max_lead before that end.
        start = first
        for end in sorted([*fails, *maint]):
            exposure += max(0.0, min(last, end - max_lead_s) - start)
            start = max(start, end)
        exposure += max(0.0, last - max_lead_s - start)
        true_for: dict[float, list[float]] = {f: [] for f in fails}
        late_for: dict[float, list[float]] = {f: [] for f in fails}
        for a in sorted(float(x) for x in alerts.get(device, ())):
            verdict, target = _judge(a, fails, maint, last, lead_s, max_lead_s, grace_s)
            judged.append(AlertOutcome(device, a, verdict, target))
            if target is not None and verdict == "true":
                true_for[target].append(a)
            elif target is not None and verdict == "late":
                late_for[target].append(a)
        for f in fails:
            if true_for[f]:
                outcomes.append(FailureOutcome(device, f, True, f - min(true_for[f])))
            else:
                late = f - max(late_for[f]) if late_for[f] else None
                outcomes.append(FailureOutcome(device, f, False, None, late))
    leads = [o.lead_s for o in outcomes if o.lead_s is not None]
    verdicts = [a.verdict for a in judged]
    months = exposure / MONTH_SECONDS
    false = verdicts.count("false")
    return EventTable(
        devices=len(spans),
        failures=len(outcomes),
        caught=len(leads),
        caught_share=len(leads) / len(outcomes) if outcomes else None,
        median_lead_s=_quantile(leads, 0.5),
        lead_q25_s=_quantile(leads, 0.25),
        lead_q75_s=_quantile(leads, 0.75),
        alerts=len(judged),
        true_alerts=verdicts.count("true"),
        late_alerts=verdicts.count("late"),
        false_alerts=false,
        censored_alerts=verdicts.count("censored"),
        device_months=months,
        observed_device_months=observed / MONTH_SECONDS,
        false_alerts_per_device_month=false / months if months > 0 else None,
        lead_s=lead_s,
        max_lead_s=max_lead_s,
        failures_before_data=before_data,
        outcomes=tuple(outcomes),
        alert_outcomes=tuple(judged),
    )


def _judge(
    a: float,
    fails: Sequence[float],
    maint: Sequence[float],
    last: float,
    lead_s: float,
    max_lead_s: float,
    grace_s: float,
) -> tuple[str, float | None]:
    """The verdict on an alert at ``a`` and the failure it points at."""
    previous = [f for f in fails if f < a]
    # The window holding a failure closes after it: late for that failure, not false.
    if previous and a - previous[-1] <= grace_s and not any(previous[-1] < m < a for m in maint):
        return "late", previous[-1]
    nxt = next((f for f in fails if f >= a), math.inf)
    renewal = next((m for m in maint if m >= a), math.inf)
    if nxt < math.inf and nxt <= renewal:
        gap = nxt - a
        if gap < lead_s:
            return "late", nxt
        return ("true", nxt) if gap <= max_lead_s else ("false", None)
    # The run ends without a failure: at the renewal, else the data's end.
    end = renewal if renewal < math.inf else last
    return ("false", None) if end - a >= max_lead_s else ("censored", None)

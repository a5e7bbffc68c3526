"""Alert decisions: threshold with hysteresis, cooldown, severities, and a lifecycle.

The policy (:class:`AlertPolicy`) is a spec; :func:`step` applies it to one device's next
scored window and returns the device's new :class:`DeviceState` and the alert events it
produced. It is pure and deterministic: the same windows in the same order give the same
events, whatever the batch boundaries, so a run replayed after a crash, or a golden run,
produce identical alerts.

Lifecycle of one alert (per device, in event time)::

    risk >= threshold ─> OPENED ──(severity changes, or risk moves by >= update_delta)──> UPDATED
                            │
                            └─ risk < threshold - hysteresis for resolve_windows windows ─> RESOLVED
                                   then no new alert for cooldown_windows windows

A device above threshold yields one open alert, not one per window.

Ids are derived, never random: an alert's id is a hash of (device, the window that opened
it, model version); each event's id is the alert id for ``opened`` and a hash of (alert id,
kind, window) for the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import overload

from stream.contract import AlertEvent, Kind, Severity, TopFeature

logger = logging.getLogger(__name__)

__all__ = [
    "AlertPolicy",
    "DeviceState",
    "LazyFeatures",
    "ScoredWindow",
    "alert_id",
    "event_id",
    "step",
]


@dataclass(frozen=True)
class AlertPolicy:
    """When a device's risk opens, updates and resolves an alert.

    Attributes:
        threshold: risk at or above which an alert opens (default: the model's threshold).
        hysteresis: an open alert resolves only below ``threshold - hysteresis``.
        resolve_windows: ... for this many consecutive windows.
        cooldown_windows: after a resolve, no new alert opens for this many windows.
        update_delta: an open alert is updated when its risk moved this much since the
            last event, or its severity changed.
        critical: risk at or above which the severity is ``critical`` (else ``warning``).
    """

    threshold: float = 0.5
    hysteresis: float = 0.1
    resolve_windows: int = 2
    cooldown_windows: int = 3
    update_delta: float = 0.15
    critical: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"alert threshold must be in (0, 1], got {self.threshold}")
        if not 0.0 <= self.hysteresis < self.threshold:
            raise ValueError(f"hysteresis must be in [0, threshold), got {self.hysteresis}")
        if self.resolve_windows < 1 or self.cooldown_windows < 0:
            raise ValueError("resolve_windows must be >= 1 and cooldown_windows >= 0")
        if self.critical < self.threshold:
            raise ValueError(
                f"critical ({self.critical}) must not be below the threshold ({self.threshold})"
            )

    def severity(self, risk: float) -> Severity:
        return "critical" if risk >= self.critical else "warning"


@dataclass(frozen=True)
class ScoredWindow:
    """One device's risk for one closed window, as the scoring stage emits it."""

    device_id: str
    window_start_ms: int
    window_end_ms: int
    risk: float
    model_version: str
    provider: str
    top_features: Sequence[TopFeature] = ()
    #: Share of the model's sensors present in the window (1.0: all of them).
    coverage: float = 1.0


class LazyFeatures(Sequence[TopFeature]):
    """A window's top features, described on first use: most windows raise no event."""

    __slots__ = ("_describe", "_items")

    def __init__(self, describe: Callable[[], tuple[TopFeature, ...]]) -> None:
        self._describe = describe
        self._items: tuple[TopFeature, ...] | None = None

    def _get(self) -> tuple[TopFeature, ...]:
        if self._items is None:
            self._items = self._describe()
        return self._items

    @overload
    def __getitem__(self, i: int) -> TopFeature: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[TopFeature, ...]: ...

    def __getitem__(self, i: int | slice) -> TopFeature | tuple[TopFeature, ...]:
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LazyFeatures({self._get()!r})"


@dataclass(frozen=True)
class DeviceState:
    """What the policy remembers per device between windows (kept in Redis by the sink)."""

    last_window_end_ms: int = -1
    alert_id: str | None = None
    opened_window_end_ms: int = -1
    severity: Severity | None = None
    last_event_risk: float = 0.0
    below: int = 0
    cooldown_until_ms: int = -1

    def to_json(self) -> str:
        """Compact JSON, keys sorted; written by hand (``json.dumps(asdict(...))`` was a fifth
        of the sink's cost a device), held to that output by the unit tests."""
        alert, severity = self.alert_id, self.severity
        return (
            f'{{"alert_id":{"null" if alert is None else _json_str(alert)},'
            f'"below":{int(self.below)},'
            f'"cooldown_until_ms":{int(self.cooldown_until_ms)},'
            f'"last_event_risk":{_json_float(self.last_event_risk)},'
            f'"last_window_end_ms":{int(self.last_window_end_ms)},'
            f'"opened_window_end_ms":{int(self.opened_window_end_ms)},'
            f'"severity":{"null" if severity is None else _json_str(severity)}}}'
        )

    @classmethod
    def from_json(cls, text: str | bytes | None) -> DeviceState:
        if not text:
            return cls()
        return cls(**json.loads(text))


_json_str = json.encoder.encode_basestring_ascii


_INF = float("inf")


def _json_float(x: float) -> str:
    """A float as ``json.dumps`` writes it (``NaN`` and ``Infinity`` included)."""
    x = float(x)
    return repr(x) if x == x and x not in (_INF, -_INF) else json.dumps(x)


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]


def alert_id(device_id: str, window_end_ms: int, model_version: str) -> str:
    """The id of the alert a window opens: stable across runs, batches and restarts.

    >>> alert_id("pump-0001", 1767225600000, "1.0.0") == alert_id("pump-0001", 1767225600000, "1.0.0")
    True
    >>> alert_id("pump-0001", 1767225600000, "1.0.0") != alert_id("pump-0001", 1767225600000, "1.0.1")
    True
    """
    return _digest(device_id, window_end_ms, model_version)


def event_id(alert: str, kind: Kind, window_end_ms: int) -> str:
    """The id of one lifecycle event of an alert."""
    return alert if kind == "opened" else _digest(alert, kind, window_end_ms)


def step(
    policy: AlertPolicy, state: DeviceState, window: ScoredWindow, window_ms: int
) -> tuple[DeviceState, list[AlertEvent]]:
    """Apply the policy to a device's next scored window.

    Args:
        policy: the alert policy.
        state: the device's state before this window.
        window: the scored window; windows at or before ``state.last_window_end_ms`` were
            already applied and are ignored (this makes a replayed batch a no-op).
        window_ms: the window length in milliseconds (for the cooldown).

    Returns:
        The new state and the events (zero or one).
    """
    if window.window_end_ms <= state.last_window_end_ms:
        return state, []
    risk = float(window.risk)
    state = replace(state, last_window_end_ms=window.window_end_ms)

    def event(kind: Kind, alert: str, opened_ms: int, severity: Severity) -> AlertEvent:
        return AlertEvent(
            event_id=event_id(alert, kind, window.window_end_ms),
            alert_id=alert,
            kind=kind,
            device_id=window.device_id,
            severity=severity,
            risk=round(risk, 6),
            threshold=policy.threshold,
            window_start_ms=window.window_start_ms,
            window_end_ms=window.window_end_ms,
            opened_window_end_ms=opened_ms,
            model_version=window.model_version,
            provider=window.provider,
            top_features=tuple(window.top_features),
            coverage=round(float(window.coverage), 3),
        )

    if state.alert_id is None:
        if risk >= policy.threshold and window.window_end_ms > state.cooldown_until_ms:
            new = alert_id(window.device_id, window.window_end_ms, window.model_version)
            severity = policy.severity(risk)
            state = replace(
                state,
                alert_id=new,
                opened_window_end_ms=window.window_end_ms,
                severity=severity,
                last_event_risk=risk,
                below=0,
            )
            return state, [event("opened", new, window.window_end_ms, severity)]
        return state, []

    current = state.alert_id
    opened = state.opened_window_end_ms
    if risk < policy.threshold - policy.hysteresis:
        below = state.below + 1
        if below >= policy.resolve_windows:
            resolved = event("resolved", current, opened, state.severity or "warning")
            state = DeviceState(
                last_window_end_ms=window.window_end_ms,
                cooldown_until_ms=window.window_end_ms + policy.cooldown_windows * window_ms,
            )
            return state, [resolved]
        return replace(state, below=below), []

    severity = policy.severity(risk)
    state = replace(state, below=0)
    if severity != state.severity or abs(risk - state.last_event_risk) >= policy.update_delta:
        state = replace(state, severity=severity, last_event_risk=risk)
        return state, [event("updated", current, opened, severity)]
    return state, []

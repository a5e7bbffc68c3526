"""An alert event for tests, with every field set and two top features."""

from __future__ import annotations

from typing import Any

from stream.contract import AlertEvent, TopFeature

TOP = TopFeature("s2__mean", 643.1, 3.2, 641.0, 643.0)


def event(**changes: Any) -> AlertEvent:
    """An ``opened`` critical event of pump-0007; ``changes`` replace fields."""
    values: dict[str, Any] = dict(
        event_id="e1",
        alert_id="a1",
        kind="opened",
        device_id="pump-0007",
        severity="critical",
        risk=0.953,
        threshold=0.5,
        window_start_ms=1767225600000,
        window_end_ms=1767225660000,
        opened_window_end_ms=1767225660000,
        model_version="1.0.0",
        provider="CPUExecutionProvider",
        top_features=(TOP, TopFeature("s3__std", None, -2.5)),
    )
    values.update(changes)
    return AlertEvent(**values)

"""Prognos stream: the Spark Structured Streaming job from Kafka to Redis, and its readers.

The job (:class:`StreamJob`, settings in :class:`StreamConfig`) reads readings from Kafka,
builds each device's windows and features, scores them with the ONNX model and writes
alerts to Redis through :class:`RedisAlertSink`; what it writes there is the contract of
:mod:`stream.contract` (:class:`Keys`, :class:`AlertEvent`). Subscribers read alerts back
live (:func:`tail`) or reliably (:func:`follow`).

Example:

    >>> import stream
    >>> stream.Keys("plant-7").alerts
    'plant-7:alerts'
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "AlertEvent",
    "AlertPolicy",
    "Delivery",
    "FleetSummary",
    "FollowConfig",
    "JobMetrics",
    "Keys",
    "PubSubSubscriber",
    "RedisAlertSink",
    "RedisConfig",
    "ScoredWindow",
    "SparkConfig",
    "StreamConfig",
    "StreamError",
    "StreamJob",
    "StreamSubscriber",
    "Subscriber",
    "TailConfig",
    "TopFeature",
    "build_query",
    "build_session",
    "follow",
    "redact_url",
    "tail",
]

_EXPORTS = {
    "SCHEMA_VERSION": "stream.contract",
    "AlertEvent": "stream.contract",
    "AlertPolicy": "stream.alerts",
    "Delivery": "stream.subscribe",
    "FleetSummary": "stream.contract",
    "FollowConfig": "stream.subscribe",
    "JobMetrics": "stream.contract",
    "Keys": "stream.contract",
    "PubSubSubscriber": "stream.subscribe",
    "RedisAlertSink": "stream.sink",
    "RedisConfig": "stream.redis_config",
    "ScoredWindow": "stream.alerts",
    "SparkConfig": "stream.session",
    "StreamConfig": "stream.config",
    "StreamError": "stream.errors",
    "StreamJob": "stream.job",
    "StreamSubscriber": "stream.subscribe",
    "Subscriber": "stream.subscribe",
    "TailConfig": "stream.subscribe",
    "TopFeature": "stream.contract",
    "build_query": "stream.job",
    "build_session": "stream.session",
    "follow": "stream.subscribe",
    "redact_url": "stream.redis_config",
    "tail": "stream.subscribe",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import stream` (and `prognos --help`) stays cheap.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

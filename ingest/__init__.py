"""Prognos ingest: the reading schema and codecs, validation and the dead-letter topic,
Kafka producers and consumers, and replay of recorded data.

A :class:`Reading` travels as schema-v1 JSON (:func:`encode`, :func:`decode`), keyed by
device; :class:`ReadingProducer` validates each one (:func:`validate`) and sends it, or
sends what breaks a rule to the dead-letter topic with the reason in headers. Recordings
are read by a :class:`Source` (:func:`open_source`), mapped by a :class:`ColumnMapping`
and replayed with :func:`replay_file`. :class:`KafkaConfig` says where and how to connect;
:func:`ensure_topics` creates the topics before first use.

Example:

    >>> from datetime import UTC, datetime
    >>> import ingest
    >>> reading = ingest.Reading("pump-1", datetime(2026, 1, 1, tzinfo=UTC), 0, {"vibration": 2.5})
    >>> ingest.decode(ingest.encode(reading)) == reading
    True
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "FORMATS",
    "Catalogue",
    "ColumnMapping",
    "IngestError",
    "KafkaConfig",
    "Reading",
    "ReadingProducer",
    "ReplayOptions",
    "Source",
    "Violation",
    "decode",
    "encode",
    "ensure_topics",
    "kafka_answers",
    "load_catalogue",
    "open_source",
    "publish",
    "read_readings",
    "replay_file",
    "validate",
]

_EXPORTS = {
    "FORMATS": "ingest.sources",
    "Catalogue": "ingest.catalogue",
    "ColumnMapping": "ingest.columns",
    "IngestError": "ingest.errors",
    "KafkaConfig": "ingest.config",
    "Reading": "ingest.schema",
    "ReadingProducer": "ingest.producer",
    "ReplayOptions": "ingest.replay",
    "Source": "ingest.sources",
    "Violation": "ingest.validation",
    "decode": "ingest.codec",
    "encode": "ingest.codec",
    "ensure_topics": "ingest.admin",
    "kafka_answers": "ingest.admin",
    "load_catalogue": "ingest.catalogue",
    "open_source": "ingest.sources",
    "publish": "ingest.publish",
    "read_readings": "ingest.consumer",
    "replay_file": "ingest.replay",
    "validate": "ingest.validation",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import ingest` (and `prognos --help`) stays cheap.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

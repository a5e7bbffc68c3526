"""The reading: one sensor sample of one device, and its wire format (schema version 1).

A reading is defined once, here, by :data:`FIELDS`; the JSON codec (:mod:`ingest.codec`),
the validator (:mod:`ingest.validation`) and the Spark schema (:func:`spark_schema`) are all
derived from that table, so they cannot drift apart.

Wire format (Kafka message value), compact UTF-8 JSON, one reading per message::

    {"v":1,"d":"pump-0001","t":"2026-01-01T00:00:00.000Z","s":12,
     "x":{"vibration":2.31,"bearing_temp":61.4,"pressure":null},
     "o":{"load":0.8},"m":{"type":"pump"}}

=====  ==========  ========================================================  ========
key    field       meaning                                                   required
=====  ==========  ========================================================  ========
``v``  version     schema version, an integer; this module writes ``1``      yes
``d``  device_id   the device (machine) id, a non-empty string               yes
``t``  event_time  when the sample was taken: ISO-8601 in UTC with           yes
                   millisecond precision and a ``Z`` suffix
                   (``2026-01-01T00:00:00.000Z``); no other offset is accepted
``s``  seq         per-device sequence number, an integer >= 0, increasing   yes
``x``  sensors     sensor name -> number; ``null`` marks a dropout           yes
``o``  settings    operating setting name -> number (load, regime...)        no
``m``  metadata    string -> string (machine type, source file...)           no
=====  ==========  ========================================================  ========

Optional maps are left out when empty. Keys not in this table are refused, so a message
of a future version must change ``v``. The Kafka message key is the device id (UTF-8), so
all readings of a device land in one partition, in order.

Event times are truncated to the millisecond on the wire. Spark parses the payload with
``from_json(value, spark_schema())``: ``t`` becomes a ``TimestampType`` (the ``Z`` makes it
unambiguous whatever the session time zone), ``x`` and ``o`` become
``map<string,double>`` and ``m`` ``map<string,string>``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from ingest.errors import InvalidReadingError

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

logger = logging.getLogger(__name__)

__all__ = ["FIELDS", "SCHEMA_VERSION", "FieldSpec", "Reading", "field_by_key", "spark_schema"]

SCHEMA_VERSION: Final = 1
"""The version this code writes (``"v"``); :func:`ingest.codec.decode` accepts only it."""

Kind = Literal["int", "long", "string", "timestamp", "map<double>", "map<string>"]


@dataclass(frozen=True)
class FieldSpec:
    """One field of the wire format.

    Attributes:
        key: the JSON key on the wire.
        attr: the :class:`Reading` attribute (``""`` for the version, which is not one).
        kind: the value's kind; decides the JSON check and the Spark type.
        required: whether a message without it is refused.
        doc: one line for humans.
    """

    key: str
    attr: str
    kind: Kind
    required: bool
    doc: str


FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("v", "", "int", True, "schema version"),
    FieldSpec("d", "device_id", "string", True, "device id"),
    FieldSpec("t", "event_time", "timestamp", True, "event time, ISO-8601 UTC with Z, ms"),
    FieldSpec("s", "seq", "long", True, "per-device sequence number"),
    FieldSpec("x", "sensors", "map<double>", True, "sensor values by name; null = dropout"),
    FieldSpec("o", "settings", "map<double>", False, "operating settings by name"),
    FieldSpec("m", "metadata", "map<string>", False, "free-form string metadata"),
)

_BY_KEY: Final = {f.key: f for f in FIELDS}


def field_by_key(key: str) -> FieldSpec | None:
    """The field with wire key ``key``, or None."""
    return _BY_KEY.get(key)


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample of a device's sensors.

    Readings compare by value. ``event_time`` must be timezone-aware; it is converted to
    UTC. The maps are plain dicts for speed: do not mutate them after construction.

    Args:
        device_id: the machine's id, the Kafka key.
        event_time: when the sample was taken (timezone-aware; stored in UTC).
        seq: per-device sequence number, >= 0 and increasing.
        sensors: sensor name -> value; ``None`` means the sensor gave no value (dropout).
        settings: operating settings (regime, load...), optional.
        metadata: free-form strings (machine type, source), optional.

    Raises:
        InvalidReadingError: ``event_time`` is naive or not a datetime.

    >>> from datetime import datetime, UTC
    >>> Reading("pump-0001", datetime(2026, 1, 1, tzinfo=UTC), 0, {"vibration": 1.5}).seq
    0
    """

    device_id: str
    event_time: datetime
    seq: int
    sensors: dict[str, float | None]
    settings: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.event_time
        if not isinstance(t, datetime):
            raise InvalidReadingError(f"event_time must be a datetime, got {type(t).__name__}")
        if t.tzinfo is not UTC:
            if t.tzinfo is None or t.utcoffset() is None:
                raise InvalidReadingError(
                    f"event_time {t.isoformat()} of {self.device_id!r} is naive; give it a time zone "
                    "(e.g. datetime(..., tzinfo=UTC))"
                )
            object.__setattr__(self, "event_time", t.astimezone(UTC))


_SPARK_TYPES: Final = {
    "int": "IntegerType",
    "long": "LongType",
    "string": "StringType",
    "timestamp": "TimestampType",
}


def spark_schema() -> StructType:
    """The Spark schema of the JSON payload, for ``from_json(value, spark_schema())``.

    Derived from :data:`FIELDS`; pyspark is imported only when this is called. Fields are
    nullable in Spark (a missing optional map is null); required fields are enforced by
    :mod:`ingest.validation` before a message reaches the topic.

    Returns:
        A ``StructType`` with the wire keys as column names.
    """
    from pyspark.sql import types as T

    columns: list[Any] = []
    for spec in FIELDS:
        dtype: Any
        if spec.kind == "map<double>":
            dtype = T.MapType(T.StringType(), T.DoubleType(), valueContainsNull=True)
        elif spec.kind == "map<string>":
            dtype = T.MapType(T.StringType(), T.StringType(), valueContainsNull=True)
        else:
            dtype = getattr(T, _SPARK_TYPES[spec.kind])()
        columns.append(
            T.StructField(spec.key, dtype, nullable=True, metadata={"comment": spec.doc})
        )
    return T.StructType(columns)

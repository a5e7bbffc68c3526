"""Codecs between :class:`~ingest.schema.Reading` and Kafka message bytes.

The format is the compact JSON described in :mod:`ingest.schema`. :func:`encode` refuses
non-finite numbers (JSON has none, and Spark would read them as null); the dead-letter
path uses ``encode(reading, allow_nan=True)`` to keep such a reading's content readable.
:func:`decode` checks everything about the format (size, JSON, version, required keys,
types, UTC time) and raises :class:`~ingest.errors.DecodeError` naming the field and rule;
range checks belong to :mod:`ingest.validation`.

>>> from datetime import datetime, UTC
>>> from ingest.schema import Reading
>>> r = Reading("pump-0001", datetime(2026, 1, 1, tzinfo=UTC), 7, {"vibration": 2.5, "speed": None})
>>> encode(r)
b'{"v":1,"d":"pump-0001","t":"2026-01-01T00:00:00.000Z","s":7,"x":{"vibration":2.5,"speed":null}}'
>>> decode(encode(r)) == r
True
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any, Final

from ingest.errors import DecodeError, EncodeError
from ingest.schema import FIELDS, SCHEMA_VERSION, Reading, field_by_key

logger = logging.getLogger(__name__)

__all__ = ["MAX_MESSAGE_BYTES", "decode", "encode", "format_time", "key_of", "parse_time"]

MAX_MESSAGE_BYTES: Final = 64 * 1024
"""Largest message :func:`decode` accepts, and the size limit of :mod:`ingest.validation`."""

_strict = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_lenient = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode
_REQUIRED: Final = tuple(f.key for f in FIELDS if f.required)


_last_time: tuple[datetime, str] | None = None


def format_time(t: datetime) -> str:
    """``t`` (UTC-aware) as the wire's ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    global _last_time
    last = _last_time
    # A fleet's readings of one step share their time: remember the last one formatted.
    if last is not None and last[0] == t:
        return last[1]
    utc = t if t.tzinfo is UTC else t.astimezone(UTC)
    text = utc.isoformat(timespec="milliseconds")[:-6] + "Z"
    _last_time = (t, text)
    return text


def parse_time(text: str) -> datetime:
    """Parse a wire time; only a UTC ``Z`` suffix is accepted.

    Raises:
        ValueError: not ISO-8601, or not marked as UTC with ``Z``.
    """
    if not text.endswith("Z"):
        raise ValueError("must end with Z (UTC)")
    t = datetime.fromisoformat(text)
    if t.utcoffset() is None or t.utcoffset().total_seconds() != 0:  # type: ignore[union-attr]
        raise ValueError("must be UTC")
    return t.replace(tzinfo=UTC)


def key_of(reading: Reading) -> bytes:
    """The Kafka message key of ``reading``: its device id in UTF-8."""
    return reading.device_id.encode()


def encode(reading: Reading, *, allow_nan: bool = False) -> bytes:
    """Encode ``reading`` as compact UTF-8 JSON.

    Args:
        reading: the reading.
        allow_nan: write NaN/Infinity as the non-standard JSON tokens (dead letters only).

    Raises:
        EncodeError: a sensor or setting is not finite (unless ``allow_nan``) or a value
            is of a type JSON cannot hold.
    """
    doc: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "d": reading.device_id,
        "t": format_time(reading.event_time),
        "s": reading.seq,
        "x": reading.sensors,
    }
    if reading.settings:
        doc["o"] = reading.settings
    if reading.metadata:
        doc["m"] = reading.metadata
    try:
        return (_lenient if allow_nan else _strict)(doc).encode()
    except (ValueError, TypeError) as exc:
        raise _encode_error(reading, exc) from None


def _encode_error(reading: Reading, exc: Exception) -> EncodeError:
    for key, values in (("x", reading.sensors), ("o", reading.settings)):
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                return EncodeError(f"{key}.{name}", "finite", f"{value} is not a finite number")
    return EncodeError("payload", "type", f"cannot be written as JSON: {exc}")


def _fail(field: str, rule: str, message: str) -> DecodeError:
    return DecodeError(field, rule, message)


def _number_map(key: str, value: object, allow_null: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(key, "type", f"must be an object of numbers, got {type(value).__name__}")
    for name, item in value.items():
        if item is None:
            if not allow_null:
                raise _fail(f"{key}.{name}", "type", "must be a number, got null")
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise _fail(f"{key}.{name}", "type", f"must be a number, got {type(item).__name__}")
        elif isinstance(item, int):
            value[name] = float(item)
    return value


def decode(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Reading:
    """Decode message bytes into a :class:`Reading`.

    Args:
        data: a Kafka message value.
        max_bytes: refuse larger messages before parsing them.

    Raises:
        DecodeError: the bytes break a rule of the format; ``field`` and ``rule`` say which.
    """
    if len(data) > max_bytes:
        raise _fail("payload", "size", f"{len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        # Decode explicitly: json.loads(bytes) would also accept UTF-16 and UTF-32.
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail("payload", "utf8", f"not UTF-8: {exc.reason}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise _fail("payload", "json", f"not JSON: {exc}") from None
    except RecursionError:
        # Deeply nested arrays or objects exhaust json's recursion limit (found by fuzzing).
        raise _fail("payload", "json", "not JSON: nested too deeply") from None
    if "\\u" in text:
        # Valid UTF-8 cannot hold a lone surrogate, but a \u escape can make one; such a
        # string cannot be written back as UTF-8 (found by fuzzing).
        try:
            _lenient(doc).encode()
        except UnicodeEncodeError:
            raise _fail(
                "payload", "utf8", "a \\u escape makes a lone surrogate, which is not Unicode text"
            ) from None
    if not isinstance(doc, dict):
        raise _fail("payload", "object", f"must be a JSON object, got {type(doc).__name__}")
    for key in _REQUIRED:
        if key not in doc:
            raise _fail(key, "required", f"missing ({field_by_key(key).doc})")  # type: ignore[union-attr]
    for key in doc:
        if field_by_key(key) is None:
            # An empty key would leave the error (and the dead letter's header) without a field.
            raise _fail(
                key or "payload",
                "unknown-field",
                f"{key!r} is not a field of schema version {SCHEMA_VERSION}",
            )
    version = doc["v"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise _fail(
            "v",
            "version",
            f"{version!r} is not a supported version (this reader: {SCHEMA_VERSION})",
        )
    device = doc["d"]
    if not isinstance(device, str):
        raise _fail("d", "type", f"must be a string, got {type(device).__name__}")
    t = doc["t"]
    if not isinstance(t, str):
        raise _fail("t", "type", f"must be an ISO-8601 UTC string, got {type(t).__name__}")
    try:
        event_time = parse_time(t)
    except ValueError as exc:
        raise _fail("t", "timestamp", f"{t!r} is not YYYY-MM-DDTHH:MM:SS.mmmZ: {exc}") from None
    seq = doc["s"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise _fail("s", "type", f"must be an integer, got {type(seq).__name__}")
    sensors = _number_map("x", doc["x"], allow_null=True)
    settings = _number_map("o", doc.get("o", {}), allow_null=False)
    metadata = doc.get("m", {})
    if not isinstance(metadata, dict):
        raise _fail("m", "type", f"must be an object of strings, got {type(metadata).__name__}")
    for name, item in metadata.items():
        if not isinstance(item, str):
            raise _fail(f"m.{name}", "type", f"must be a string, got {type(item).__name__}")
    return Reading(device, event_time, seq, sensors, settings, metadata)

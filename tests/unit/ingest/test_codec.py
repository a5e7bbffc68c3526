"""The reading schema and its JSON codec: round trip, compactness, every decode rule."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.codec import decode, encode, format_time
from ingest.errors import DecodeError, EncodeError, InvalidReadingError
from ingest.schema import FIELDS, SCHEMA_VERSION, Reading, spark_schema

T0 = datetime(2026, 1, 1, tzinfo=UTC)

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False)
times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
readings = st.builds(
    Reading,
    device_id=names,
    event_time=times,
    seq=st.integers(0, 2**62),
    sensors=st.dictionaries(names, st.none() | finite, min_size=1, max_size=10),
    settings=st.dictionaries(names, finite, max_size=4),
    metadata=st.dictionaries(names, st.text(max_size=30), max_size=4),
)


@given(readings)
@settings(max_examples=300)
def test_round_trip_is_exact(reading: Reading) -> None:
    assert decode(encode(reading)) == reading


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_decode_of_arbitrary_bytes_returns_a_reading_or_raises_decode_error(data: bytes) -> None:
    try:
        decode(data)
    except DecodeError as exc:
        assert exc.field and exc.rule


@given(
    st.dictionaries(
        st.sampled_from(["v", "d", "t", "s", "x", "o", "m", "z"]),
        st.none() | st.integers() | st.text() | finite | st.dictionaries(st.text(), st.integers()),
    )
)
def test_decode_of_arbitrary_objects_never_crashes(doc: dict[str, object]) -> None:
    with contextlib.suppress(DecodeError):
        decode(json.dumps(doc).encode())


def test_wire_format_is_compact_versioned_and_documented_keys() -> None:
    r = Reading(
        "pump-0001",
        T0 + timedelta(milliseconds=5),
        12,
        {"vibration": 0.12, "speed": None},
        {"load": 0.8},
        {"type": "pump"},
    )
    data = encode(r)
    assert data == (
        b'{"v":1,"d":"pump-0001","t":"2026-01-01T00:00:00.005Z","s":12,'
        b'"x":{"vibration":0.12,"speed":null},"o":{"load":0.8},"m":{"type":"pump"}}'
    )
    assert json.loads(data)["v"] == SCHEMA_VERSION


def test_empty_optional_maps_are_left_out() -> None:
    assert set(json.loads(encode(Reading("a", T0, 0, {"s1": 1.0})))) == {"v", "d", "t", "s", "x"}


def test_time_is_truncated_to_milliseconds_and_always_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    r = Reading("a", datetime(2026, 1, 1, 2, 0, 0, 123456, tzinfo=plus2), 0, {"s1": 1.0})
    assert r.event_time.tzinfo is UTC
    assert format_time(r.event_time) == "2026-01-01T00:00:00.123Z"


def test_naive_time_is_refused() -> None:
    with pytest.raises(InvalidReadingError, match="naive"):
        Reading("a", datetime(2026, 1, 1), 0, {"s1": 1.0})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_not_encoded_but_can_be_dead_lettered(value: float) -> None:
    r = Reading("a", T0, 0, {"vibration": value})
    with pytest.raises(EncodeError) as info:
        encode(r)
    assert (info.value.field, info.value.rule) == ("x.vibration", "finite")
    assert b'"vibration":' in encode(r, allow_nan=True)


GOOD = {"v": 1, "d": "a", "t": "2026-01-01T00:00:00.000Z", "s": 1, "x": {"s1": 1.0}}


def _with(**changes: object) -> bytes:
    doc = {**GOOD, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not _DROP}).encode()


_DROP = object()


@pytest.mark.parametrize(
    ("data", "field", "rule"),
    [
        (b"\xff\xfe", "payload", "utf8"),
        (b"{not json", "payload", "json"),
        (b"[1,2]", "payload", "object"),
        (b"x" * 70_000, "payload", "size"),
        (_with(d=_DROP), "d", "required"),
        (_with(x=_DROP), "x", "required"),
        (_with(v=2), "v", "version"),
        (_with(v=True), "v", "version"),
        (_with(d=5), "d", "type"),
        (_with(t=1767225600000), "t", "type"),
        (_with(t="2026-01-01T00:00:00.000"), "t", "timestamp"),
        (_with(t="2026-01-01T00:00:00.000+02:00"), "t", "timestamp"),
        (_with(t="yesterday Z"), "t", "timestamp"),
        (_with(s="1"), "s", "type"),
        (_with(s=1.5), "s", "type"),
        (_with(x=[1]), "x", "type"),
        (_with(x={"s1": "1.0"}), "x.s1", "type"),
        (_with(x={"s1": True}), "x.s1", "type"),
        (_with(o={"load": None}), "o.load", "type"),
        (_with(m={"k": 1}), "m.k", "type"),
        (_with(extra=1), "extra", "unknown-field"),
    ],
)
def test_decode_names_field_and_rule(data: bytes, field: str, rule: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert (info.value.field, info.value.rule) == (field, rule)
    assert field in str(info.value) and rule in str(info.value)


def test_integers_decode_as_floats() -> None:
    r = decode(_with(x={"s1": 3}, o={"load": 1}))
    assert r.sensors == {"s1": 3.0} and isinstance(r.sensors["s1"], float)
    assert r.settings == {"load": 1.0}


def test_spark_schema_is_derived_from_the_field_table() -> None:
    pytest.importorskip("pyspark")
    from pyspark.sql import types as T

    schema = spark_schema()
    assert schema.names == [f.key for f in FIELDS]
    assert schema["t"].dataType == T.TimestampType()
    assert schema["s"].dataType == T.LongType()
    assert schema["x"].dataType == T.MapType(T.StringType(), T.DoubleType(), True)
    assert schema["m"].dataType == T.MapType(T.StringType(), T.StringType(), True)


def test_public_api() -> None:
    import ingest.codec
    import ingest.schema

    for module in (ingest.schema, ingest.codec):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"

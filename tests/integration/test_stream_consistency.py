"""The stream job agrees with the Python definitions it reuses.

Validation rules come from :mod:`ingest.validation` (each rule object gives its Python and
its Spark SQL form) and are evaluated by Spark SQL in the JVM; these tests run the same
payloads through both, with the default catalogue and with catalogues that refuse unknown
names, and compare the verdicts and the messages. Window features are
computed in the stream's stateful operator by :mod:`models.features` itself; a streaming
run over C-MAPSS (with dropouts and duplicates, over several micro-batches) checks the
operator's windows and sequences against that definition.
"""

from __future__ import annotations

import math
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.sql import functions as F

from ingest.catalogue import Catalogue, SensorRule, default_catalogue, shipped_catalogue
from ingest.codec import decode
from ingest.errors import IngestError
from ingest.validation import validate
from models.features import FeatureSpec, NormStats, compute_window_features, normalise
from stream.parse import clock_limit, error_column, parse, passes_every_rule, with_json
from stream.sequence import LAST_WINDOW_DTYPE, SEQUENCE_DTYPE, slice_of, unpack_slice

T = "2026-01-01T00:00:00.000Z"
PAYLOADS = [
    b'{"v":1,"d":"pump-0001","t":"'
    + T.encode()
    + b'","s":12,"x":{"vibration":2.31,"bearing_temp":61.4,"pressure":null},"o":{"load":0.8},"m":{"type":"pump"}}',
    b'{"v":1,"d":"FD001-001","t":"'
    + T.encode()
    + b'","s":1,"x":{"s2":642.1,"s3":1589.7},"o":{"setting1":0.0}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","s":12,"x":{"vibration":250.0}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","s":12,"x":{"vibration":NaN}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","s":12,"x":{"vibration":-Infinity}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","x":{"vibration":1.0}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","s":1,"x":{"vibration":1.0},"zz":1}',
    b"not json at all",
    b"[1, 2, 3]",
    b'{"v":2,"d":"pump-0001","t":"' + T.encode() + b'","s":1,"x":{"vibration":1.0}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","s":1,"x":{"vibration":"high"}}',
    b'{"v":1,"d":"pump-0001","t":"'
    + T.encode()
    + b'","s":1,"x":{"vibration":1.0},"o":{"load":null}}',
    b'{"v":1,"d":"","t":"' + T.encode() + b'","s":1,"x":{"vibration":1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"new_sensor":5e10}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"new_sensor":12.5}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":-4,"x":{"s2":600.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"bad name!":1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":600.0},"o":{"setting3":500.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":600.0},"m":{"site":"north"}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":' + b"1" * 70000 + b"}}",
    # the first offending entry in the reading's order; names; settings
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":600.0,"ok_1":1.0,"b@d":1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"":1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"' + b"n" * 65 + b'":1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"a":1.0,"b":-2e9,"c":3e9}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0,"vibration":-1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0},"o":{"setting1":NaN}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0},"o":{"zz":2e9}}',
    # metadata: names, null values, value length (1024 characters at most)
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0},"m":{"a b":"x"}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0},"m":{"k":null}}',
    b'{"v":1,"d":"e1","t":"'
    + T.encode()
    + b'","s":1,"x":{"s2":642.0},"m":{"k":"'
    + b"v" * 1025
    + b'"}}',
    b'{"v":1,"d":"e1","t":"'
    + T.encode()
    + b'","s":1,"x":{"s2":642.0},"m":{"k":"'
    + b"v" * 1024
    + b'"}}',
    # a required field's JSON null: refused as the codec refuses it (the job once passed
    # them, and a null device id or sequence number failed the batch on every restart)
    b'{"v":null,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0}}',
    b'{"v":1,"d":null,"t":"' + T.encode() + b'","s":1,"x":{"s2":642.0}}',
    b'{"v":1,"d":"e1","t":null,"s":1,"x":{"s2":642.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":null,"x":{"s2":642.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":null}',
]


#: (Python's verdict, Spark's) pairs that name the same fault differently: known, not yet
#: aligned (the stream job's dead-letter headers carry Spark's names).
NAMED_DIFFERENTLY = {
    (("payload", "object"), ("payload", "json")),  # valid JSON that is not an object
    (("x.vibration", "type"), ("x", "type")),  # Spark names the map, not the entry
    (("o.load", "type"), ("o.load", "required")),  # a setting without a value
}


#: A catalogue that refuses unknown names, with a declared range wider than the generic
#: bound (the fast path's ``within | all declared`` branch) and a setting.
STRICT = Catalogue(
    sensors=(
        *shipped_catalogue("cmapss").sensors,
        SensorRule("vibration", "mm/s", 0.0, 100.0),
        SensorRule("counter", "count", 0.0, 5e12),
    ),
    settings=shipped_catalogue("cmapss").settings,
    unknown="dead-letter",
    origin="strict.toml",
)
#: The default catalogue, but refusing unknown names.
DEFAULT_STRICT = Catalogue(
    sensors=default_catalogue().sensors,
    settings=default_catalogue().settings,
    unknown="dead-letter",
    origin="default-strict.toml",
)
CATALOGUES = {"default": None, "strict": STRICT, "default-strict": DEFAULT_STRICT}

STRICT_PAYLOADS = [
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0,"counter":4e12}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0,"counter":6e12}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0,"counter":-1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0,"other":1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0,"other":null}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"other":NaN,"s2":642.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0},"o":{"zz":1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":642.0,"s3":1e4,"new":1.0}}',
]


def _python_verdict(payload: bytes, catalogue: Catalogue | None = None) -> tuple[str, str] | None:
    first = _python_first(payload, catalogue)
    return None if first is None else first[:2]


def _python_first(
    payload: bytes, catalogue: Catalogue | None = None
) -> tuple[str, str, str] | None:
    """(field, rule, message) of the first violation the producers see, or None."""
    try:
        reading = decode(payload)
    except IngestError as exc:
        return (getattr(exc, "field", "payload"), getattr(exc, "rule", "?"), str(exc))
    violations = validate(reading, catalogue)
    return (violations[0].field, violations[0].rule, violations[0].message) if violations else None


@pytest.mark.parametrize("name", CATALOGUES)
def test_spark_and_python_agree_on_valid_and_invalid(spark: Any, name: str) -> None:
    """The same verdict, and for a rule of :mod:`ingest.validation` the same message: each
    is written once, in the rule object both forms come from."""
    catalogue = CATALOGUES[name]
    payloads = PAYLOADS + STRICT_PAYLOADS
    rows = [(b"k", p, "t", 0, i) for i, p in enumerate(payloads)]
    df = spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long"
    )
    errors = {
        r.offset: r.error
        for r in parse(df, catalogue=catalogue).select("offset", "error").collect()
    }
    disagreements = []
    messages = 0
    for i, payload in enumerate(payloads):
        first = _python_first(payload, catalogue)
        expected = None if first is None else first[:2]
        error = errors[i]
        got = None if error is None else (error.field, error.rule)
        if expected != got and (expected, got) not in NAMED_DIFFERENTLY:
            disagreements.append((payload[:80], expected, got))
        elif first is not None and error is not None and expected == got:
            try:
                decode(payload)
            except IngestError:
                continue  # the codec's own messages, not a rule of ingest.validation
            messages += 1
            if first[2] != error.reason:
                disagreements.append((payload[:80], first[2], error.reason))
    assert not disagreements, disagreements
    valid = [p for p in payloads if _python_verdict(p, catalogue) is None]
    assert len(valid) >= 3  # the corpus has valid readings, not only broken ones
    assert messages >= 15


def test_the_catalogue_in_force_decides(spark: Any) -> None:
    df = spark.createDataFrame(
        [(b"k", p, "t", 0, i) for i, p in enumerate(STRICT_PAYLOADS)],
        "key binary, value binary, topic string, partition int, offset long",
    )
    got = {
        r.offset: None if r.error is None else (r.error.field, r.error.rule)
        for r in parse(df, catalogue=STRICT).select("offset", "error").collect()
    }
    assert got == {
        0: None,  # 4e12 is in the declared range, beyond the generic bound
        1: ("x.counter", "range"),
        2: ("x.counter", "range"),
        3: ("x.other", "unknown"),
        4: None,  # an undeclared sensor without a value
        5: ("x.other", "finite"),
        6: ("o.zz", "unknown"),
        7: ("x.new", "unknown"),  # the first rule broken (unknown, before range) decides
    }
    names = parse(df, catalogue=STRICT).schema["known_sensors"].metadata["prognos.known_sensors"]
    assert names == sorted(s.name for s in STRICT.sensors)


def _mutants(count: int, seed: int) -> list[bytes]:
    """Valid C-MAPSS-like readings and ``count`` variants each broken (or not) in one way,
    at the edges of the rules: bounds, names, nulls, types, keys, counts, NaN tokens."""
    import json
    import random

    rng = random.Random(seed)
    ok = {
        "v": 1,
        "d": "FD001-001",
        "t": T,
        "s": 3,
        "x": {f"s{i}": v for i, v in enumerate([518.67, 642.1, 1589.7, 1400.6, 14.62], 1)},
        "o": {"setting1": 0.0007, "setting2": -0.0004, "setting3": 100.0},
        "m": {"source": "cmapss"},
    }
    values: list[Any] = [
        0.0,
        -1.0,
        1e9,
        -1e9,
        1e9 + 1,
        -2e9,
        400.0,
        399.999,
        600.0,
        600.001,
        float("nan"),
        float("inf"),
        float("-inf"),
        None,
        "high",
        "NaN",
        True,
    ]
    names = ["", "n" * 64, "n" * 65, "a b", "s1,s2", "b@d", "new_sensor", "s2", "x.y:z/w-1"]

    def one() -> dict[str, Any]:
        r = json.loads(json.dumps(ok))
        kind = rng.randrange(12)
        if kind == 0:
            r["x"][rng.choice(list(r["x"]))] = rng.choice(values)
        elif kind == 1:
            r["x"][rng.choice(names)] = rng.choice([*values, 12.5, 12.5])
        elif kind == 2:
            r["o"][rng.choice(list(r["o"]) + names)] = rng.choice(values)
        elif kind == 3:
            r.pop(rng.choice(list(r)))
        elif kind == 4:
            r[rng.choice(["zz", "V", "sensors"])] = 1
        elif kind == 5:
            r[rng.choice(list(r))] = rng.choice([*values, {}, [], "", " "])
        elif kind == 6:
            r["d"] = rng.choice(["", "  ", "d" * 128, "d" * 129, "pump 1"])
        elif kind == 7:
            r["s"] = rng.choice([-1, 0, 2**40, 1.5])
        elif kind == 8:
            r["x"] = {f"k{i}": 1.0 for i in range(rng.choice([0, 256, 257]))}
        elif kind == 9:
            r["o"] = {f"k{i}": 1.0 for i in range(rng.choice([32, 33]))}
        elif kind == 10:
            r["m"] = {f"k{i}": "v" for i in range(rng.choice([0, 2, 32, 33]))}
            r["m"][rng.choice(names)] = rng.choice([None, "", "v" * 1024, "v" * 1025, "w"])
        else:
            r["t"] = rng.choice(["2099-01-01T00:00:00Z", "yesterday", T])
        return r

    out = [json.dumps(ok).encode()]
    for _ in range(count):
        text = json.dumps(one())  # NaN and Infinity are written as bare tokens
        if rng.random() < 0.05:
            text = text.replace('"v": 1', '"v": 1, "v": 1')  # a repeated key
        out.append(text.encode())
    return out


@pytest.mark.parametrize("name", CATALOGUES)
def test_fast_path_agrees_with_the_rules(spark: Any, name: str) -> None:
    """The compiled fast path (:func:`stream.parse.passes_every_rule`) passes only what the
    rules accept: the error column with and without it is the same on every payload, and it
    does pass the plain valid readings (else it would save nothing)."""
    catalogue = CATALOGUES[name]
    payloads = PAYLOADS + STRICT_PAYLOADS + _mutants(600, seed=11)
    df = spark.createDataFrame(
        [(b"k", p, "t", 0, i) for i, p in enumerate(payloads)],
        "key binary, value binary, topic string, partition int, offset long",
    )
    rows = (
        with_json(df, catalogue)
        .select(
            "offset",
            error_column(86_400.0, fast_path=True, catalogue=catalogue).alias("fast"),
            error_column(86_400.0, fast_path=False, catalogue=catalogue).alias("rules"),
            passes_every_rule(86_400.0, catalogue).alias("passes"),
        )
        .collect()
    )
    assert len(rows) == len(payloads)
    differ = [(payloads[r.offset][:120], r.fast, r.rules) for r in rows if r.fast != r.rules]
    assert not differ, differ
    wrongly_passed = [payloads[r.offset][:120] for r in rows if r.passes and r.rules is not None]
    assert not wrongly_passed, wrongly_passed
    valid = [r for r in rows if r.rules is None]
    invalid = [r for r in rows if r.rules is not None]
    assert len(valid) > 40 and len(invalid) > 300  # the corpus covers both
    plain = {r.offset: r for r in rows}[len(PAYLOADS) + len(STRICT_PAYLOADS)]
    assert plain.rules is None and plain.passes  # the plain C-MAPSS reading of the mutants
    assert sum(r.passes for r in valid) / len(valid) > 0.8, "the fast path passes few"


def _null_like(value: Any) -> bool:
    """``null``, or a bare ``NaN`` / ``Infinity`` token, which Spark's path reader does not
    parse: what the job reads as an absent map."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _known_leniency(payload: bytes) -> bool:
    """A reading the stream job may accept where the producers refuse it, by design
    (docs/readings.md, the known differences): a device id that is not a string (Spark
    reads its JSON text), ``o`` or ``m`` null or a bare NaN (read as absent), a top-level key
    repeated with different values (the two parsers may keep different ones)."""
    import json

    pairs: list[list[tuple[str, Any]]] = []
    try:
        doc = json.loads(payload, object_pairs_hook=lambda kv: pairs.append(kv) or dict(kv))
    except ValueError:
        return False
    if not isinstance(doc, dict):
        return False
    top = pairs[-1]  # the outermost object is built last
    seen: dict[str, Any] = {}
    repeated = False
    for key, value in top:
        if key in seen and json.dumps(seen[key]) != json.dumps(value):
            repeated = True
        seen.setdefault(key, value)
    null_maps = any(k in doc and _null_like(doc[k]) for k in ("o", "m"))
    odd_device = "d" in doc and doc["d"] is not None and not isinstance(doc["d"], str)
    return repeated or null_maps or odd_device


@pytest.mark.parametrize("name", CATALOGUES)
def test_spark_and_python_accept_the_same_random_readings(spark: Any, name: str) -> None:
    """Over 1,500 readings broken at random (nulls, types, bounds, names, keys, counts), the
    stream job accepts exactly what the producers accept, but for its known leniencies (the
    job accepting what they refuse, never the other way). The corpus above names each
    rule's verdict; this checks acceptance, and found the required fields' null."""
    catalogue = CATALOGUES[name]
    payloads = _mutants(1500, seed=23)
    df = spark.createDataFrame(
        [(b"k", p, "t", 0, i) for i, p in enumerate(payloads)],
        "key binary, value binary, topic string, partition int, offset long",
    )
    # The producers' rules here run without a clock: so does the job's, near enough.
    no_clock = 100 * 365 * 86_400.0
    errors = {r.offset: r.error for r in parse(df, no_clock, catalogue).select("offset", "error").collect()}  # fmt: skip
    differ = []
    for i, payload in enumerate(payloads):
        python = _python_verdict(payload, catalogue)
        error = errors[i]
        if python is not None and error is None and _known_leniency(payload):
            continue
        if (python is None) != (error is None):
            differ.append((payload[:100], python, error and (error.field, error.rule)))
    assert not differ, differ
    refused = sum(e is not None for e in errors.values())
    assert 300 < refused < len(payloads) - 40  # the corpus has both, many of each


def test_a_map_named_by_the_known_sensors_is_told_by_position(spark: Any) -> None:
    """:meth:`Entries.only`: true only when every entry of the map is one of the allowed
    known names and has a value, read from the values by position (no pattern)."""
    from ingest.validation import Entries

    names = ("a", "b", "c")
    # map, then the verdict with every name allowed and with "a" and "b" only
    maps = [
        ({"a": 1.0, "b": 2.0}, True, True),
        ({"a": 1.0, "c": 2.0}, True, False),  # "c" known, but not allowed in the second
        ({"a": 1.0, "z": 2.0}, False, False),  # a name not known
        ({"a": 1.0, "b": None}, False, False),  # a known name without a value (a dropout)
        ({}, True, True),
    ]
    df = spark.createDataFrame(
        [(i, m) for i, (m, _, _) in enumerate(maps)], "i int, x map<string,double>"
    )
    entries = Entries(F.col("x"), F.array(*[F.col("x")[n] for n in names]), names)
    assert Entries(F.col("x")).only(lambda n: True) is None  # nothing read by position
    rows = df.select(
        "i",
        entries.only(lambda n: True).alias("every"),
        entries.only(lambda n: n != "c").alias("ab"),
    ).collect()
    assert [(r["every"], r["ab"]) for r in sorted(rows)] == [(e, ab) for _, e, ab in maps]


def test_clock_skew_rule(spark: Any) -> None:
    future = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    payload = b'{"v":1,"d":"e1","t":"' + future.encode() + b'","s":1,"x":{"s2":600.0}}'
    df = spark.createDataFrame(
        [(b"k", payload, "t", 0, 0)],
        "key binary, value binary, topic string, partition int, offset long",
    )
    error = parse(df, max_future_skew_s=3600).collect()[0].error
    assert (error.field, error.rule) == ("t", "clock-skew")


def test_clock_limit_is_the_clock_plus_the_skew_rounded_up_to_a_tenth(spark: Any) -> None:
    # The clock is read in the job (not current_timestamp(), whose per-batch constant made
    # Spark compile the validation anew in every batch) and rounded up to skew / 10.
    soon = (datetime.now(UTC) + timedelta(seconds=3600 - 60)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    payload = b'{"v":1,"d":"e1","t":"' + soon.encode() + b'","s":1,"x":{"s2":600.0}}'
    df = spark.createDataFrame(
        [(b"k", payload, "t", 0, 0)],
        "key binary, value binary, topic string, partition int, offset long",
    )
    before_ms = time.time() * 1000
    limit_ms = with_json(df).select(F.unix_millis(clock_limit(3600))).collect()[0][0]
    after_ms = time.time() * 1000
    assert before_ms + 3_600_000 - 1000 <= limit_ms <= after_ms + 3_600_000 + 360_000 + 1000
    assert limit_ms % 360_000 == 0  # rounded to the step: the same in many batches
    assert parse(df, max_future_skew_s=3600).collect()[0].error is None


def _cmapss_rows(
    cmapss_dir: Path, units: int
) -> list[tuple[str, datetime, int, dict[str, float | None]]]:
    table = np.loadtxt(cmapss_dir / "train_FD001.txt")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    rng = np.random.default_rng(7)
    for row in table[table[:, 0] <= units]:
        sensors: dict[str, float | None] = {f"s{i}": float(row[4 + i]) for i in range(1, 22)}
        if rng.random() < 0.05:
            sensors["s2"] = None  # dropouts: statistics must skip them the same way
        rows.append(
            (
                f"FD001-{int(row[0]):03d}",
                base + timedelta(minutes=10 * int(row[1])),
                int(row[1]),
                sensors,
            )
        )
    return rows


def _stream_sequences(
    spark: Any,
    rows: list[Any],
    spec: FeatureSpec,
    norm: NormStats,
    folder: Path,
    known: str = "",
    ttl_ms: int | None = None,
) -> list[Any]:
    """Rows through :func:`stream.sequence.sequences` as a streaming query, a file a batch;
    with ``known`` (a catalogue name), with the ``known_sensors`` column the parse adds for
    that catalogue (sensors read by position, its names in the column's metadata), else
    from the map only."""
    import json

    from stream.parse import known_sensor_values
    from stream.sequence import sequences

    source = folder / "in"
    source.mkdir()
    per_file = max(1, len(rows) // 6)
    for i in range(0, len(rows), per_file):
        path = source / f"part-{i:06d}.json"
        with path.open("w") as out:
            for device, t, seq, sensors in rows[i : i + per_file]:
                record = {"device_id": device, "event_time": t.isoformat(), "seq": seq}
                out.write(json.dumps({**record, "sensors": sensors}) + "\n")
        # Spark's file source takes files oldest first: a file a second, in this order.
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
    readings = (
        spark.readStream.schema(
            "device_id string, event_time timestamp, seq long, sensors map<string,double>"
        )
        .option("maxFilesPerTrigger", 1)
        .json(str(source))
        .withColumn("settings", F.create_map().cast("map<string,double>"))
        .withWatermark("event_time", f"{int(spec.window_seconds * 1000)} milliseconds")
    )
    if known:
        readings = readings.withColumn(
            "known_sensors", known_sensor_values(F.col("sensors"), KNOWN[known])
        )
    got: list[Any] = []
    query = (
        sequences(readings, spec, norm, ttl_ms=ttl_ms)
        .writeStream.foreachBatch(lambda batch, _id: got.extend(batch.collect()))
        .option("checkpointLocation", str(folder / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(300)
    assert not query.isActive and query.exception() is None
    return got


#: Catalogues whose sensors the parse reads by position: all of the model's, or some.
KNOWN = {
    "default": default_catalogue(),
    "some": Catalogue(
        sensors=tuple(s for s in STRICT.sensors if s.name in ("s3", "s11", "counter"))
    ),
}


@pytest.mark.parametrize(
    "known", ["", "default", "some"], ids=["map", "known-sensors", "some-known"]
)
def test_stream_sequences_match_the_numpy_definition(
    spark: Any, cmapss_dir: Path, tmp_path: Path, known: str
) -> None:
    """Windows, dropouts, duplicates and micro-batch boundaries, checked against the
    function the model was trained with (:func:`models.features.compute_window_features`),
    with the sensors looked up in the map and read by position from ``known_sensors``."""
    spec = FeatureSpec(
        sensors=("s2", "s3", "s4", "s7", "s11", "s21"),
        window_seconds=3000.0,
        sequence_length=3,
        horizon_windows=6,
    )
    rows = sorted(_cmapss_rows(cmapss_dir, units=3), key=lambda r: (r[1], r[0]))  # as replayed
    noisy = [r for i, r in enumerate(rows) for _ in range(2 if i % 4 == 0 else 1)]
    norm = NormStats(mean=tuple(range(spec.n_features)), scale=(3.0,) * spec.n_features, clip=1e6)
    got = {
        (r.device_id, r.window_end_ms): (
            np.frombuffer(r.sequence, SEQUENCE_DTYPE),
            np.frombuffer(r.last_window, LAST_WINDOW_DTYPE),
        )
        for r in _stream_sequences(spark, noisy, spec, norm, tmp_path, known)
    }
    assert len(got) > 100

    watermark_ms = max(t for _, t, _, _ in rows).timestamp() * 1000 - spec.window_seconds * 1000
    windows: dict[str, dict[int, list[Any]]] = {}
    for device, t, _seq, sensors in rows:
        end = int((spec.window_index([t.timestamp()])[0] + 1) * spec.window_seconds * 1000)
        windows.setdefault(device, {}).setdefault(end, []).append(
            (t.timestamp(), [np.nan if sensors[s] is None else sensors[s] for s in spec.sensors])
        )
    expected: dict[tuple[str, int], np.ndarray] = {}
    k = spec.sequence_length
    for device, by_end in windows.items():
        ends = sorted(e for e in by_end if e <= watermark_ms)
        vectors = [
            compute_window_features(spec, [t for t, _ in by_end[e]], [v for _, v in by_end[e]])
            for e in ends
        ]
        for i in range(k - 1, len(ends)):
            expected[(device, ends[i])] = np.stack(vectors[i - k + 1 : i + 1])
    assert set(got) == set(expected)
    for key, windows in expected.items():
        sequence, last = got[key]
        # The model's input: the same function, the same float32 values.
        np.testing.assert_array_equal(sequence, normalise(windows, norm).reshape(-1), str(key))
        # The newest window's raw features (the alert's top features), NaN where missing.
        want = windows[-1]
        assert np.array_equal(np.isnan(want), np.isnan(last)), key
        mask = ~np.isnan(want)
        np.testing.assert_allclose(last[mask], want[mask], rtol=1e-12, err_msg=str(key))


def test_a_silent_device_is_closed_by_its_buckets_timer_and_forgotten_after_its_ttl(
    spark: Any, tmp_path: Path
) -> None:
    """Through Spark's own timers and map state: a device that stops reporting has its open
    window closed once the watermark (moved by another device) passes it, and its state is
    dropped once it has been silent for the time to live; the busy device keeps its own."""
    spec = FeatureSpec(sensors=("s2",), window_seconds=3000.0, sequence_length=1, horizon_windows=1)
    norm = NormStats(mean=(0.0,) * spec.n_features, scale=(1.0,) * spec.n_features, clip=1e6)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [("quiet", base, 1, {"s2": 5.0})]
    rows += [("busy", base + timedelta(minutes=10 * i), i, {"s2": float(i)}) for i in range(60)]
    window_ms = 3_000_000
    got = _stream_sequences(spark, rows, spec, norm, tmp_path, ttl_ms=2 * window_ms)
    quiet = [r for r in got if r["device_id"] == "quiet"]
    start_ms = int(base.timestamp() * 1000)
    assert [r["window_end_ms"] for r in quiet] == [(start_ms // window_ms + 1) * window_ms]
    assert quiet[0]["n_readings"] == 1
    state = (
        spark.read.format("statestore")
        .option("path", str(tmp_path / "checkpoint"))
        .option("stateVarName", "slices")
        .load()
    )
    slices = {
        row["user_map_key"]["slice"]: unpack_slice(row["user_map_value"]["states"])
        for row in state.select("user_map_key", "user_map_value").collect()
    }
    assert all(devices for devices in slices.values())  # an emptied slice is removed
    assert all(slice_of(d) == part for part, devices in slices.items() for d in devices)
    kept = {device for devices in slices.values() for device in devices}
    assert kept == {"busy"}

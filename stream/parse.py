"""Parse and validate readings in Spark SQL, with the schema and rules of :mod:`ingest`.

Everything here runs in the JVM: ``from_json`` with :func:`ingest.schema.spark_schema`,
and the range, finiteness, size and required-field rules of :mod:`ingest.validation`
(exported by :func:`ingest.validation.rules_as_dict`) turned into SQL expressions. A row
that breaks a rule gets an ``error`` struct (``field``, ``rule``, ``reason``), the first
broken rule in the order below; rows without one are valid readings. The rules over
sensors and settings need higher-order functions, which Spark runs interpreted; a compiled
fast path (:func:`passes_every_rule`) first passes the readings that break no rule, so only
the others pay for them.

Order of checks: size, JSON object, unknown top-level keys, required keys, each field's
type, version, device id, sequence number, sensors (count, names, finite, range),
settings (names, required value, finite, range), metadata (count, names, null values,
value length), clock skew.

The clock-skew rule (documented in docs/readings.md): a reading whose event time is more than
``max_future_skew_s`` ahead of the job's clock is refused (``t``, ``clock-skew``); readings
from the past are accepted and the watermark decides whether they are too late. The clock
is rounded up to steps (:func:`clock_limit`), so a reading up to one step (a tenth of the
limit, at most an hour) beyond it may pass. Unknown devices are accepted: every device id
that passes the rules is tracked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_NAME_PATTERN = "^[A-Za-z0-9_.:/-]{1,64}$"


def _bounds_map(table: dict[str, dict[str, Any]], which: str) -> Column:
    from pyspark.sql import functions as F

    names = sorted(table)
    return F.map_from_arrays(
        F.array(*[F.lit(n) for n in names]),
        F.array(*[F.lit(float(table[n][which])) for n in names]),
    )


def clock_limit(max_future_skew_s: float) -> Column:
    """The latest event time the clock-skew rule accepts: the job's clock plus the limit.

    The clock is the ``_clock_ms`` column of :func:`with_json` (the JVM's clock, read per
    row in a projection of its own), rounded up to a step of a tenth of the limit, at least
    1 s and at most an hour. ``current_timestamp()`` is not used: in a streaming query
    Spark writes each batch's time into the generated code as a constant, and the whole
    validation was compiled anew in every batch of both queries (0.1-0.7 s a batch on 2
    cores). Rounding up never refuses a reading the exact rule accepts; a reading at most
    one step beyond the limit may pass, and the two queries (which read the clock at
    different times) agree except across a step boundary.
    """
    from pyspark.sql import functions as F

    step_ms = int(max(1.0, min(3600.0, max_future_skew_s / 10)) * 1000)
    steps = F.floor(F.col("_clock_ms") / F.lit(step_ms)) + F.lit(1)
    limit: Column = F.timestamp_millis(
        steps * F.lit(step_ms) + F.lit(int(max_future_skew_s * 1000))
    )
    return limit


def _non_finite(v: Any) -> Column:
    from pyspark.sql import functions as F

    result: Column = F.isnan(v) | (v == F.lit(float("inf"))) | (v == F.lit(float("-inf")))
    return result


def _out_of_range(lows: Column, highs: Column, bound: float) -> Any:
    from pyspark.sql import functions as F

    def predicate(e: Column) -> Column:
        low = F.coalesce(lows[e["key"]], F.lit(-bound))
        high = F.coalesce(highs[e["key"]], F.lit(bound))
        return e["value"].isNotNull() & ((e["value"] < low) | (e["value"] > high))

    return predicate


def error_column(max_future_skew_s: float, fast_path: bool = True) -> Column:
    """The ``error`` struct of a row with the columns of :func:`with_json`.

    Args:
        max_future_skew_s: the clock-skew rule's limit.
        fast_path: pass readings that :func:`passes_every_rule` accepts without running
            the rules (the same result, checked by the tests, at a fraction of the cost).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from ingest.schema import FIELDS, SCHEMA_VERSION, spark_schema
    from ingest.validation import rules_as_dict

    rules = rules_as_dict()
    limits = rules["limits"]
    bound = float(limits["generic_bound"])
    schema = spark_schema()
    text = F.col("value").cast("string")
    keys = F.col("_keys")
    p = F.col("p")
    allowed = F.array(*[F.lit(f.key) for f in FIELDS])

    checks: list[tuple[Column, Column, str, Column]] = []

    def check(cond: Column, field: Column | str, rule: str, reason: Column | str) -> None:
        checks.append(
            (
                cond,
                F.lit(field) if isinstance(field, str) else field,
                rule,
                F.lit(reason) if isinstance(reason, str) else reason,
            )
        )

    size = F.octet_length(F.col("value"))
    check(
        size > limits["max_message_bytes"],
        "payload",
        "size",
        F.format_string(f"%d bytes exceeds the limit of {limits['max_message_bytes']}", size),
    )
    check(keys.isNull(), "payload", "json", "not a JSON object")
    unknown = F.array_except(keys, allowed)
    check(
        F.size(unknown) > 0,
        unknown[0],
        "unknown-field",  # the codec's name (ingest.codec) for the same fault
        F.format_string("unknown field %s; schema version 1 has v, d, t, s, x, o, m", unknown[0]),
    )
    for f in FIELDS:
        if f.required:
            check(
                ~F.array_contains(keys, f.key),
                f.key,
                "required",
                f"missing field {f.key} ({f.doc})",
            )
    for f in FIELDS:
        alone = F.from_json(text, StructType([schema[f.key]]))[f.key]
        present = F.get_json_object(text, f"$.{f.key}").isNotNull()
        check(
            p[f.key].isNull() & present & alone.isNull(),
            f.key,
            "type",
            f"{f.key} has the wrong type ({f.kind})",
        )
    check(
        p["v"] != SCHEMA_VERSION,
        "v",
        "version",
        F.format_string(
            f"schema version %d is not supported (this job reads {SCHEMA_VERSION})", p["v"]
        ),
    )
    check(F.trim(p["d"]) == "", "d", "required", "device id must be a non-empty string")
    check(
        F.length(p["d"]) > limits["max_device_id"],
        "d",
        "length",
        F.format_string(f"%d characters exceeds {limits['max_device_id']}", F.length(p["d"])),
    )
    check(p["s"] < 0, "s", "range", F.format_string("%d is negative", p["s"]))

    x = p["x"]
    check(F.size(x) == 0, "x", "required", "a reading needs at least one sensor")
    check(
        F.size(x) > limits["max_sensors"],
        "x",
        "count",
        F.format_string(f"%d sensors exceeds {limits['max_sensors']}", F.size(x)),
    )
    for key, values, allow_null, table in (
        ("x", x, True, rules["sensors"]),
        ("o", p["o"], False, rules["settings"]),
    ):
        entries = F.map_entries(F.coalesce(values, F.create_map().cast("map<string,double>")))
        lows, highs = _bounds_map(table, "low"), _bounds_map(table, "high")
        bad_name = F.filter(entries, lambda e: ~e["key"].rlike(_NAME_PATTERN))
        check(
            F.size(bad_name) > 0,
            F.concat(F.lit(f"{key}."), bad_name[0]["key"]),
            "name",
            "name is not 1-64 of [A-Za-z0-9_.:/-]",
        )
        if not allow_null:
            nulls = F.filter(entries, lambda e: e["value"].isNull())
            check(
                F.size(nulls) > 0,
                F.concat(F.lit(f"{key}."), nulls[0]["key"]),
                "required",
                "must have a value",
            )
        non_finite = F.filter(entries, lambda e: e["value"].isNotNull() & _non_finite(e["value"]))
        check(
            F.size(non_finite) > 0,
            F.concat(F.lit(f"{key}."), non_finite[0]["key"]),
            "finite",
            F.format_string("%s is not a finite number", non_finite[0]["value"].cast("string")),
        )

        bad = F.filter(entries, _out_of_range(lows, highs, bound))
        first = bad[0]
        check(
            F.size(bad) > 0,
            F.concat(F.lit(f"{key}."), first["key"]),
            "range",
            F.format_string(
                "%s is outside [%s, %s]",
                first["value"].cast("string"),
                F.coalesce(lows[first["key"]], F.lit(-bound)).cast("string"),
                F.coalesce(highs[first["key"]], F.lit(bound)).cast("string"),
            ),
        )
    check(
        F.size(F.coalesce(p["o"], F.create_map().cast("map<string,double>")))
        > limits["max_settings"],
        "o",
        "count",
        f"more than {limits['max_settings']} settings",
    )
    metadata = _metadata(p)
    check(
        F.size(metadata) > limits["max_metadata"],
        "m",
        "count",
        f"more than {limits['max_metadata']} metadata entries",
    )
    meta = F.map_entries(metadata)
    bad_name = F.filter(meta, lambda e: ~e["key"].rlike(_NAME_PATTERN))
    check(
        F.size(bad_name) > 0,
        F.concat(F.lit("m."), bad_name[0]["key"]),
        "name",
        "name is not 1-64 of [A-Za-z0-9_.:/-]",
    )
    nulls = F.filter(meta, lambda e: e["value"].isNull())
    check(
        F.size(nulls) > 0,
        F.concat(F.lit("m."), nulls[0]["key"]),
        "type",
        "must be a string, got null",
    )
    too_long = F.filter(meta, lambda e: F.length(e["value"]) > limits["max_metadata_value"])
    check(
        F.size(too_long) > 0,
        F.concat(F.lit("m."), too_long[0]["key"]),
        "length",
        F.format_string(
            f"%d characters exceeds {limits['max_metadata_value']}",
            F.length(too_long[0]["value"]),
        ),
    )
    check(
        p["t"] > clock_limit(max_future_skew_s),
        "t",
        "clock-skew",
        F.format_string(
            f"event time %s is more than {max_future_skew_s:g}s ahead of the job's clock",
            p["t"].cast("string"),
        ),
    )

    result = F.lit(None).cast("struct<field:string,rule:string,reason:string>")
    for cond, field, rule, reason in reversed(checks):
        result = F.when(
            F.coalesce(cond, F.lit(False)),
            F.struct(field.alias("field"), F.lit(rule).alias("rule"), reason.alias("reason")),
        ).otherwise(result)
    if not fast_path:
        return result
    # The rules above walk every sensor with higher-order functions, which Spark evaluates
    # interpreted, row by row and entry by entry. Most readings are valid: the fast path
    # passes them with compiled expressions, and only the others go through the rules.
    return F.when(~passes_every_rule(max_future_skew_s), result)


def _metadata(p: Column) -> Column:
    """The reading's metadata map; empty when absent or null."""
    from pyspark.sql import functions as F

    return F.coalesce(p["m"], F.create_map().cast("map<string,string>"))


def _names_pass(values: Column) -> Column:
    """True only when every key of a non-empty map is a valid name."""
    from pyspark.sql import functions as F

    joined = F.array_join(F.map_keys(values), ",")
    # "," is not a name character, so splitting the joined names at "," gives the names back
    # exactly when there are size - 1 commas; then one pattern checks them all.
    commas = F.length(joined) - F.length(F.regexp_replace(joined, ",", ""))
    one = _NAME_PATTERN[1:-1]
    return (commas == F.size(values) - 1) & joined.rlike(f"^{one}(,{one})*$")


def _no_nulls(values: Column) -> Column:
    """True when an array has no null element: joined without and with a replacement for
    nulls, the two texts are as long."""
    from pyspark.sql import functions as F

    as_text = values.cast("array<string>")
    return F.length(F.array_join(as_text, "")) == F.length(F.array_join(as_text, "", "#"))


def _entries_pass(
    values: Column,
    table: dict[str, dict[str, Any]],
    bound: float,
    known: Column | None = None,
) -> Column:
    """True only when every entry of a sensor or setting map has a valid name and a finite
    value within its bound (the table's for a known name, ``±bound`` for any value).

    ``known``, when given, is the array of the map's values for the table's names in sorted
    order (see :func:`known_sensor_names`), read by position instead of looking each name up
    in the map again.
    """
    from pyspark.sql import functions as F

    cond = _names_pass(values)
    vals = F.map_values(values)
    # array_min/array_max skip nulls and order NaN above +inf, so these also refuse NaN and
    # infinities; a map of only nulls gives null, which is not a pass.
    cond = cond & (F.array_min(vals) >= -bound) & (F.array_max(vals) <= bound)
    for i, (name, limits) in enumerate(sorted(table.items())):
        value = values[name] if known is None else known[i]
        cond = cond & (value.isNull() | value.between(float(limits["low"]), float(limits["high"])))
    return cond


def known_sensor_names() -> tuple[str, ...]:
    """The sensor names with a range rule, sorted: the order of the ``known_sensors`` column
    of :func:`parse` (and ``_known`` of :func:`with_json`)."""
    from ingest.validation import rules_as_dict

    return tuple(sorted(rules_as_dict()["sensors"]))


def known_sensor_values(sensors: Column) -> Column:
    """The values of :func:`known_sensor_names` in a sensor map, as an array (null where
    absent): each name looked up once, to be read by position after."""
    from pyspark.sql import functions as F

    values: Column = F.array(*[sensors[name] for name in known_sensor_names()])
    return values


def passes_every_rule(max_future_skew_s: float) -> Column:
    """True only for a reading that every rule of :func:`error_column` accepts, tested with
    compiled, lambda-free expressions (for rows with the columns of :func:`with_json`).

    False (never null) for a few valid readings too, which the rules then accept: every
    sensor null, a repeated top-level key, ``"o": null`` or ``"m": null``, metadata values
    longer together than the limit for one.
    """
    from pyspark.sql import functions as F

    from ingest.schema import FIELDS, SCHEMA_VERSION
    from ingest.validation import rules_as_dict

    rules = rules_as_dict()
    limits = rules["limits"]
    bound = float(limits["generic_bound"])
    keys = F.col("_keys")
    p = F.col("p")
    empty = F.create_map().cast("map<string,double>")
    known = sum(F.array_contains(keys, f.key).cast("int") for f in FIELDS)
    cond = (F.octet_length(F.col("value")) <= limits["max_message_bytes"]) & (known == F.size(keys))
    for f in FIELDS:
        present = F.array_contains(keys, f.key)
        cond = cond & (
            present & p[f.key].isNotNull() if f.required else ~present | p[f.key].isNotNull()
        )
    x, o = p["x"], F.coalesce(p["o"], empty)
    m = _metadata(p)
    meta = F.map_values(m)
    cond = (
        cond
        & (p["v"] == SCHEMA_VERSION)
        & (F.trim(p["d"]) != "")
        & (F.length(p["d"]) <= limits["max_device_id"])
        & (p["s"] >= 0)
        & (F.size(x) >= 1)
        & (F.size(x) <= limits["max_sensors"])
        & _entries_pass(x, rules["sensors"], bound, F.col("_known"))
        & (F.size(o) <= limits["max_settings"])
        & _no_nulls(F.map_values(o))
        & ((F.size(o) == 0) | _entries_pass(o, rules["settings"], bound))
        & (F.size(m) <= limits["max_metadata"])
        & ((F.size(m) == 0) | _names_pass(m))
        & _no_nulls(meta)
        # the values together no longer than the limit for one
        & (F.length(F.array_join(meta, "")) <= limits["max_metadata_value"])
        & (p["t"] <= clock_limit(max_future_skew_s))
    )
    return F.coalesce(cond, F.lit(False))


def parse(raw: DataFrame, max_future_skew_s: float = 86_400.0) -> DataFrame:
    """Parse Kafka rows into readings, each with its ``error`` struct (null when valid).

    Args:
        raw: rows of Spark's Kafka source (``key``, ``value``, ``topic``, ``partition``,
            ``offset``, ``timestamp``).
        max_future_skew_s: the clock-skew rule's limit.

    Returns:
        The Kafka columns plus ``device_id``, ``event_time``, ``seq``, ``sensors``,
        ``settings``, ``known_sensors`` (the values of :func:`known_sensor_names`, null
        where absent) and ``error``.
    """
    from pyspark.sql import functions as F

    return with_json(raw).select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        F.col("p.d").alias("device_id"),
        F.col("p.t").alias("event_time"),
        F.col("p.s").alias("seq"),
        F.col("p.x").alias("sensors"),
        F.col("p.o").alias("settings"),
        F.col("_known").alias("known_sensors"),
        error_column(max_future_skew_s).alias("error"),
    )


def with_json(raw: DataFrame) -> DataFrame:
    """``raw`` plus ``_clock_ms`` (the job's clock), ``_keys`` (the top-level keys), ``p``
    (the reading's struct) and ``_known`` (the sensors of :func:`known_sensor_names`), the
    columns :func:`error_column` reads."""
    from pyspark.sql import functions as F

    from ingest.schema import spark_schema

    text = F.col("value").cast("string")
    # The clock for the clock-skew rule (see clock_limit): a reflective call Spark does not
    # fold into a constant. Non-deterministic, so it stays in this projection of its own
    # and the validation's generated code is the same in every batch.
    clock = F.call_function("reflect", F.lit("java.lang.System"), F.lit("currentTimeMillis"))
    return (
        raw.select("*", clock.cast("long").alias("_clock_ms"))
        .select(
            "*",
            # Top-level keys. json_object_keys skips values instead of parsing them, but refuses
            # NaN/Infinity tokens: for those (and for what is not an object) the map parse
            # decides, so such a value is refused by the finite rule with its field named.
            F.coalesce(
                F.json_object_keys(text), F.map_keys(F.from_json(text, "map<string,string>"))
            ).alias("_keys"),
            F.from_json(text, spark_schema()).alias("p"),
        )
        .select(
            "*",
            # Each lookup of a name in a map scans its keys, building a string for each: the
            # range rules and the window operator's input looked up about a hundred names per
            # reading, the JVM's hottest code. Looked up once here, in a projection of its own,
            # they are read by position after it.
            known_sensor_values(F.col("p.x")).alias("_known"),
        )
    )


def dead_letter_records(rows: DataFrame) -> DataFrame:
    """The dead letters among ``rows`` (the job's output: the dead-letter columns of
    :func:`stream.sequence.route`) as Kafka records for the dead-letter topic: original key
    and bytes, the reason in headers (the names of :mod:`ingest.deadletter`)."""
    from pyspark.sql import functions as F

    from ingest.deadletter import HEADER_FIELD, HEADER_REASON, HEADER_RULE, HEADER_SOURCE

    def header(name: str, value: Column) -> Column:
        return F.struct(
            F.lit(name).alias("key"), F.coalesce(value, F.lit("")).cast("binary").alias("value")
        )

    return rows.where(F.col("dl_rule").isNotNull()).select(
        F.col("dl_key").alias("key"),
        F.col("dl_value").alias("value"),
        F.array(
            header(HEADER_FIELD, F.col("dl_field")),
            header(HEADER_RULE, F.col("dl_rule")),
            header(HEADER_REASON, F.concat_ws(": ", F.col("dl_field"), F.col("dl_reason"))),
            header(HEADER_SOURCE, F.col("dl_source")),
        ).alias("headers"),
    )

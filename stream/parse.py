"""Parse and validate readings in Spark SQL, with the schema and rules of :mod:`ingest`.

Everything here runs in the JVM: ``from_json`` with :func:`ingest.schema.spark_schema`,
the wire format's own checks (JSON object, known keys, required keys, each field's type,
version), the rules of the catalogue in force (:class:`ingest.validation.Rules`: each rule
object gives its Spark SQL form, the same object whose Python form the producers apply,
with one message template), and the job's clock-skew rule. A row that breaks a rule gets
an ``error`` struct (``field``, ``rule``, ``reason``), the first broken rule in the order
below; rows without one are valid readings. The rules over sensors and settings need
higher-order functions, which Spark runs interpreted; a compiled fast path
(:func:`passes_every_rule`, built from the rules' compiled forms) first passes the
readings that break no rule, so only the others pay for them.

Order of checks: size, JSON object, unknown top-level keys, required keys, each field's
type, version, then the catalogue's rules (device id, sequence number, sensors: required,
count, names, finite, unknown, range; settings: count, names, required value, finite,
unknown, range; metadata: count, names, null values, value length), clock skew.

The clock-skew rule (documented in docs/readings.md): a reading whose event time is more than
``max_future_skew_s`` ahead of the job's clock is refused (``t``, ``clock-skew``); readings
from the past are accepted and the watermark decides whether they are too late. The clock
is rounded up to steps (:func:`clock_limit`), so a reading up to one step (a tenth of the
limit, at most an hour) beyond it may pass. Unknown devices are accepted: every device id
that passes the rules is tracked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.sql import Column, DataFrame

    from ingest.catalogue import Catalogue
    from ingest.validation import SparkCheck

#: The metadata key of the ``known_sensors`` column that lists its names, in order.
KNOWN_SENSORS_KEY = "prognos.known_sensors"


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


def error_column(
    max_future_skew_s: float, fast_path: bool = True, catalogue: Catalogue | None = None
) -> Column:
    """The ``error`` struct of a row with the columns of :func:`with_json`.

    Args:
        max_future_skew_s: the clock-skew rule's limit.
        fast_path: pass readings that :func:`passes_every_rule` accepts without running
            the rules (the same result, checked by the tests, at a fraction of the cost).
        catalogue: the catalogue in force (None: the default catalogue); the same one as
            :func:`with_json`'s.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from ingest.schema import FIELDS, SCHEMA_VERSION, spark_schema
    from ingest.validation import SparkCheck, rules_for

    rules = rules_for(catalogue)
    schema = spark_schema()
    text = F.col("value").cast("string")
    keys = F.col("_keys")
    p = F.col("p")
    allowed = F.array(*[F.lit(f.key) for f in FIELDS])

    def check(cond: Column, field: Column | str, rule: str, reason: Column | str) -> SparkCheck:
        return SparkCheck(
            cond,
            F.lit(field) if isinstance(field, str) else field,
            rule,
            F.lit(reason) if isinstance(reason, str) else reason,
        )

    # The wire format's own checks (the codec's, ingest.codec, for the producers).
    unknown = F.array_except(keys, allowed)
    checks = [
        rules.size.check(F.col("value")),
        check(keys.isNull(), "payload", "json", "not a JSON object"),
        check(
            F.size(unknown) > 0,
            unknown[0],
            "unknown-field",  # the codec's name (ingest.codec) for the same fault
            F.format_string(
                "unknown field %s; schema version 1 has v, d, t, s, x, o, m", unknown[0]
            ),
        ),
    ]
    checks += [
        check(~F.array_contains(keys, f.key), f.key, "required", f"missing field {f.key} ({f.doc})")
        for f in FIELDS
        if f.required
    ]
    for f in FIELDS:
        alone = F.from_json(text, StructType([schema[f.key]]))[f.key]
        # A required field's JSON null is the wrong type, as the codec says (a null device
        # id or sequence number in a window failed the batch, again on every restart); the
        # version's is refused by the version check below. An optional field's null
        # reads as absent.
        if f.required and f.key != "v":
            present = F.array_contains(keys, f.key)
        else:
            present = F.get_json_object(text, f"$.{f.key}").isNotNull()
        checks.append(
            check(
                p[f.key].isNull() & present & alone.isNull(),
                f.key,
                "type",
                f"{f.key} has the wrong type ({f.kind})",
            )
        )
    checks.append(
        check(
            p["v"].isNull() | (p["v"] != SCHEMA_VERSION),
            "v",
            "version",
            F.format_string(
                f"schema version %d is not supported (this job reads {SCHEMA_VERSION})", p["v"]
            ),
        )
    )
    # The catalogue's rules: the same objects the producers validate with.
    checks += rules.spark_checks(p)
    checks.append(
        check(
            p["t"] > clock_limit(max_future_skew_s),
            "t",
            "clock-skew",
            F.format_string(
                f"event time %s is more than {max_future_skew_s:g}s ahead of the job's clock",
                p["t"].cast("string"),
            ),
        )
    )

    result = F.lit(None).cast("struct<field:string,rule:string,reason:string>")
    for c in reversed(checks):
        result = F.when(
            F.coalesce(c.broken, F.lit(False)),
            F.struct(c.field.alias("field"), F.lit(c.rule).alias("rule"), c.reason.alias("reason")),
        ).otherwise(result)
    if not fast_path:
        return result
    # The rules above walk every sensor with higher-order functions, which Spark evaluates
    # interpreted, row by row and entry by entry. Most readings are valid: the fast path
    # passes them with compiled expressions, and only the others go through the rules.
    return F.when(~passes_every_rule(max_future_skew_s, catalogue), result)


def _metadata(p: Column) -> Column:
    """The reading's metadata map; empty when absent or null."""
    from pyspark.sql import functions as F

    return F.coalesce(p["m"], F.create_map().cast("map<string,string>"))


def known_sensor_names(catalogue: Catalogue | None = None) -> tuple[str, ...]:
    """The sensor names of ``catalogue`` (None: the default), sorted: the order of the
    ``known_sensors`` column of :func:`parse` (and ``_known`` of :func:`with_json`)."""
    from ingest.validation import rules_for

    return rules_for(catalogue).sensor_names


def known_sensor_values(sensors: Column, catalogue: Catalogue | None = None) -> Column:
    """The values of :func:`known_sensor_names` in a sensor map, as an array (null where
    absent): each name looked up once, to be read by position after. Its names travel in
    the column's metadata (:data:`KNOWN_SENSORS_KEY`), see :func:`known_names_of`."""
    names = known_sensor_names(catalogue)
    values: Column = _values_of(sensors, names).alias(
        "known_sensors", metadata={KNOWN_SENSORS_KEY: list(names)}
    )
    return values


def _values_of(entries: Column, names: Sequence[str]) -> Column:
    """The values of ``names`` in a map of numbers, as an array of doubles (null where
    absent)."""
    from pyspark.sql import functions as F

    values: Column = F.array(*[entries[name] for name in names]).cast("array<double>")
    return values


def known_names_of(frame: DataFrame, column: str = "known_sensors") -> tuple[str, ...]:
    """The names of ``frame``'s known-sensors column, in order (from its metadata; the
    default catalogue's for a column without them)."""
    metadata = frame.schema[column].metadata if column in frame.columns else {}
    names = metadata.get(KNOWN_SENSORS_KEY)
    return tuple(names) if names is not None else known_sensor_names()


def passes_every_rule(max_future_skew_s: float, catalogue: Catalogue | None = None) -> Column:
    """True only for a reading that every rule of :func:`error_column` accepts, tested with
    compiled, lambda-free expressions (for rows with the columns of :func:`with_json`).

    The catalogue's part comes from its rules' compiled forms
    (:meth:`ingest.validation.Rules.spark_passes`). False (never null) for a few valid
    readings too, which the rules then accept: every sensor null, a repeated top-level
    key, ``"o": null`` or ``"m": null``, metadata values longer together than the limit
    for one, an undeclared sensor that is null when the catalogue refuses unknown names,
    a value beyond ``generic_bound`` in a declared range wider than it.
    """
    from pyspark.sql import functions as F

    from ingest.schema import FIELDS, SCHEMA_VERSION
    from ingest.validation import rules_for

    rules = rules_for(catalogue)
    keys = F.col("_keys")
    p = F.col("p")
    known = sum(F.array_contains(keys, f.key).cast("int") for f in FIELDS)
    cond = ~rules.size.check(F.col("value")).broken & (known == F.size(keys))
    for f in FIELDS:
        present = F.array_contains(keys, f.key)
        cond = cond & (
            present & p[f.key].isNotNull() if f.required else ~present | p[f.key].isNotNull()
        )
    cond = (
        cond
        & (p["v"] == SCHEMA_VERSION)
        & rules.spark_passes(p, F.col("_known"), F.col("_known_settings"))
        & (p["t"] <= clock_limit(max_future_skew_s))
    )
    return F.coalesce(cond, F.lit(False))


def parse(
    raw: DataFrame, max_future_skew_s: float = 86_400.0, catalogue: Catalogue | None = None
) -> DataFrame:
    """Parse Kafka rows into readings, each with its ``error`` struct (null when valid).

    Args:
        raw: rows of Spark's Kafka source (``key``, ``value``, ``topic``, ``partition``,
            ``offset``, ``timestamp``).
        max_future_skew_s: the clock-skew rule's limit.
        catalogue: the catalogue whose rules apply (None: the default catalogue).

    Returns:
        The Kafka columns plus ``device_id``, ``event_time``, ``seq``, ``sensors``,
        ``settings``, ``known_sensors`` (the values of the catalogue's sensors, null where
        absent; their names in the column's metadata, see :func:`known_names_of`) and
        ``error``.
    """
    from pyspark.sql import functions as F

    names = known_sensor_names(catalogue)
    return with_json(raw, catalogue).select(
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
        F.col("_known").alias("known_sensors", metadata={KNOWN_SENSORS_KEY: list(names)}),
        error_column(max_future_skew_s, catalogue=catalogue).alias("error"),
    )


def with_json(raw: DataFrame, catalogue: Catalogue | None = None) -> DataFrame:
    """``raw`` plus ``_clock_ms`` (the job's clock), ``_keys`` (the top-level keys), ``p``
    (the reading's struct), ``_known`` (the sensors of :func:`known_sensor_names` of
    ``catalogue``) and ``_known_settings`` (its settings' values, sorted by name), the
    columns :func:`error_column` reads."""
    from pyspark.sql import functions as F

    from ingest.schema import spark_schema
    from ingest.validation import rules_for

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
            known_sensor_values(F.col("p.x"), catalogue).alias(
                "_known", metadata={KNOWN_SENSORS_KEY: list(known_sensor_names(catalogue))}
            ),
            # The settings' values too, for the validation's fast path (by position).
            _values_of(F.col("p.o"), rules_for(catalogue).setting_names).alias("_known_settings"),
        )
    )

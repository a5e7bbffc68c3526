"""Validation of readings: the rules, each written once, in Python and in Spark SQL.

A rule is an object with a name (the ``rule`` of a :class:`Violation` and of the
dead-letter headers), one message template, and two forms of the same test: ``broken``
judges a value in Python (the producers, :func:`validate`) and ``column`` builds the Spark
SQL expression the stream job evaluates (:mod:`stream.parse`). A rule over the entries of
a map (sensors, settings, metadata) also has ``passes``: a compiled, lambda-free
expression that is true only when no entry breaks it, from which the stream job's fast
path is built (Spark runs the per-entry form, a higher-order function, interpreted).
:class:`Rules` instantiates the rules for a :class:`~ingest.catalogue.Catalogue` (its
ranges, limits and unknown-name policy) and applies them.

**Messages** are printf templates (``%s``, ``%d``) filled in Python with ``%`` and in
Spark with ``format_string`` (Java's formatter) from the values each form returns, so a
message reads the same from both. Numbers are written as the JVM writes a double
(:func:`number_text`: ``250.0``, ``5.0E10``, ``NaN``).

The rules, in the order they are checked (the ``rule`` name in brackets):

* ``d`` (device id) is a non-empty string [required] of at most ``max_device_id``
  characters [length]; ``s`` (seq) is an integer [type] >= 0 [range].
* ``x`` has at least one sensor [required] and at most ``max_sensors`` [count]; ``o`` at
  most ``max_settings`` settings [count]; ``m`` at most ``max_metadata`` entries [count].
* Each entry of ``x``, ``o`` and ``m`` (field ``x.NAME``...): a name matching
  ``[A-Za-z0-9_.:/-]{1,64}`` [name]; for sensors and settings a number [type] (``None``,
  a dropout, is allowed for sensors only [required]) that is finite [finite], named in the
  catalogue unless it accepts unknown names [unknown], and within the catalogue's range
  ``[low, high]``, or ``±generic_bound`` for a name it does not declare [range]; for
  metadata a string [type] of at most ``max_metadata_value`` characters [length].
* The encoded message is at most ``max_message_bytes`` [size]: :func:`check_size`.

A field breaking one rule is not judged by the next rules of that field, and an entry
breaking one rule is not judged by the next rules. The first violation is the stream job's
verdict too: it takes the first rule broken, and for a rule over entries the first entry
breaking it. The ``type`` rules have no Spark form: Spark's schema has done that check
(:mod:`stream.parse` refuses such a payload with rule ``type``).

>>> from datetime import datetime, UTC
>>> r = Reading("pump-0001", datetime(2026, 1, 1, tzinfo=UTC), 0, {"vibration": 250.0})
>>> validate(r)
[Violation(field='x.vibration', rule='range', message='250.0 is outside [0, 100] mm/s')]
"""

from __future__ import annotations

import abc
import functools
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ingest.catalogue import (
    DEFAULT_LIMITS,
    Catalogue,
    Limits,
    SensorRule,
    default_catalogue,
)
from ingest.schema import Reading

if TYPE_CHECKING:
    from pyspark.sql import Column

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LIMITS",
    "NAME_PATTERN",
    "SENSOR_RULES",
    "SETTING_RULES",
    "Entries",
    "EntryRule",
    "FieldRule",
    "FieldRules",
    "Limits",
    "Rules",
    "SensorRule",
    "SparkCheck",
    "Violation",
    "check_size",
    "number_text",
    "rules_as_dict",
    "rules_for",
    "validate",
]

NAME_PATTERN: Final = "[A-Za-z0-9_.:/-]{1,64}"
"""What a sensor, setting or metadata name may be."""
_NAME: Final = re.compile(NAME_PATTERN)

Args = tuple[Any, ...]
"""The values a message template is filled with."""


@dataclass(frozen=True)
class Violation:
    """A rule a reading breaks.

    Attributes:
        field: the field in wire notation: ``d``, ``s``, ``x.vibration``, ``o.load``...
        rule: the rule's name: ``required``, ``type``, ``finite``, ``range``, ``name``,
            ``count``, ``length``, ``size``, ``unknown`` (and, for undecodable bytes, the
            :class:`~ingest.errors.DecodeError` rules).
        message: a sentence for humans.
    """

    field: str
    rule: str
    message: str


@dataclass(frozen=True)
class SparkCheck:
    """One rule as the stream job evaluates it.

    Attributes:
        broken: true when the row breaks the rule.
        field: the offending field (a column: an entry's field names the entry).
        rule: the rule's name.
        reason: the message.
    """

    broken: Column
    field: Column
    rule: str
    reason: Column


def number_text(value: float) -> str:
    """``value`` as the JVM writes a double (``Double.toString``, Spark's cast to string).

    >>> [number_text(v) for v in (250.0, 5e10, 1e-4, 0.001, float("nan"), -float("inf"))]
    ['250.0', '5.0E10', '1.0E-4', '0.001', 'NaN', '-Infinity']

    Java 17 writes a few doubles with more digits than needed (``1e23`` as
    ``9.999999999999999E22``); those read differently from the two sides.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)  # plain decimals in this range, shortest digits, as Java's
    _, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    shown = "".join(map(str, digits))
    scientific = exponent + len(shown) - 1
    return f"{'-' if value < 0 else ''}{shown[0]}.{shown[1:] or '0'}E{scientific}"


def _bound_text(value: float) -> str:
    return f"{value:.15g}"


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int too large for a double
        return math.inf if value > 0 else -math.inf


# -- Spark helpers (pyspark is imported only when the stream job builds its plan) ----------


def _format(template: str, args: Sequence[Column]) -> Column:
    from pyspark.sql import functions as F

    column: Column = F.format_string(template, *args) if args else F.lit(template % ())
    return column


def _names_pass(values: Column, one: str) -> Column:
    """True only when every key of a non-empty map matches the regular expression ``one``."""
    from pyspark.sql import functions as F

    joined = F.array_join(F.map_keys(values), ",")
    # "," is not a name character, so splitting the joined names at "," gives the names back
    # exactly when there are size - 1 commas; then one pattern checks them all.
    commas = F.length(joined) - F.length(F.regexp_replace(joined, ",", ""))
    result: Column = (commas == F.size(values) - 1) & joined.rlike(f"^{one}(,{one})*$")
    return result


def _no_nulls(values: Column) -> Column:
    """True when an array has no null element: joined without and with a replacement for
    nulls, the two texts are as long."""
    from pyspark.sql import functions as F

    as_text = values.cast("array<string>")
    result: Column = F.length(F.array_join(as_text, "")) == F.length(F.array_join(as_text, "", "#"))
    return result


def _lookup(table: Mapping[str, Any], kind: str) -> Column:
    """A literal map of ``table``, name -> ``kind`` (``double`` or ``string``).

    Typed even when ``table`` is empty (a catalogue without settings): an empty ``array()``
    is of type void, which Spark cannot look a string key up in.
    """
    from pyspark.sql import functions as F

    names = sorted(table)
    column: Column = F.map_from_arrays(
        F.array(*[F.lit(n) for n in names]).cast("array<string>"),
        F.array(*[F.lit(table[n]) for n in names]).cast(f"array<{kind}>"),
    )
    return column


@dataclass(frozen=True)
class Entries:
    """A map's columns, for the compiled forms of the rules over its entries.

    Attributes:
        values: the map (never null).
        known: for sensors and settings, the values of :attr:`Rules.sensor_names` (or
            :attr:`Rules.setting_names`) in the map, read once by position (the stream
            job's ``_known`` and ``_known_settings`` columns); None to look each name up.
        names: the names of ``known``'s positions.
    """

    values: Column
    known: Column | None = None
    names: tuple[str, ...] = ()

    def only(self, allowed: Callable[[str], bool]) -> Column | None:
        """True only when every entry is named by one of :attr:`names` that ``allowed``
        accepts and has a value; None without :attr:`known`.

        Read from :attr:`known` alone: the map has as many entries as those names with a
        value in it. Each such name is the first entry with its key, so the count reaches
        the map's size only when no entry is left: none unnamed, repeated or null. False
        for a map with a null value (a sensor's dropout), whose names a rule's full form
        then checks. About 30 reads by position, where the names joined and matched
        against a pattern cost several microseconds a reading (docs/performance.md).
        """
        from pyspark.sql import functions as F

        if self.known is None:
            return None
        at = [i for i, name in enumerate(self.names) if allowed(name)]
        if not at:
            return None
        known = self.known
        present = sum(known[i].isNotNull().cast("int") for i in at)
        column: Column = F.size(self.values) == present
        return column

    def names_pass(self, allowed: Callable[[str], bool], one: str) -> Column:
        """:func:`_names_pass` with ``one``, evaluated only for a map that :meth:`only`
        with ``allowed`` does not pass (every name matching ``one`` is ``allowed``). A
        ``CASE``, not an ``OR``: in an ``OR`` Spark's generated code builds the names
        joined, a subexpression of the pattern's side, for every row first."""
        from pyspark.sql import functions as F

        pattern = _names_pass(self.values, one)
        named = self.only(allowed)
        if named is None:
            return pattern
        column: Column = F.when(named, F.lit(True)).otherwise(pattern)
        return column

    @functools.cached_property
    def array(self) -> Column:
        """The map's values."""
        from pyspark.sql import functions as F

        column: Column = F.map_values(self.values)
        return column

    @functools.cached_property
    def lowest(self) -> Column:
        """The smallest value (nulls skipped; NaN is above +inf; null for only nulls)."""
        from pyspark.sql import functions as F

        column: Column = F.array_min(self.array)
        return column

    @functools.cached_property
    def highest(self) -> Column:
        """The largest value (NaN above +inf)."""
        from pyspark.sql import functions as F

        column: Column = F.array_max(self.array)
        return column

    def value_of(self, names: Sequence[str], i: int) -> Column:
        """The value of ``names[i]`` (``names`` sorted: the order of :attr:`known`)."""
        return self.values[names[i]] if self.known is None else self.known[i]


# -- the rules -------------------------------------------------------------------------------


class FieldRule(abc.ABC):
    """A rule over one field of a reading as a whole: its value in Python (``broken``) and
    as a Spark column (``column``).

    Attributes:
        name: the rule's name.
        message: the message template (``%s``, ``%d``), filled with what the forms return.
    """

    name: str
    message: str
    in_spark: ClassVar[bool] = True
    """False for a rule Spark's schema has already made sure of (no Spark form)."""

    @abc.abstractmethod
    def broken(self, value: Any) -> Args | None:
        """The message's values when the field's ``value`` breaks the rule, else None."""

    def column(self, value: Column) -> tuple[Column, Args] | None:
        """(true when broken, the message's values as columns); None when Spark's schema
        has already made sure of it."""
        return None

    def text(self, args: Args) -> str:
        """The message for ``args``."""
        return self.message % args


class EntryRule(abc.ABC):
    """A rule over each entry (name, value) of a map: sensors, settings or metadata.

    ``broken`` is the Python form, ``column`` the Spark form for one entry (run by a
    higher-order function over the map), ``passes`` the compiled form for the whole map.

    Attributes:
        name: the rule's name.
        message: the message template (``%s``, ``%d``).
    """

    name: str
    message: str
    in_spark: ClassVar[bool] = True
    """False for a rule Spark's schema has already made sure of (no Spark form)."""

    @abc.abstractmethod
    def broken(self, name: Any, value: Any) -> Args | None:
        """The message's values when the entry breaks the rule, else None."""

    def column(self, key: Column, value: Column) -> tuple[Column, Args] | None:
        """(true when the entry breaks the rule, the message's values); None when Spark's
        schema has already made sure of it."""
        return None

    def passes(self, entries: Entries) -> Column | None:
        """A compiled, lambda-free column, true only when no entry of a non-empty map
        breaks the rule (false allowed for maps that pass: the per-entry form decides);
        None when there is nothing to check."""
        return None

    def text(self, args: Args) -> str:
        """The message for ``args``."""
        return self.message % args


class NonEmptyText(FieldRule):
    """The device id is a non-empty string."""

    name, message = "required", "device id must be a non-empty string"

    def broken(self, value: Any) -> Args | None:
        return () if not isinstance(value, str) or not value.strip() else None

    def column(self, value: Column) -> tuple[Column, Args]:
        from pyspark.sql import functions as F

        return F.trim(value) == "", ()


class MaxLength(FieldRule):
    """A text field of at most ``limit`` characters."""

    name = "length"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.message = f"%d characters exceeds {limit}"

    def broken(self, value: Any) -> Args | None:
        return (len(value),) if len(value) > self.limit else None

    def column(self, value: Column) -> tuple[Column, Args]:
        from pyspark.sql import functions as F

        return F.length(value) > self.limit, (F.length(value),)


class Integer(FieldRule):
    """An integer field (Spark's schema reads it as a long)."""

    name, message = "type", "must be an integer, got %s"
    in_spark = False

    def broken(self, value: Any) -> Args | None:
        bad = isinstance(value, bool) or not isinstance(value, int)
        return (type(value).__name__,) if bad else None


class NotNegative(FieldRule):
    """An integer field >= 0."""

    name, message = "range", "%d is negative"

    def broken(self, value: Any) -> Args | None:
        return (value,) if value < 0 else None

    def column(self, value: Column) -> tuple[Column, Args]:
        return value < 0, (value,)


class NonEmptyMap(FieldRule):
    """A map with at least one entry."""

    name, message = "required", "a reading needs at least one sensor"

    def broken(self, value: Any) -> Args | None:
        return () if not value else None

    def column(self, value: Column) -> tuple[Column, Args]:
        from pyspark.sql import functions as F

        return F.size(value) == 0, ()


class MaxCount(FieldRule):
    """A map of at most ``limit`` entries."""

    name = "count"

    def __init__(self, limit: int, noun: str) -> None:
        self.limit = limit
        self.message = f"%d {noun} exceeds {limit}"

    def broken(self, value: Any) -> Args | None:
        return (len(value),) if len(value) > self.limit else None

    def column(self, value: Column) -> tuple[Column, Args]:
        from pyspark.sql import functions as F

        return F.size(value) > self.limit, (F.size(value),)


class ValidName(EntryRule):
    """An entry's name is 1-64 of ``[A-Za-z0-9_.:/-]``.

    Args:
        compiled: False when a :class:`Declared` rule follows, whose compiled form (every
            name one of the catalogue's, each valid) already implies this one's.
    """

    name, message = "name", "name is not 1-64 of [A-Za-z0-9_.:/-]"

    def __init__(self, compiled: bool = True) -> None:
        self.compiled = compiled

    def broken(self, name: Any, value: Any) -> Args | None:
        return () if not isinstance(name, str) or _NAME.fullmatch(name) is None else None

    def column(self, key: Column, value: Column) -> tuple[Column, Args]:
        return ~key.rlike(f"^{NAME_PATTERN}$"), ()

    def passes(self, entries: Entries) -> Column | None:
        if not self.compiled:
            return None
        return entries.names_pass(lambda name: _NAME.fullmatch(name) is not None, NAME_PATTERN)


class HasValue(EntryRule):
    """An entry has a value (a setting; a sensor's ``null`` is a dropout)."""

    name, message = "required", "must have a value"

    def broken(self, name: Any, value: Any) -> Args | None:
        return () if value is None else None

    def column(self, key: Column, value: Column) -> tuple[Column, Args]:
        return value.isNull(), ()

    def passes(self, entries: Entries) -> Column:
        return _no_nulls(entries.array)


class Number(EntryRule):
    """An entry's value is a number or ``None`` (Spark's schema reads doubles)."""

    name, message = "type", "must be a number, got %s"
    in_spark = False

    def broken(self, name: Any, value: Any) -> Args | None:
        bad = value is not None and (isinstance(value, bool) or not isinstance(value, int | float))
        return (type(value).__name__,) if bad else None


class Finite(EntryRule):
    """An entry's value is finite: no NaN, no infinity."""

    name, message = "finite", "%s is not a finite number"

    def broken(self, name: Any, value: Any) -> Args | None:
        if value is None:
            return None
        number = _as_float(value)
        return (number_text(number),) if not math.isfinite(number) else None

    def column(self, key: Column, value: Column) -> tuple[Column, Args]:
        from pyspark.sql import functions as F

        non_finite = F.isnan(value) | (value == F.lit(math.inf)) | (value == F.lit(-math.inf))
        return value.isNotNull() & non_finite, (value.cast("string"),)

    def passes(self, entries: Entries) -> Column:
        from pyspark.sql import functions as F

        # A map of only nulls gives null, which is not a pass.
        result: Column = (entries.lowest > F.lit(-math.inf)) & (entries.highest < F.lit(math.inf))
        return result


class Declared(EntryRule):
    """An entry with a value is named in the catalogue (when it refuses unknown names)."""

    name = "unknown"

    def __init__(self, names: Sequence[str], kind: str, origin: str) -> None:
        self.names = frozenset(names)
        self.sorted = sorted(names)
        where = origin.replace("%", "%%")
        self.message = (
            f"not declared in the catalogue {where}, which refuses unknown names: add a "
            f'[[{kind}]] entry for it, or set unknown = "accept"'
        )

    def broken(self, name: Any, value: Any) -> Args | None:
        return () if value is not None and name not in self.names else None

    def column(self, key: Column, value: Column) -> tuple[Column, Args]:
        from pyspark.sql import functions as F

        known = F.array(*[F.lit(n) for n in self.sorted]).cast("array<string>")
        return value.isNotNull() & ~F.array_contains(known, key), ()

    def passes(self, entries: Entries) -> Column:
        from pyspark.sql import functions as F

        if not self.sorted:
            return F.lit(False)
        # Every name one of the catalogue's: one pattern over the joined names, as ValidName.
        escaped = "|".join(map(re.escape, self.sorted))
        return entries.names_pass(self.names.__contains__, f"(?:{escaped})")


class InRange(EntryRule):
    """An entry's value lies in its catalogue range, or ``±bound`` for an undeclared name
    (``bound`` None: undeclared names are left to :class:`Declared`)."""

    name, message = "range", "%s is outside %s"

    def __init__(self, rules: Mapping[str, SensorRule], bound: float | None) -> None:
        self.rules = dict(rules)
        self.sorted = sorted(rules)
        self.bound = bound
        self.ranges = {
            n: f"[{_bound_text(r.low)}, {_bound_text(r.high)}]"
            + (f" {r.unit}" if r.unit not in ("", "-") else "")
            for n, r in self.rules.items()
        }
        self.generic = (
            f"±{bound:g}, the range of a name the catalogue does not declare" if bound else ""
        )

    def broken(self, name: Any, value: Any) -> Args | None:
        if value is None:
            return None
        rule = self.rules.get(name)
        number = _as_float(value)
        if rule is not None:
            inside = rule.low <= number <= rule.high
        elif self.bound is not None:
            inside = abs(number) <= self.bound
        else:
            return None
        return None if inside else (number_text(number), self.ranges.get(name, self.generic))

    def column(self, key: Column, value: Column) -> tuple[Column, Args]:
        from pyspark.sql import functions as F

        lows = _lookup({n: r.low for n, r in self.rules.items()}, "double")[key]
        highs = _lookup({n: r.high for n, r in self.rules.items()}, "double")[key]
        text = _lookup(self.ranges, "string")[key]
        if self.bound is not None:
            lows = F.coalesce(lows, F.lit(-self.bound))
            highs = F.coalesce(highs, F.lit(self.bound))
            text = F.coalesce(text, F.lit(self.generic))
        return value.isNotNull() & ((value < lows) | (value > highs)), (value.cast("string"), text)

    def passes(self, entries: Entries) -> Column:
        from pyspark.sql import functions as F

        cond: Column = F.lit(True)
        for i, name in enumerate(self.sorted):
            rule = self.rules[name]
            value = entries.value_of(self.sorted, i)
            cond = cond & (value.isNull() | value.between(rule.low, rule.high))
        if self.bound is not None:
            within = (entries.lowest >= -self.bound) & (entries.highest <= self.bound)
            if any(max(-r.low, r.high) > self.bound for r in self.rules.values()):
                # A declared range wider than the bound: readings whose names are all
                # declared need not be within it.
                escaped = "|".join(map(re.escape, self.sorted))
                within = within | entries.names_pass(self.rules.__contains__, f"(?:{escaped})")
            cond = cond & within
        return cond


class Text(EntryRule):
    """A metadata value is a string (Spark's schema reads text; only null is left)."""

    name, message = "type", "must be a string, got %s"

    def broken(self, name: Any, value: Any) -> Args | None:
        if isinstance(value, str):
            return None
        return ("null" if value is None else type(value).__name__,)

    def column(self, key: Column, value: Column) -> tuple[Column, Args]:
        from pyspark.sql import functions as F

        return value.isNull(), (F.lit("null"),)

    def passes(self, entries: Entries) -> Column:
        return _no_nulls(entries.array)


class TextLength(EntryRule):
    """A metadata value of at most ``limit`` characters."""

    name = "length"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.message = f"%d characters exceeds {limit}"

    def broken(self, name: Any, value: Any) -> Args | None:
        return (len(value),) if len(value) > self.limit else None

    def column(self, key: Column, value: Column) -> tuple[Column, Args]:
        from pyspark.sql import functions as F

        return F.length(value) > self.limit, (F.length(value),)

    def passes(self, entries: Entries) -> Column:
        from pyspark.sql import functions as F

        # The values together no longer than the limit for one.
        result: Column = F.length(F.array_join(entries.array, "")) <= self.limit
        return result


class PayloadSize:
    """The encoded message is at most ``limit`` bytes (Python: :meth:`broken` on bytes)."""

    name = "size"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.message = f"%d bytes exceeds the limit of {limit}"

    def broken(self, data: bytes) -> Violation | None:
        if len(data) > self.limit:
            return Violation("payload", self.name, self.message % len(data))
        return None

    def check(self, value: Column) -> SparkCheck:
        """The rule on the Kafka record's ``value`` column."""
        from pyspark.sql import functions as F

        size = F.octet_length(value)
        return SparkCheck(
            size > self.limit, F.lit("payload"), self.name, _format(self.message, (size,))
        )


_VALID_NAMES: set[str] = set()


def _valid(name: Any) -> bool:
    """Whether ``name`` is a valid name (remembered: a fleet has few names)."""
    if name in _VALID_NAMES:
        return True
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        return False
    if len(_VALID_NAMES) >= 10_000:
        _VALID_NAMES.clear()
    _VALID_NAMES.add(name)
    return True


def _broken_entry(rule: EntryRule) -> Any:
    """The per-entry Spark form of ``rule`` as the predicate of a higher-order function."""

    def broken(entry: Column) -> Column:
        form = rule.column(entry["key"], entry["value"])
        assert form is not None
        return form[0]

    return broken


@dataclass(frozen=True)
class FieldRules:
    """The rules of one field of a reading, in order.

    Attributes:
        field: the wire key (``x``).
        attr: the :class:`~ingest.schema.Reading` attribute (``sensors``).
        rules: the rules over the field as a whole.
        entries: the rules over each entry of a map field.
        optional: a map that may be absent (Spark: null, read as empty).
        spark_type: the map's Spark type, for the empty map.
        quick: the Python fast path for numbers: name -> (low, high) of the entries known
            to pass every rule when their value is a float in that range (or None, if
            ``nullable``).
        nullable: an entry may be None (a dropout).
        bound: the range of an undeclared (valid) name on the fast path; None: not taken.
        text_limit: the Python fast path for texts: a valid name with a string of at most
            this many characters passes every rule.
    """

    field: str
    attr: str
    rules: tuple[FieldRule, ...]
    entries: tuple[EntryRule, ...] = ()
    optional: bool = False
    spark_type: str = ""
    quick: Mapping[str, tuple[float, float]] | None = None
    nullable: bool = False
    bound: float | None = None
    text_limit: int | None = None

    def check(self, reading: Reading, out: list[Violation]) -> None:
        """Append the violations of this field of ``reading`` to ``out``."""
        value = getattr(reading, self.attr)
        for rule in self.rules:
            args = rule.broken(value)
            if args is not None:
                out.append(Violation(self.field, rule.name, rule.text(args)))
                return
        if self.entries and not self._quick(value):
            self._check_entries(value, out)

    def _quick(self, values: Mapping[Any, Any]) -> bool:
        """True when every entry certainly passes every rule (the common case, cheaply)."""
        quick = self.quick
        if quick is None:
            limit = self.text_limit
            if limit is None:
                return False
            for name, value in values.items():
                if value.__class__ is not str or len(value) > limit or not _valid(name):
                    return False
            return True
        for name, value in values.items():
            limits = quick.get(name)
            if limits is not None and value.__class__ is float:
                if limits[0] <= value <= limits[1]:
                    continue
                return False
            if value is None:
                if self.nullable and (limits is not None or _valid(name)):
                    continue
                return False
            bound = self.bound
            if (
                limits is not None
                or bound is None
                or value.__class__ is not float
                or not -bound <= value <= bound
                or not _valid(name)
            ):
                return False
        return True

    def _check_entries(self, values: Mapping[Any, Any], out: list[Violation]) -> None:
        # Rule by rule, so the first violation is the stream job's (the first rule broken,
        # by its first entry); an entry is judged by its first broken rule only.
        failed: set[Any] = set()
        for rule in self.entries:
            for name, value in values.items():
                if name in failed:
                    continue
                args = rule.broken(name, value)
                if args is not None:
                    failed.add(name)
                    out.append(Violation(f"{self.field}.{name}", rule.name, rule.text(args)))

    # -- Spark ------------------------------------------------------------------------------
    def spark_value(self, p: Column) -> Column:
        """The field of the reading's struct ``p`` (an absent optional map: empty)."""
        from pyspark.sql import functions as F

        column: Column = p[self.field]
        if self.optional:
            column = F.coalesce(column, F.create_map().cast(self.spark_type))
        return column

    def spark_checks(self, p: Column) -> Iterator[SparkCheck]:
        """This field's rules that have a Spark form, as :class:`SparkCheck`, in order."""
        from pyspark.sql import functions as F

        value = self.spark_value(p)
        for rule in self.rules:
            form = rule.column(value)
            if form is not None:
                yield SparkCheck(
                    form[0], F.lit(self.field), rule.name, _format(rule.message, form[1])
                )
        if not self.entries:
            return
        entries = F.map_entries(F.coalesce(value, F.create_map().cast(self.spark_type)))
        for entry_rule in self.entries:
            if not entry_rule.in_spark:
                continue
            bad = F.filter(entries, _broken_entry(entry_rule))
            first = bad[0]
            form = entry_rule.column(first["key"], first["value"])
            assert form is not None
            yield SparkCheck(
                F.size(bad) > 0,
                F.concat(F.lit(f"{self.field}."), first["key"]),
                entry_rule.name,
                _format(entry_rule.message, form[1]),
            )

    def spark_passes(
        self, p: Column, known: Column | None = None, names: tuple[str, ...] = ()
    ) -> Column:
        """True only when no rule of this field is broken, with compiled expressions
        (``known``: the values of ``names`` in the field's map, see :class:`Entries`)."""
        from pyspark.sql import functions as F

        value = self.spark_value(p)
        cond: Column = F.lit(True)
        for rule in self.rules:
            form = rule.column(value)
            if form is not None:
                cond = cond & ~form[0]
        if self.entries:
            entries = Entries(value, known, names)
            every: Column = F.lit(True)
            for entry_rule in self.entries:
                passes = entry_rule.passes(entries)
                if passes is not None:
                    every = every & passes
            cond = cond & ((F.size(value) == 0) | every)
        return cond


class Rules:
    """The rules of a catalogue, in the order they are checked (see the module docstring).

    Build with :func:`rules_for` (cached per catalogue).

    Attributes:
        catalogue: the catalogue they come from.
        size: the message size rule.
        fields: the rules of each field, in order.
        sensor_names: the catalogue's sensor names, sorted: the order in which the stream
            job reads them by position (its ``known_sensors`` column).
        setting_names: the catalogue's setting names, sorted (the stream job's
            ``_known_settings`` column).
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        limits = catalogue.limits
        accept = catalogue.unknown == "accept"
        bound = limits.generic_bound if accept else None
        sensors, settings = catalogue.sensors_by_name, catalogue.settings_by_name
        self.size = PayloadSize(limits.max_message_bytes)
        self.sensor_names: tuple[str, ...] = tuple(sorted(sensors))
        self.setting_names: tuple[str, ...] = tuple(sorted(settings))

        def numbers(
            table: Mapping[str, SensorRule], kind: str, null: bool
        ) -> tuple[EntryRule, ...]:
            declared = () if accept else (Declared(list(table), kind, catalogue.origin),)
            required = () if null else (HasValue(),)
            name = ValidName(compiled=accept)
            return (name, *required, Number(), Finite(), *declared, InRange(table, bound))

        self.fields: tuple[FieldRules, ...] = (
            FieldRules("d", "device_id", (NonEmptyText(), MaxLength(limits.max_device_id))),
            FieldRules("s", "seq", (Integer(), NotNegative())),
            FieldRules(
                "x",
                "sensors",
                (NonEmptyMap(), MaxCount(limits.max_sensors, "sensors")),
                numbers(sensors, "sensor", True),
                spark_type="map<string,double>",
                quick={n: (r.low, r.high) for n, r in sensors.items()},
                nullable=True,
                bound=bound,
            ),
            FieldRules(
                "o",
                "settings",
                (MaxCount(limits.max_settings, "settings"),),
                numbers(settings, "setting", False),
                optional=True,
                spark_type="map<string,double>",
                quick={n: (r.low, r.high) for n, r in settings.items()},
                bound=bound,
            ),
            FieldRules(
                "m",
                "metadata",
                (MaxCount(limits.max_metadata, "entries"),),
                (ValidName(), Text(), TextLength(limits.max_metadata_value)),
                optional=True,
                spark_type="map<string,string>",
                text_limit=limits.max_metadata_value,
            ),
        )

    def validate(self, reading: Reading) -> list[Violation]:
        """Every rule ``reading`` breaks, field by field; empty when it is valid."""
        out: list[Violation] = []
        for rules in self.fields:
            rules.check(reading, out)
        return out

    def check_size(self, data: bytes) -> Violation | None:
        """A ``size`` violation when the encoded message is larger than the limit, else None."""
        return self.size.broken(data)

    def spark_checks(self, p: Column) -> list[SparkCheck]:
        """Every rule with a Spark form over the reading's struct ``p``, in order (not the
        size rule, which reads the record: :attr:`size`)."""
        return [check for rules in self.fields for check in rules.spark_checks(p)]

    def spark_passes(
        self, p: Column, known: Column | None = None, known_settings: Column | None = None
    ) -> Column:
        """Compiled and lambda-free: true only when no rule is broken (see
        :meth:`EntryRule.passes`); ``known`` is the sensors' values by position
        (:attr:`sensor_names`), ``known_settings`` the settings' (:attr:`setting_names`)."""
        from functools import reduce

        by_position = {
            "x": (known, self.sensor_names),
            "o": (known_settings, self.setting_names),
        }
        return reduce(
            lambda a, b: a & b,
            [r.spark_passes(p, *by_position.get(r.field, (None, ()))) for r in self.fields],
        )


_BUILT: dict[int, tuple[Catalogue, Rules]] = {}


def rules_for(catalogue: Catalogue | None = None) -> Rules:
    """The rules of ``catalogue`` (None: the default catalogue), built once per catalogue
    object."""
    if catalogue is None:
        catalogue = default_catalogue()
    built = _BUILT.get(id(catalogue))
    if built is not None and built[0] is catalogue:
        return built[1]
    rules = Rules(catalogue)
    if len(_BUILT) >= 64:
        _BUILT.clear()
    _BUILT[id(catalogue)] = (catalogue, rules)  # the catalogue held: its id stays its own
    return rules


def validate(reading: Reading, catalogue: Catalogue | None = None) -> list[Violation]:
    """Every rule ``reading`` breaks, field by field; empty when it is valid.

    Args:
        reading: the reading to check.
        catalogue: the catalogue in force (None: the default catalogue).

    >>> from datetime import datetime, UTC
    >>> r = Reading("pump-0001", datetime(2026, 1, 1, tzinfo=UTC), -1, {"vibration": float("nan")})
    >>> [(v.field, v.rule, v.message) for v in validate(r)]
    [('s', 'range', '-1 is negative'), ('x.vibration', 'finite', 'NaN is not a finite number')]
    """
    return rules_for(catalogue).validate(reading)


def check_size(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Violation | None:
    """A ``size`` violation when the encoded message is larger than the limit, else None."""
    return PayloadSize(limits.max_message_bytes).broken(data)


def rules_as_dict(catalogue: Catalogue | None = None) -> dict[str, Any]:
    """The catalogue's ranges and limits as plain data (JSON-ready).

    Returns:
        ``{"sensors": {name: {"unit", "low", "high", "description"}}, "settings": {...},
        "limits": {..., "allow_unknown"}}``.
    """
    catalogue = catalogue or default_catalogue()

    def table(rules: Sequence[SensorRule]) -> dict[str, dict[str, Any]]:
        return {r.name: {k: v for k, v in asdict(r).items() if k != "name"} for r in rules}

    return {
        "sensors": table(catalogue.sensors),
        "settings": table(catalogue.settings),
        "limits": {**asdict(catalogue.limits), "allow_unknown": catalogue.unknown == "accept"},
    }


SENSOR_RULES: Final[Mapping[str, SensorRule]] = default_catalogue().sensors_by_name
"""Sensor name -> rule of the default catalogue (the shipped ``simulator`` and ``cmapss``)."""

SETTING_RULES: Final[Mapping[str, SensorRule]] = default_catalogue().settings_by_name
"""Setting name -> rule of the default catalogue."""

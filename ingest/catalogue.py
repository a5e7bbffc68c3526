"""The sensor catalogue: a fleet's sensors, settings and limits, declared as data (a spec).

A :class:`Catalogue` says which sensors and operating settings a fleet's readings carry,
each with its unit and physical range, which metadata fields they carry, how often a
device reports, what to do with a sensor the catalogue does not name, and the size
limits of a reading. :mod:`ingest.validation` turns it into rules (Python and Spark SQL
from the same objects); the producer, ``prognos replay`` and the stream job validate with
the catalogue in force. Nothing domain-specific is written in code: the simulator's and
NASA C-MAPSS's catalogues are files shipped in ``ingest/catalogues/``, and the
**default catalogue**, in force when none is given, is the two combined (unknown sensors
accepted within ``±generic_bound``). ``prognos catalogue infer`` proposes one for a
recording (:mod:`ingest.infer`).

A catalogue file is TOML::

    description = "Pumps of plant 4"
    sampling_period = "10m"            # how often a device reports: 500ms, 30s, 10m, 1h, 1d
    unknown = "dead-letter"            # a sensor or setting not named here: "accept" or "dead-letter"
    metadata = ["site", "model"]       # the metadata fields readings carry
    units = ["strokes/min"]            # units this file uses beyond UNITS (optional)

    [limits]                           # optional; each key defaults to Limits()
    max_sensors = 64

    [[sensor]]
    name = "pressure"
    unit = "bar"                       # one of UNITS, "-" if dimensionless, "" not filled in yet
    low = 0.0                          # the physical range, inclusive
    high = 40.0
    description = "discharge pressure"

    [[setting]]
    name = "load"
    unit = "fraction"
    low = 0.0
    high = 1.5

Every entry needs ``name``, ``unit``, ``low`` and ``high``; ``description`` is optional.
A unit must be one of :data:`UNITS` (or of the file's ``units``); ``"-"`` marks a
dimensionless value and ``""`` a unit not filled in yet, which is accepted with a
warning (a catalogue that ``prognos catalogue infer`` wrote has those). A file that is not
valid TOML, misses a field, names an unknown unit, has ``low`` above ``high``, or names a
sensor twice is refused with a :class:`CatalogueError` naming the file, the line, the
entry and the fix.

>>> catalogue = Catalogue.loads('''
... unknown = "dead-letter"
... [[sensor]]
... name = "pressure"
... unit = "bar"
... low = 0
... high = 40
... ''')
>>> catalogue.sensor("pressure")
SensorRule(name='pressure', unit='bar', low=0.0, high=40.0, description='')
>>> Catalogue.loads(catalogue.dumps()) == catalogue
True
"""

from __future__ import annotations

import difflib
import importlib.resources
import json
import logging
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Final, Literal

from ingest.codec import MAX_MESSAGE_BYTES
from ingest.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LIMITS",
    "SHIPPED",
    "UNITS",
    "Catalogue",
    "CatalogueError",
    "Limits",
    "SensorRule",
    "default_catalogue",
    "format_duration",
    "load_catalogue",
    "parse_duration",
    "shipped_catalogue",
]

UNITS: Final[frozenset[str]] = frozenset(
    {
        # dimensionless
        "-", "%", "fraction", "ratio", "index", "count", "cycles", "ppm", "dB", "dBA",
        # temperature
        "degC", "degF", "degR", "K",
        # pressure
        "Pa", "kPa", "MPa", "hPa", "bar", "mbar", "psi", "psia", "psig", "inHg", "mmHg",
        # speed, frequency, acceleration
        "rpm", "Hz", "kHz", "m/s", "mm/s", "km/h", "mph", "knots", "Mach", "g", "m/s2",
        # length, mass, force, torque
        "m", "mm", "um", "km", "ft", "kft", "in", "kg", "g_mass", "t", "lbm", "N", "kN", "Nm",
        # flow
        "m3/h", "m3/s", "l/min", "l/s", "gpm", "kg/s", "kg/h", "lbm/s", "pps/psi",
        # electrical and power
        "A", "mA", "kA", "V", "mV", "kV", "W", "kW", "MW", "VA", "kVA", "var", "Ohm", "kWh",
        # time
        "ms", "s", "min", "h", "d",
        # data
        "B", "bytes", "sectors",
    }
)  # fmt: skip
"""The units a catalogue may name without declaring them in its own ``units`` list."""

UNKNOWN_POLICIES: Final = ("accept", "dead-letter")
SHIPPED: Final = ("simulator", "cmapss")
"""The catalogues shipped in ``ingest/catalogues/``; ``default`` is the two combined."""

_NAME: Final = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)")
_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_TOP_KEYS: Final = (
    "description",
    "sampling_period",
    "unknown",
    "metadata",
    "units",
    "limits",
    "sensor",
    "setting",
)
_ENTRY_KEYS: Final = ("name", "unit", "low", "high", "description")


class CatalogueError(ConfigError):
    """A catalogue is missing or malformed; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class SensorRule:
    """One sensor or setting of a catalogue: its unit and physical range.

    Attributes:
        name: the name in readings (an ``x`` key for a sensor, ``o`` for a setting).
        unit: one of :data:`UNITS`, ``"-"`` if dimensionless, ``""`` if not filled in yet.
        low: the smallest plausible value (inclusive).
        high: the largest plausible value (inclusive).
        description: what it measures.
    """

    name: str
    unit: str
    low: float
    high: float
    description: str = ""

    def check(self, value: float) -> bool:
        """Whether ``value`` lies in ``[low, high]``."""
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Limits:
    """The size limits of a reading (a catalogue's ``[limits]`` table).

    Attributes:
        max_message_bytes: the encoded message, in bytes.
        max_sensors: sensors per reading.
        max_settings: settings per reading.
        max_metadata: metadata entries per reading.
        max_device_id: characters of a device id.
        max_metadata_value: characters of a metadata value.
        generic_bound: the range ``±generic_bound`` of a sensor or setting the catalogue
            does not name, when its ``unknown`` is ``"accept"``.
    """

    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_sensors: int = 256
    max_settings: int = 32
    max_metadata: int = 32
    max_device_id: int = 128
    max_metadata_value: int = 1024
    generic_bound: float = 1e9


DEFAULT_LIMITS: Final = Limits()


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``500ms``, ``30s``, ``10m``, ``1h``, ``1d``, ``1w``, ``1h30m``.

    >>> parse_duration("10m"), parse_duration("1h30m"), parse_duration("1.5s")
    (600.0, 5400.0, 1.5)

    Raises:
        ValueError: not a positive duration with units (callers name the setting).
    """
    compact = text.strip().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration such as 30s, 10m, 1h or 1d")
    seconds = sum(float(n) * _SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` in the largest unit that holds it whole: ``1d``, ``10m``, ``1.5s``, ``250ms``.

    >>> format_duration(86400), format_duration(600), format_duration(90), format_duration(0.25)
    ('1d', '10m', '90s', '250ms')
    """
    for unit in ("d", "h", "m", "s", "ms"):
        count = seconds / _SECONDS[unit]
        if count >= 1 and abs(count - round(count)) < 1e-9 * max(1.0, count):
            return f"{round(count)}{unit}"
    return f"{seconds:.6g}s"


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_float(value: float) -> str:
    text = repr(float(value))
    return text if any(c in text for c in ".en") else text + ".0"


def _toml_strings(values: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in values) + "]"


@dataclass(frozen=True)
class Catalogue:
    """A fleet's sensors, settings, metadata, sampling period, unknown-name policy, limits.

    Build one with :meth:`load` or :meth:`loads` (a TOML file, see the module docstring),
    :func:`load_catalogue` (a file or a shipped name), :func:`default_catalogue`, or
    directly; every way checks the same things and raises :class:`CatalogueError`.

    Attributes:
        sensors: the sensors (``x`` keys), in the file's order.
        settings: the operating settings (``o`` keys), in the file's order.
        metadata: the metadata fields readings carry (for people and tools; validation
            does not refuse other metadata names).
        sampling_period_s: how often a device reports, in seconds; None when not stated.
        unknown: ``"accept"``: a sensor or setting the catalogue does not name passes when
            its value is finite and within ``±limits.generic_bound``; ``"dead-letter"``:
            it is refused (rule ``unknown``).
        limits: the size limits of a reading.
        description: one line for people.
        units: units beyond :data:`UNITS` that this catalogue uses.
        origin: where it came from (a path, ``shipped:cmapss``), for messages.
    """

    sensors: tuple[SensorRule, ...] = ()
    settings: tuple[SensorRule, ...] = ()
    metadata: tuple[str, ...] = ()
    sampling_period_s: float | None = None
    unknown: Literal["accept", "dead-letter"] = "accept"
    limits: Limits = DEFAULT_LIMITS
    description: str = ""
    units: tuple[str, ...] = ()
    origin: str = field(default="catalogue", compare=False)

    def __post_init__(self) -> None:
        for kind, entries in (("sensor", self.sensors), ("setting", self.settings)):
            seen: set[str] = set()
            for entry in entries:
                _check_entry(entry, f"{self.origin}: [[{kind}]] {entry.name!r}", self.units)
                if entry.name in seen:
                    raise CatalogueError(
                        f"{self.origin}: [[{kind}]] {entry.name!r} is declared twice; "
                        "keep one entry per name"
                    )
                seen.add(entry.name)
        if self.unknown not in UNKNOWN_POLICIES:
            raise CatalogueError(
                f'{self.origin}: unknown = {self.unknown!r}: write "accept" or "dead-letter"'
            )
        if self.sampling_period_s is not None and not (
            math.isfinite(self.sampling_period_s) and self.sampling_period_s > 0
        ):
            raise CatalogueError(
                f"{self.origin}: sampling_period {self.sampling_period_s!r} must be a positive "
                "duration such as 30s, 10m or 1d"
            )
        for name in self.metadata:
            if not isinstance(name, str) or _NAME.fullmatch(name) is None:
                raise CatalogueError(
                    f"{self.origin}: metadata name {name!r} is not 1-64 of [A-Za-z0-9_.:/-]"
                )
        if len(set(self.metadata)) != len(self.metadata):
            raise CatalogueError(f"{self.origin}: metadata names a field twice")
        _check_limits(self.limits, self.origin)

    # -- lookups ---------------------------------------------------------------------------
    @cached_property
    def sensors_by_name(self) -> Mapping[str, SensorRule]:
        """Sensor name -> rule."""
        return {s.name: s for s in self.sensors}

    @cached_property
    def settings_by_name(self) -> Mapping[str, SensorRule]:
        """Setting name -> rule."""
        return {s.name: s for s in self.settings}

    def sensor(self, name: str) -> SensorRule | None:
        """The sensor called ``name``, or None."""
        return self.sensors_by_name.get(name)

    def setting(self, name: str) -> SensorRule | None:
        """The setting called ``name``, or None."""
        return self.settings_by_name.get(name)

    @property
    def name(self) -> str:
        """A short name for messages: the file's stem or the shipped name."""
        origin = self.origin.removeprefix("shipped:")
        return Path(origin).stem if origin.endswith(".toml") else origin

    # -- reading and writing ---------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> Catalogue:
        """Read a catalogue file.

        Raises:
            CatalogueError: the file is missing, not TOML or not a valid catalogue.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CatalogueError(
                f"catalogue {path}: no such file; check the path, or use a shipped catalogue "
                f"({', '.join(('default', *SHIPPED))}); `prognos catalogue infer` proposes one"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogueError(f"catalogue {path}: cannot read it ({exc})") from None
        return cls.loads(text, origin=str(path))

    @classmethod
    def loads(cls, text: str, origin: str = "catalogue") -> Catalogue:
        """Parse a catalogue from TOML text; ``origin`` names it in messages.

        Raises:
            CatalogueError: not TOML, or not a valid catalogue.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CatalogueError(f"{origin}: not valid TOML: {exc}") from None
        catalogue = cls.from_dict(data, origin=origin, text=text)
        missing = [e.name for e in (*catalogue.sensors, *catalogue.settings) if e.unit == ""]
        if missing:
            logger.warning(
                "%s: no unit yet for %s; fill in unit = ... (one of ingest.catalogue.UNITS, "
                '"-" if dimensionless)',
                origin,
                ", ".join(missing[:10])
                + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""),
            )
        return catalogue

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], origin: str = "catalogue", text: str = ""
    ) -> Catalogue:
        """Build from a catalogue file's content (``text``, when given, finds entries' lines).

        Raises:
            CatalogueError: a key is unknown, missing, or of the wrong kind.
        """
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            hint = _did_you_mean(unknown[0], _TOP_KEYS)
            raise CatalogueError(
                f"{origin}: unknown key {unknown[0]!r}{hint}; a catalogue has "
                f"{', '.join(_TOP_KEYS)} (see ingest.catalogue)"
            )
        units = _strings(data.get("units", []), "units", origin)
        entries: dict[str, tuple[SensorRule, ...]] = {}
        for kind in ("sensor", "setting"):
            raw = data.get(kind, [])
            if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
                raise CatalogueError(f"{origin}: {kind} must be [[{kind}]] tables")
            lines = _entry_lines(text, kind)
            entries[kind] = tuple(
                _entry(e, kind, i, origin, lines[i] if i < len(lines) else None, units)
                for i, e in enumerate(raw)
            )
        sampling = data.get("sampling_period")
        period: float | None = None
        if sampling is not None:
            try:
                period = parse_duration(str(sampling))
            except ValueError as exc:
                raise CatalogueError(f"{origin}: sampling_period: {exc}") from None
        limits = data.get("limits", {})
        if not isinstance(limits, dict):
            raise CatalogueError(f"{origin}: limits must be a [limits] table")
        known_limits = [f.name for f in fields(Limits)]
        for key, value in limits.items():
            if key not in known_limits:
                raise CatalogueError(
                    f"{origin}: [limits] {key!r} is not a limit{_did_you_mean(key, known_limits)}; "
                    f"the limits are {', '.join(known_limits)}"
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CatalogueError(f"{origin}: [limits] {key} = {value!r} must be a number")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise CatalogueError(f"{origin}: description must be a string")
        policy = data.get("unknown", "accept")
        if policy not in UNKNOWN_POLICIES:
            raise CatalogueError(f'{origin}: unknown = {policy!r}: write "accept" or "dead-letter"')
        names = _strings(data.get("metadata", []), "metadata", origin)
        # A float where an int is meant (64.0) is taken as the int; a fraction is refused there.
        int_limits = {f.name for f in fields(Limits) if f.type in ("int", int)}
        for key in int_limits & set(limits):
            if limits[key] != int(limits[key]):
                raise CatalogueError(
                    f"{origin}: [limits] {key} = {limits[key]!r} must be a whole number"
                )
        values: dict[str, Any] = {
            k: int(v) if k in int_limits else float(v) for k, v in limits.items()
        }
        return cls(
            sensors=entries["sensor"],
            settings=entries["setting"],
            metadata=names,
            sampling_period_s=period,
            unknown=policy,
            limits=Limits(**values),
            description=description,
            units=units,
            origin=origin,
        )

    def dumps(self, header: str = "") -> str:
        """The catalogue as TOML, which :meth:`loads` reads back equal.

        Args:
            header: comment lines to put first (each prefixed with ``#``).
        """
        out = [f"# {line}".rstrip() for line in header.splitlines()]
        if self.description:
            out.append(f"description = {_toml_string(self.description)}")
        if self.sampling_period_s is not None:
            out.append(f"sampling_period = {_toml_string(format_duration(self.sampling_period_s))}")
        out.append(f"unknown = {_toml_string(self.unknown)}")
        out.append(f"metadata = {_toml_strings(self.metadata)}")
        if self.units:
            out.append(f"units = {_toml_strings(self.units)}")
        changed = [
            f
            for f in fields(Limits)
            if getattr(self.limits, f.name) != getattr(DEFAULT_LIMITS, f.name)
        ]
        if changed:
            out += ["", "[limits]"]
            for f in changed:
                value = getattr(self.limits, f.name)
                out.append(
                    f"{f.name} = {_toml_float(value) if isinstance(value, float) else value}"
                )
        for kind, entries in (("sensor", self.sensors), ("setting", self.settings)):
            for e in entries:
                out += [
                    "",
                    f"[[{kind}]]",
                    f"name = {_toml_string(e.name)}",
                    f"unit = {_toml_string(e.unit)}",
                    f"low = {_toml_float(e.low)}",
                    f"high = {_toml_float(e.high)}",
                ]
                if e.description:
                    out.append(f"description = {_toml_string(e.description)}")
        return "\n".join(out) + "\n"

    def save(self, path: Path, header: str = "") -> None:
        """Write :meth:`dumps` to ``path``."""
        path.write_text(self.dumps(header), encoding="utf-8")

    @classmethod
    def merge(cls, *catalogues: Catalogue, origin: str = "", description: str = "") -> Catalogue:
        """The catalogues combined: every sensor, setting and metadata field of each.

        A name declared in two of them must be declared the same way. The result accepts
        unknown names unless every one refuses them; its sampling period is theirs when
        they agree, else none; their limits must agree.

        Raises:
            CatalogueError: a name declared differently, or different limits.
        """
        origin = origin or " + ".join(c.origin for c in catalogues)
        merged: dict[str, dict[str, SensorRule]] = {"sensor": {}, "setting": {}}
        for c in catalogues:
            for kind, entries in (("sensor", c.sensors), ("setting", c.settings)):
                for e in entries:
                    had = merged[kind].setdefault(e.name, e)
                    if had != e:
                        raise CatalogueError(
                            f"{origin}: [[{kind}]] {e.name!r} is declared differently in the "
                            "catalogues combined; make them agree or rename one"
                        )
        limits = {c.limits for c in catalogues}
        if len(limits) > 1:
            raise CatalogueError(f"{origin}: the catalogues combined have different [limits]")
        periods = {c.sampling_period_s for c in catalogues}
        return cls(
            sensors=tuple(merged["sensor"].values()),
            settings=tuple(merged["setting"].values()),
            metadata=tuple(dict.fromkeys(m for c in catalogues for m in c.metadata)),
            sampling_period_s=periods.pop() if len(periods) == 1 else None,
            unknown="dead-letter"
            if catalogues and all(c.unknown == "dead-letter" for c in catalogues)
            else "accept",
            limits=limits.pop() if limits else DEFAULT_LIMITS,
            description=description
            or "; ".join(c.description for c in catalogues if c.description),
            units=tuple(dict.fromkeys(u for c in catalogues for u in c.units)),
            origin=origin,
        )

    def with_origin(self, origin: str) -> Catalogue:
        """The same catalogue, named ``origin`` in messages."""
        return replace(self, origin=origin)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _strings(value: Any, key: str, origin: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogueError(f'{origin}: {key} must be a list of strings, e.g. {key} = ["a", "b"]')
    return tuple(value)


def _entry_lines(text: str, kind: str) -> list[int]:
    """The line numbers of the ``[[kind]]`` headers, in order (for messages)."""
    pattern = re.compile(rf"^\s*\[\[\s*{kind}\s*\]\]")
    return [i for i, line in enumerate(text.splitlines(), start=1) if pattern.match(line)]


def _entry(
    data: Mapping[str, Any],
    kind: str,
    index: int,
    origin: str,
    line: int | None,
    units: tuple[str, ...],
) -> SensorRule:
    name = data.get("name")
    where = f"{origin}:{line}" if line else origin
    where += (
        f": [[{kind}]] {name!r}" if isinstance(name, str) else f": [[{kind}]] number {index + 1}"
    )
    extra = sorted(set(data) - set(_ENTRY_KEYS))
    if extra:
        raise CatalogueError(
            f"{where}: unknown field {extra[0]!r}{_did_you_mean(extra[0], _ENTRY_KEYS)}; "
            f"an entry has {', '.join(_ENTRY_KEYS)}"
        )
    for key in ("name", "unit", "low", "high"):
        if key not in data:
            fix = {
                "name": 'name = "..." as the readings spell it',
                "unit": 'unit = "..." (one of ingest.catalogue.UNITS, "-" if dimensionless, '
                '"" to fill in later)',
                "low": "low = the smallest plausible value",
                "high": "high = the largest plausible value",
            }[key]
            raise CatalogueError(f"{where}: missing {key}; add {fix}")
    for key in ("name", "unit", "description"):
        if key in data and not isinstance(data[key], str):
            raise CatalogueError(f"{where}: {key} = {data[key]!r} must be a string")
    for key in ("low", "high"):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CatalogueError(f"{where}: {key} = {value!r} must be a number")
    rule = SensorRule(
        name=data["name"],
        unit=data["unit"],
        low=float(data["low"]),
        high=float(data["high"]),
        description=data.get("description", ""),
    )
    _check_entry(rule, where, units)
    return rule


def _check_entry(rule: SensorRule, where: str, units: tuple[str, ...]) -> None:
    if not isinstance(rule.name, str) or _NAME.fullmatch(rule.name) is None:
        raise CatalogueError(
            f"{where}: name {rule.name!r} is not 1-64 of [A-Za-z0-9_.:/-]; readings could not carry it"
        )
    for key in ("low", "high"):
        if not math.isfinite(getattr(rule, key)):
            raise CatalogueError(f"{where}: {key} = {getattr(rule, key)} must be a finite number")
    if rule.low > rule.high:
        raise CatalogueError(
            f"{where}: low {rule.low:g} is above high {rule.high:g}; swap them or correct the range"
        )
    if rule.unit and rule.unit not in UNITS and rule.unit not in units:
        raise CatalogueError(
            f"{where}: unknown unit {rule.unit!r}{_did_you_mean(rule.unit, UNITS)}; use one of "
            f'ingest.catalogue.UNITS ({", ".join(sorted(UNITS)[:12])}, ...), "-" if '
            f'dimensionless, or declare it: units = ["{rule.unit}"]'
        )


def _check_limits(limits: Limits, origin: str) -> None:
    for f in fields(Limits):
        value = getattr(limits, f.name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise CatalogueError(
                f"{origin}: [limits] {f.name} = {value!r} must be a positive number"
            )


# -- the shipped catalogues ------------------------------------------------------------------


@cache
def shipped_catalogue(name: str) -> Catalogue:
    """A catalogue shipped in ``ingest/catalogues/`` (:data:`SHIPPED`), or ``default``.

    Raises:
        CatalogueError: no such shipped catalogue.
    """
    if name == "default":
        return default_catalogue()
    if name not in SHIPPED:
        raise CatalogueError(
            f"no shipped catalogue {name!r}; the shipped ones are {', '.join(('default', *SHIPPED))}"
        )
    text = (importlib.resources.files("ingest") / "catalogues" / f"{name}.toml").read_text("utf-8")
    return Catalogue.loads(text, origin=f"shipped:{name}")


@cache
def default_catalogue() -> Catalogue:
    """The catalogue in force when none is given: the simulator's and C-MAPSS's combined,
    unknown names accepted within ``±generic_bound``."""
    return Catalogue.merge(
        *(shipped_catalogue(n) for n in SHIPPED),
        origin="default catalogue (" + " + ".join(f"{n}.toml" for n in SHIPPED) + ")",
    )


def load_catalogue(spec: str | Path | None) -> Catalogue:
    """The catalogue named by ``spec``: a TOML file, a shipped name, or None for the default.

    A ``spec`` that is a file, or ends in ``.toml``, is read as a file; otherwise it names a
    shipped catalogue (``default``, ``simulator``, ``cmapss``).

    Raises:
        CatalogueError: the file is missing or malformed, or no such shipped catalogue.
    """
    if spec is None or spec == "":
        return default_catalogue()
    path = Path(spec)
    if not path.is_file() and path.suffix == "" and str(spec) in ("default", *SHIPPED):
        return shipped_catalogue(str(spec))
    if path.is_file() or path.suffix.lower() == ".toml":
        return Catalogue.load(path)
    raise CatalogueError(
        f"catalogue {spec!r}: no such file, and not a shipped catalogue "
        f"({', '.join(('default', *SHIPPED))})"
    )

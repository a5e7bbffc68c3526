"""Validation of readings: per-sensor physical ranges, finiteness, sizes, required fields.

The rules are data (:data:`SENSOR_RULES`, :data:`SETTING_RULES`, :class:`Limits`), applied
here by :func:`validate` and exported by :func:`rules_as_dict` so the stream job applies the
same range checks in Spark SQL.

Rules (the ``rule`` name a :class:`Violation` carries is in brackets):

* ``d`` (device id) is non-empty [required] and at most ``Limits.max_device_id`` characters
  [length]; ``s`` (seq) is >= 0 [range]; ``x`` has at least one sensor [required].
* Every sensor or setting value is a finite number [finite] (``None`` — a dropout — is
  allowed for sensors, not for settings) within the rule's ``[low, high]`` [range].
* Names match ``[A-Za-z0-9_.:/-]{1,64}`` [name]; at most ``max_sensors`` sensors,
  ``max_settings`` settings and ``max_metadata`` metadata entries [count]; metadata values at
  most ``max_metadata_value`` characters [length]. The encoded message is at most
  ``max_message_bytes`` (64 KiB) [size] — see :func:`check_size`.
* **Unknown names.** A sensor or setting with no rule in the catalogue is *accepted* when
  its name is valid and its value is finite with ``|value| <= Limits.generic_bound``
  (1e9) [range]; so recordings with other sensors can be replayed without code. Set
  ``Limits(allow_unknown=False)`` to refuse them instead [unknown].

The catalogue covers the simulator's sensors (SI-ish units) and NASA C-MAPSS's sensors
``s1``–``s21`` and settings ``setting1``–``setting3``. C-MAPSS limits are envelopes around
every operating condition of the data set (sea level to 42,000 ft, Mach 0–0.84, TRA 20–100)
with a margin, not the narrow FD001 ranges, so FD002–FD004 pass too.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Final

from ingest.codec import MAX_MESSAGE_BYTES
from ingest.schema import Reading

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LIMITS",
    "SENSOR_RULES",
    "SETTING_RULES",
    "Limits",
    "SensorRule",
    "Violation",
    "check_size",
    "rules_as_dict",
    "validate",
]


@dataclass(frozen=True)
class SensorRule:
    """The physical range of one sensor or setting.

    Attributes:
        name: the sensor name in readings (``x`` key) or setting name (``o`` key).
        unit: the unit of the values, for humans.
        low: smallest plausible value (inclusive).
        high: largest plausible value (inclusive).
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
class Violation:
    """A rule a reading breaks.

    Attributes:
        field: the field in wire notation: ``d``, ``s``, ``x.vibration``, ``o.load``...
        rule: the rule's name: ``required``, ``finite``, ``range``, ``name``, ``count``,
            ``length``, ``size``, ``unknown`` (and, for undecodable bytes, the
            :class:`~ingest.errors.DecodeError` rules).
        message: a sentence for humans.
    """

    field: str
    rule: str
    message: str


@dataclass(frozen=True)
class Limits:
    """Size limits and the rule for unknown names."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_sensors: int = 256
    max_settings: int = 32
    max_metadata: int = 32
    max_device_id: int = 128
    max_metadata_value: int = 1024
    generic_bound: float = 1e9
    allow_unknown: bool = True


DEFAULT_LIMITS: Final = Limits()


def _rules(*rules: SensorRule) -> dict[str, SensorRule]:
    return {r.name: r for r in rules}


SENSOR_RULES: Final[dict[str, SensorRule]] = _rules(
    # The simulator's sensors.
    SensorRule("vibration", "mm/s", 0.0, 100.0, "vibration velocity, RMS"),
    SensorRule("bearing_temp", "degC", -40.0, 200.0, "bearing temperature"),
    SensorRule("winding_temp", "degC", -40.0, 220.0, "motor winding temperature"),
    SensorRule("motor_current", "A", 0.0, 500.0, "motor phase current, RMS"),
    SensorRule("pressure", "bar", 0.0, 40.0, "discharge / static pressure"),
    SensorRule("flow", "m3/h", 0.0, 2000.0, "volumetric flow"),
    SensorRule("speed", "rpm", 0.0, 6000.0, "shaft speed"),
    # NASA C-MAPSS (Saxena et al. 2008), temperatures in degrees Rankine, pressures in psia.
    SensorRule("s1", "degR", 400.0, 600.0, "T2 total temperature at fan inlet"),
    SensorRule("s2", "degR", 450.0, 800.0, "T24 total temperature at LPC outlet"),
    SensorRule("s3", "degR", 1000.0, 2000.0, "T30 total temperature at HPC outlet"),
    SensorRule("s4", "degR", 900.0, 1800.0, "T50 total temperature at LPT outlet"),
    SensorRule("s5", "psia", 1.0, 20.0, "P2 pressure at fan inlet"),
    SensorRule("s6", "psia", 1.0, 30.0, "P15 total pressure in bypass duct"),
    SensorRule("s7", "psia", 50.0, 800.0, "P30 total pressure at HPC outlet"),
    SensorRule("s8", "rpm", 1500.0, 2600.0, "Nf physical fan speed"),
    SensorRule("s9", "rpm", 7000.0, 10000.0, "Nc physical core speed"),
    SensorRule("s10", "-", 0.5, 2.0, "epr engine pressure ratio (P50/P2)"),
    SensorRule("s11", "psia", 20.0, 70.0, "Ps30 static pressure at HPC outlet"),
    SensorRule("s12", "pps/psi", 50.0, 700.0, "phi ratio of fuel flow to Ps30"),
    SensorRule("s13", "rpm", 1500.0, 2600.0, "NRf corrected fan speed"),
    SensorRule("s14", "rpm", 6500.0, 9500.0, "NRc corrected core speed"),
    SensorRule("s15", "-", 5.0, 15.0, "BPR bypass ratio"),
    SensorRule("s16", "-", 0.0, 0.1, "farB burner fuel-air ratio"),
    SensorRule("s17", "-", 200.0, 500.0, "htBleed bleed enthalpy"),
    SensorRule("s18", "rpm", 1500.0, 2600.0, "Nf_dmd demanded fan speed"),
    SensorRule("s19", "%", 50.0, 120.0, "PCNfR_dmd demanded corrected fan speed"),
    SensorRule("s20", "lbm/s", 0.0, 60.0, "W31 HPT coolant bleed"),
    SensorRule("s21", "lbm/s", 0.0, 40.0, "W32 LPT coolant bleed"),
    SensorRule("cycle", "cycles", 0.0, 100_000.0, "operating cycles since the record began"),
)
"""Sensor name -> rule."""

SETTING_RULES: Final[dict[str, SensorRule]] = _rules(
    # The simulator's operating settings.
    SensorRule("load", "fraction", 0.0, 1.5, "load relative to rated"),
    SensorRule("regime", "index", 0.0, 16.0, "operating regime number"),
    # NASA C-MAPSS operational settings.
    SensorRule("setting1", "kft", -1.0, 50.0, "altitude (about 0 in FD001)"),
    SensorRule("setting2", "Mach", -0.1, 1.0, "Mach number (about 0 in FD001)"),
    SensorRule("setting3", "%", 0.0, 120.0, "throttle resolver angle (100 in FD001)"),
)
"""Setting name -> rule."""

_NAME: Final = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")


def _check_values(
    key: str,
    values: dict[str, Any],
    rules: dict[str, SensorRule],
    limits: Limits,
    allow_null: bool,
    out: list[Violation],
) -> None:
    for name, value in values.items():
        rule = rules.get(name)
        # Fast path for the common case: a known name with a float in range (NaN fails the
        # comparison and takes the slow path).
        if rule is not None and (
            (value is None and allow_null)
            or (type(value) is float and rule.low <= value <= rule.high)
        ):
            continue
        where = f"{key}.{name}"
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            out.append(Violation(where, "name", f"name {name!r} is not 1-64 of [A-Za-z0-9_.:/-]"))
            continue
        if value is None:
            if not allow_null:
                out.append(Violation(where, "required", "must have a value"))
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out.append(Violation(where, "type", f"must be a number, got {type(value).__name__}"))
            continue
        if not math.isfinite(value):
            out.append(Violation(where, "finite", f"{value} is not a finite number"))
            continue
        if rule is None:
            if not limits.allow_unknown:
                out.append(
                    Violation(
                        where, "unknown", f"no rule for {name!r} and unknown names are refused"
                    )
                )
            elif abs(value) > limits.generic_bound:
                out.append(
                    Violation(
                        where,
                        "range",
                        f"{value} is beyond the generic bound ±{limits.generic_bound:g}",
                    )
                )
        elif not rule.low <= value <= rule.high:
            out.append(
                Violation(
                    where, "range", f"{value} {rule.unit} is outside [{rule.low:g}, {rule.high:g}]"
                )
            )


def validate(reading: Reading, limits: Limits = DEFAULT_LIMITS) -> list[Violation]:
    """Every rule ``reading`` breaks, in field order; empty when it is valid.

    Args:
        reading: the reading to check.
        limits: size limits and the unknown-name rule.

    >>> from datetime import datetime, UTC
    >>> r = Reading("pump-0001", datetime(2026, 1, 1, tzinfo=UTC), 0, {"vibration": 250.0})
    >>> validate(r)
    [Violation(field='x.vibration', rule='range', message='250.0 mm/s is outside [0, 100]')]
    """
    out: list[Violation] = []
    device = reading.device_id
    if not isinstance(device, str) or not device.strip():
        out.append(Violation("d", "required", "device id must be a non-empty string"))
    elif len(device) > limits.max_device_id:
        out.append(
            Violation("d", "length", f"{len(device)} characters exceeds {limits.max_device_id}")
        )
    seq = reading.seq
    if isinstance(seq, bool) or not isinstance(seq, int):
        out.append(Violation("s", "type", f"must be an integer, got {type(seq).__name__}"))
    elif seq < 0:
        out.append(Violation("s", "range", f"{seq} is negative"))
    sensors = reading.sensors
    if not sensors:
        out.append(Violation("x", "required", "a reading needs at least one sensor"))
    elif len(sensors) > limits.max_sensors:
        out.append(Violation("x", "count", f"{len(sensors)} sensors exceeds {limits.max_sensors}"))
    else:
        _check_values("x", sensors, SENSOR_RULES, limits, True, out)
    settings = reading.settings
    if len(settings) > limits.max_settings:
        out.append(
            Violation("o", "count", f"{len(settings)} settings exceeds {limits.max_settings}")
        )
    else:
        _check_values("o", settings, SETTING_RULES, limits, False, out)
    metadata = reading.metadata
    if len(metadata) > limits.max_metadata:
        out.append(
            Violation("m", "count", f"{len(metadata)} entries exceeds {limits.max_metadata}")
        )
    else:
        for name, value in metadata.items():
            if not isinstance(name, str) or _NAME.fullmatch(name) is None:
                out.append(
                    Violation(f"m.{name}", "name", f"name {name!r} is not 1-64 of [A-Za-z0-9_.:/-]")
                )
            elif not isinstance(value, str):
                out.append(
                    Violation(f"m.{name}", "type", f"must be a string, got {type(value).__name__}")
                )
            elif len(value) > limits.max_metadata_value:
                out.append(
                    Violation(
                        f"m.{name}",
                        "length",
                        f"{len(value)} characters exceeds {limits.max_metadata_value}",
                    )
                )
    return out


def check_size(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Violation | None:
    """A ``size`` violation when the encoded message is larger than the limit, else None."""
    if len(data) > limits.max_message_bytes:
        return Violation(
            "payload", "size", f"{len(data)} bytes exceeds the limit of {limits.max_message_bytes}"
        )
    return None


def rules_as_dict(limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The rules as plain data (JSON-ready), for the stream job's Spark SQL checks.

    Returns:
        ``{"sensors": {name: {"unit", "low", "high", "description"}}, "settings": {...},
        "limits": {...}}``; a name absent from the maps follows ``limits.generic_bound``
        (and ``limits.allow_unknown``).
    """

    def table(rules: dict[str, SensorRule]) -> dict[str, dict[str, Any]]:
        return {n: {k: v for k, v in asdict(r).items() if k != "name"} for n, r in rules.items()}

    return {
        "sensors": table(SENSOR_RULES),
        "settings": table(SETTING_RULES),
        "limits": asdict(limits),
    }

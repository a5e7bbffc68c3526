"""Settings of a simulated fleet (the *spec*; :mod:`simulator.fleet` runs it).

Everything random is drawn from one numpy ``Generator`` per machine, seeded from
``FleetConfig.seed`` and the machine's index, so a run is reproducible: the same config
gives the same readings, value for value (and machine *i* behaves the same whatever the
fleet size).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from simulator.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "CMAPSS_SENSORS",
    "CMAPSS_SETTINGS",
    "DEFAULT_START",
    "FAILURE_MODES",
    "MACHINE_TYPES",
    "FaultRates",
    "FleetConfig",
    "MachineType",
]

DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=UTC)

FAILURE_MODES: Final = ("bearing_wear", "overheating", "imbalance", "seal_leak", "hpc_degradation")
"""How a machine can fail; each has its own signature (see :mod:`simulator.fleet`, and
:mod:`simulator.turbofan` for ``hpc_degradation``, the turbofan's only mode)."""

CMAPSS_SENSORS: Final = tuple(f"s{i}" for i in range(1, 22))
"""The turbofan's sensors, named as in NASA C-MAPSS."""

CMAPSS_SETTINGS: Final = ("setting1", "setting2", "setting3")
"""The turbofan's operational settings, named as in NASA C-MAPSS."""


@dataclass(frozen=True)
class MachineType:
    """A kind of machine: its sensors, ratings and the ways it can fail.

    Attributes:
        name: ``pump``, ``motor``, ``fan`` or ``turbofan``; the device id prefix.
        sensors: the sensor names it reports.
        rated_speed: shaft speed at full load, rpm.
        rated_current: motor current at full load, A.
        base_vibration: healthy vibration at rated speed, mm/s RMS.
        modes: the failure modes it can develop.
        rated_pressure: discharge pressure at full load, bar (pumps).
        rated_flow: flow at full load, m3/h (pumps).
        settings: the setting names its readings carry.

    The ratings are 0 for ``turbofan``, whose levels come from its calibration table
    (:data:`simulator.turbofan.CALIBRATION`).
    """

    name: str
    sensors: tuple[str, ...]
    rated_speed: float
    rated_current: float
    base_vibration: float
    modes: tuple[str, ...]
    rated_pressure: float = 0.0
    rated_flow: float = 0.0
    settings: tuple[str, ...] = ("load", "regime")


_COMMON: Final = ("vibration", "bearing_temp", "winding_temp", "motor_current", "speed")

MACHINE_TYPES: Final[dict[str, MachineType]] = {
    "pump": MachineType(
        "pump",
        (*_COMMON, "pressure", "flow"),
        2950.0,
        40.0,
        1.8,
        ("bearing_wear", "overheating", "imbalance", "seal_leak"),
        rated_pressure=8.0,
        rated_flow=120.0,
    ),
    "motor": MachineType(
        "motor", _COMMON, 1480.0, 60.0, 1.2, ("bearing_wear", "overheating", "imbalance")
    ),
    "fan": MachineType(
        "fan", _COMMON, 980.0, 25.0, 2.5, ("bearing_wear", "overheating", "imbalance")
    ),
    "turbofan": MachineType(
        "turbofan",
        CMAPSS_SENSORS,
        0.0,
        0.0,
        0.0,
        ("hpc_degradation",),
        settings=CMAPSS_SETTINGS,
    ),
}


@dataclass(frozen=True)
class FaultRates:
    """How often sensors misbehave. Rates are probabilities per sensor per step.

    Attributes:
        noise: multiplier of each sensor's measurement noise (0 = noiseless).
        drift: chance a sensor starts drifting (stays until maintenance).
        dropout: chance a sensor reports nothing (``None``) this step.
        stuck: chance a sensor freezes at its last value for a while (mean ``stuck_steps``).
        stuck_steps: mean length of a stuck spell, in steps.
        drift_sensors: only these sensors drift (empty: any); with ``drift`` 1 they all
            start at once, a known input drift (the stream job's drift watch is tested so).
    """

    noise: float = 1.0
    drift: float = 1e-5
    dropout: float = 1e-3
    stuck: float = 1e-4
    stuck_steps: float = 60.0
    drift_sensors: tuple[str, ...] = ()

    def may_drift(self, sensor: str) -> bool:
        return not self.drift_sensors or sensor in self.drift_sensors

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ConfigError(f"noise={self.noise}: must be >= 0")
        for name in ("drift", "dropout", "stuck"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} rate {value} is not a probability in [0, 1]")
        if self.stuck_steps < 1:
            raise ConfigError(f"stuck_steps={self.stuck_steps}: must be >= 1")


@dataclass(frozen=True)
class FleetConfig:
    """A simulated fleet.

    Attributes:
        machines: how many machines.
        seed: the seed of every random draw.
        types: machine types, assigned round-robin (machine *i* gets ``types[i % len]``).
        step_s: simulated seconds between two readings of a machine.
        start: simulated time of the first step (UTC).
        mean_life_s: mean time from new to failure, simulated seconds (not turbofans:
            their lives are drawn in cycles, like NASA C-MAPSS FD001's).
        fast_fail: the first ``fast_fail`` machines fail within ``fast_fail_s`` (demos);
            turbofans among them within ``fast_fail_cycles`` cycles.
        fast_fail_s: the time within which fast-failing machines fail.
        cycle_s: turbofans: simulated seconds per operating cycle; one reading per cycle
            (600, as the C-MAPSS replay). At least ``step_s``.
        fast_fail_cycles: turbofans: a fast-failing one's first life lasts
            ``fast_fail_cycles x U(2/3, 1)`` cycles (60-90 by default).
        repair_s: downtime after a failure before the machine runs again, renewed.
        maintenance_interval_s: preventive maintenance period per machine (None: none);
            maintenance renews the machine (health back to 1).
        regime_dwell_s: mean time an operating regime lasts.
        failure_modes: restrict the failure modes drawn (each type keeps the ones it can
            develop; None: all of them).
        faults: sensor noise, drift, dropout and stuck rates.
    """

    machines: int = 10
    seed: int = 0
    types: tuple[str, ...] = ("pump", "motor", "fan")
    step_s: float = 1.0
    start: datetime = DEFAULT_START
    mean_life_s: float = 3 * 86400.0
    fast_fail: int = 0
    fast_fail_s: float = 300.0
    cycle_s: float = 600.0
    fast_fail_cycles: int = 90
    repair_s: float = 3600.0
    maintenance_interval_s: float | None = None
    regime_dwell_s: float = 1800.0
    failure_modes: tuple[str, ...] | None = None
    faults: FaultRates = field(default_factory=FaultRates)

    def __post_init__(self) -> None:
        if self.machines < 1:
            raise ConfigError(f"machines={self.machines}: need at least 1 (--machines)")
        if not 0 <= self.fast_fail <= self.machines:
            raise ConfigError(
                f"fast_fail={self.fast_fail}: must be between 0 and machines={self.machines}"
            )
        unknown = [t for t in self.types if t not in MACHINE_TYPES]
        if unknown or not self.types:
            raise ConfigError(
                f"machine types {unknown or '(none)'}: choose from {', '.join(MACHINE_TYPES)}"
            )
        for name in ("step_s", "mean_life_s", "fast_fail_s", "regime_dwell_s", "cycle_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be > 0")
        if "turbofan" in self.types:
            if self.cycle_s < self.step_s:
                raise ConfigError(
                    f"cycle_s={self.cycle_s} is shorter than step_s={self.step_s}: a turbofan "
                    "reports once per cycle; use a --cycle of at least --step"
                )
            if self.fast_fail_cycles < 3:
                raise ConfigError(f"fast_fail_cycles={self.fast_fail_cycles}: must be >= 3")
        known = {s for t in self.types for s in MACHINE_TYPES[t].sensors}
        strange = [s for s in self.faults.drift_sensors if s not in known]
        if strange:
            raise ConfigError(
                f"--drift-sensors {', '.join(strange)}: not a sensor of "
                f"{', '.join(self.types)}; choose from {', '.join(sorted(known))}"
            )
        if self.repair_s < 0:
            raise ConfigError(f"repair_s={self.repair_s}: must be >= 0")
        if self.maintenance_interval_s is not None and self.maintenance_interval_s <= 0:
            raise ConfigError(f"maintenance_interval_s={self.maintenance_interval_s}: must be > 0")
        if self.failure_modes is not None:
            wrong = [m for m in self.failure_modes if m not in FAILURE_MODES]
            if wrong or not self.failure_modes:
                raise ConfigError(
                    f"failure modes {wrong or '(none)'}: choose from {', '.join(FAILURE_MODES)}"
                )
            for name in self.types:
                if not set(MACHINE_TYPES[name].modes) & set(self.failure_modes):
                    raise ConfigError(
                        f"machine type {name!r} can fail by none of {', '.join(self.failure_modes)}; "
                        f"it can by {', '.join(MACHINE_TYPES[name].modes)}"
                    )
        if self.start.tzinfo is None:
            raise ConfigError(f"start={self.start.isoformat()} is naive; give a UTC time")

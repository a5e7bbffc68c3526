"""The fleet simulation: machines that run in changing regimes, wear out and fail.

Each machine carries a hidden health in ``[0, 1]``. A life is planned when it starts (new
or renewed): a failure mode (one its type can develop), a failure time ``t_fail`` and a
degradation onset ``t_onset``. Damage is zero before the onset and then grows as
``((t - t_onset) / (t_fail - t_onset)) ** p`` (``p`` in 1.5–2.5: slow at first, faster near
the end), so health ``1 - damage`` falls monotonically to 0 at ``t_fail``, whatever the
regime. The machine then fails, is down for ``repair_s`` and starts a new life;
maintenance (scheduled, or :meth:`Fleet.maintain`) renews it earlier.

Signatures (``w`` is the damage, 0 healthy to 1 failed):

================  ==============================================================
mode              what the sensors show
================  ==============================================================
bearing_wear      vibration x(1 + 7 w²), bearing temperature +40 w² °C, current +6 %
overheating       winding temperature +80 w °C, bearing temperature +20 w, current +25 %
imbalance         vibration x(1 + 5 w (speed/rated)²), bearing temperature +10 w
seal_leak (pump)  pressure -45 %, flow -35 %, current +10 %, vibration +40 %
================  ==============================================================

Healthy values follow the load of the operating regime (idle 0.35, part 0.7, full 1.0,
peak 1.1; a regime lasts ``regime_dwell_s`` on average); temperatures lag their target
with a 10-minute time constant and follow a daily ambient cycle. Sensors then get noise,
and at the configured rates drift, dropouts (``None``) and stuck spells; values are
clipped to the sensor's physical range (:data:`ingest.validation.SENSOR_RULES`).

The ``turbofan`` type is simulated by :class:`simulator.turbofan.Turbofan` instead: one
reading per operating cycle, calibrated on NASA C-MAPSS FD001 (``hpc_degradation``).

Ground truth (:class:`Life`) is kept beside the readings, never inside them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Final

import numpy as np

from ingest.schema import Reading
from ingest.validation import SENSOR_RULES
from simulator.config import MACHINE_TYPES, FleetConfig, MachineType
from simulator.errors import SimulatorError
from simulator.life import Life
from simulator.turbofan import Turbofan

logger = logging.getLogger(__name__)

__all__ = ["REGIME_LOADS", "Fleet", "Life", "Machine"]

REGIME_LOADS: Final = (0.35, 0.7, 1.0, 1.1)
_AMBIENT: Final = 25.0
_THERMAL_TAU_S: Final = 600.0
# Measurement noise (one standard deviation) per sensor, in its unit.
_NOISE: Final = {
    "vibration": 0.08,
    "bearing_temp": 0.3,
    "winding_temp": 0.4,
    "motor_current": 0.3,
    "speed": 3.0,
    "pressure": 0.05,
    "flow": 1.0,
}
# Drift: slope per simulated hour, as a fraction of the typical value; capped at 30 %.
_DRIFT_PER_HOUR: Final = 0.02
_DRIFT_CAP: Final = 0.3


class Machine:
    """One simulated machine. Use it through :class:`Fleet`."""

    def __init__(self, index: int, config: FleetConfig, rng: np.random.Generator) -> None:
        self.index = index
        self.config = config
        self.rng = rng
        self.type: MachineType = MACHINE_TYPES[config.types[index % len(config.types)]]
        self.device_id = f"{self.type.name}-{index:04d}"
        self.sensors = self.type.sensors
        self.fast = index < config.fast_fail
        self.seq = 0
        self.lives: list[Life] = []
        self.down_until: datetime | None = None
        self.regime = int(rng.integers(len(REGIME_LOADS)))
        self.bearing_temp = _AMBIENT + 20.0
        self.winding_temp = _AMBIENT + 30.0
        n = len(self.sensors)
        self.drift_slope = [0.0] * n
        self.drift = [0.0] * n
        self.stuck_left = [0] * n
        self.last: list[float | None] = [None] * n
        if config.maintenance_interval_s is not None:
            self.next_maintenance: datetime | None = config.start + timedelta(
                seconds=config.maintenance_interval_s * float(rng.uniform(0.5, 1.0))
            )
        else:
            self.next_maintenance = None
        self._new_life(config.start)

    # -- hidden state ------------------------------------------------------------------
    @property
    def life(self) -> Life:
        """The current life (ground truth)."""
        return self.lives[-1]

    def damage(self, t: datetime) -> float:
        """Damage at ``t`` in the current life: 0 healthy, 1 failed."""
        life = self.life
        if t <= life.onset_time:
            return 0.0
        span = (life.failure_time - life.onset_time).total_seconds()
        x = (t - life.onset_time).total_seconds() / span
        return 1.0 if x >= 1.0 else x**life.exponent

    def health(self, t: datetime) -> float:
        """Health at ``t``: 1 new, 0 failed (hidden from readings)."""
        return 1.0 - self.damage(t)

    def _new_life(self, t: datetime) -> None:
        rng, cfg = self.rng, self.config
        modes = self.type.modes
        if cfg.failure_modes is not None:
            modes = tuple(m for m in modes if m in cfg.failure_modes)
        mode = str(modes[int(rng.integers(len(modes)))])
        if self.fast and not self.lives:
            total = cfg.fast_fail_s * float(rng.uniform(0.5, 1.0))
            onset = total * float(rng.uniform(0.05, 0.2))
        else:
            total = cfg.mean_life_s * float(rng.uniform(0.6, 1.4))
            onset = total * float(rng.uniform(0.2, 0.5))
        self.lives.append(
            Life(
                self.device_id,
                self.type.name,
                len(self.lives),
                t,
                t + timedelta(seconds=onset),
                t + timedelta(seconds=total),
                mode,
                float(rng.uniform(1.5, 2.5)),
            )
        )
        n = len(self.sensors)
        self.drift_slope = [0.0] * n
        self.drift = [0.0] * n

    def maintain(self, t: datetime) -> None:
        """Maintenance at ``t``: the current life ends and a new one starts (health 1)."""
        self.life.end_time = t
        self.life.end_reason = "maintenance"
        self._new_life(t)

    # -- one step ------------------------------------------------------------------------
    def step(self, t: datetime, hour_of_day: float) -> Reading | None:
        """The reading at ``t``, or None while the machine is down for repair."""
        cfg = self.config
        if self.down_until is not None:
            if t < self.down_until:
                return None
            self.down_until = None
            self._new_life(t)
        if self.next_maintenance is not None and t >= self.next_maintenance:
            assert cfg.maintenance_interval_s is not None
            self.maintain(t)
            self.next_maintenance = t + timedelta(seconds=cfg.maintenance_interval_s)
        if t >= self.life.failure_time:
            self.life.end_time = t
            self.life.end_reason = "failure"
            logger.info(
                "%s failed at %s (%s)", self.device_id, t.isoformat(), self.life.failure_mode
            )
            self.down_until = t + timedelta(seconds=cfg.repair_s)
            return None

        rng = self.rng
        n = len(self.sensors)
        # Plain floats: numpy scalars are slow in arithmetic and leak into the readings.
        u: list[float] = rng.random(3 + 3 * n).tolist()
        z: list[float] = rng.standard_normal(n).tolist()
        # Operating regime: a Markov chain with mean dwell regime_dwell_s.
        if u[0] < cfg.step_s / cfg.regime_dwell_s:
            self.regime = (self.regime + 1 + int(u[1] * (len(REGIME_LOADS) - 1))) % len(
                REGIME_LOADS
            )
        load = REGIME_LOADS[self.regime] * (1.0 + 0.02 * (u[2] - 0.5))
        clean = self._clean(load, self.damage(t), hour_of_day)
        return self._measure(t, clean, load, u, z)

    def _clean(self, load: float, w: float, hour_of_day: float) -> list[float]:
        """True (noise-free) sensor values for this load and damage."""
        typ, mode = self.type, self.life.failure_mode
        ambient = _AMBIENT + 5.0 * math.sin(2 * math.pi * (hour_of_day - 9.0) / 24.0)
        speed_frac = 0.55 + 0.45 * min(load, 1.0)
        speed = typ.rated_speed * speed_frac
        vib_k = current_k = bearing_dt = winding_dt = 0.0
        pressure_k = flow_k = 1.0
        if mode == "bearing_wear":
            vib_k, bearing_dt, current_k = 7.0 * w * w, 40.0 * w * w, 0.06 * w
        elif mode == "overheating":
            winding_dt, bearing_dt, current_k = 80.0 * w, 20.0 * w, 0.25 * w
        elif mode == "imbalance":
            vib_k, bearing_dt = 5.0 * w * speed_frac * speed_frac, 10.0 * w
        elif mode == "seal_leak":
            pressure_k, flow_k, current_k, vib_k = 1.0 - 0.45 * w, 1.0 - 0.35 * w, 0.10 * w, 0.4 * w
        alpha = 1.0 - math.exp(-self.config.step_s / _THERMAL_TAU_S)
        bearing_target = ambient + 20.0 + 15.0 * load + bearing_dt
        winding_target = ambient + 30.0 + 35.0 * load + winding_dt
        self.bearing_temp += (bearing_target - self.bearing_temp) * alpha
        self.winding_temp += (winding_target - self.winding_temp) * alpha
        values = {
            "vibration": typ.base_vibration * (0.7 + 0.3 * speed_frac * speed_frac) * (1.0 + vib_k),
            "bearing_temp": self.bearing_temp,
            "winding_temp": self.winding_temp,
            "motor_current": typ.rated_current * (0.25 + 0.75 * load) * (1.0 + current_k),
            "speed": speed,
            "pressure": typ.rated_pressure * (0.4 + 0.6 * speed_frac * speed_frac) * pressure_k,
            "flow": typ.rated_flow * speed_frac * flow_k,
        }
        return [values[name] for name in self.sensors]

    def _measure(
        self, t: datetime, clean: list[float], load: float, u: list[float], z: list[float]
    ) -> Reading:
        """Apply noise, drift, dropouts and stuck spells; build the reading."""
        faults = self.config.faults
        n = len(self.sensors)
        sensors: dict[str, float | None] = {}
        hours = self.config.step_s / 3600.0
        for i, name in enumerate(self.sensors):
            if u[3 + i] < faults.drift and self.drift_slope[i] == 0.0 and faults.may_drift(name):
                sign = 1.0 if u[3 + n + i] < 0.5 else -1.0
                self.drift_slope[i] = sign * _DRIFT_PER_HOUR * clean[i]
            if self.drift_slope[i] != 0.0:
                cap = _DRIFT_CAP * abs(clean[i])
                self.drift[i] = max(-cap, min(cap, self.drift[i] + self.drift_slope[i] * hours))
            if self.stuck_left[i] > 0:
                self.stuck_left[i] -= 1
                sensors[name] = self.last[i]
                continue
            if u[3 + 2 * n + i] < faults.stuck and self.last[i] is not None:
                self.stuck_left[i] = max(1, int(self.rng.exponential(faults.stuck_steps)))
                sensors[name] = self.last[i]
                continue
            if u[3 + 2 * n + i] > 1.0 - faults.dropout:
                sensors[name] = None
                continue
            rule = SENSOR_RULES[name]
            value = clean[i] + self.drift[i] + faults.noise * _NOISE[name] * z[i]
            value = round(min(rule.high, max(rule.low, value)), 4)
            sensors[name] = value
            self.last[i] = value
        reading = Reading(
            self.device_id,
            t,
            self.seq,
            sensors,
            {"load": round(load, 4), "regime": float(self.regime)},
            {"type": self.type.name},
        )
        self.seq += 1
        return reading


class Fleet:
    """A fleet of machines stepping together in simulated time.

    Args:
        config: the fleet's spec.

    >>> fleet = Fleet(FleetConfig(machines=3, seed=7))
    >>> [r.device_id for r in fleet.step()]
    ['pump-0000', 'motor-0001', 'fan-0002']
    """

    def __init__(self, config: FleetConfig | None = None) -> None:
        self.config = config or FleetConfig()
        children = np.random.SeedSequence(self.config.seed).spawn(self.config.machines)
        types = self.config.types
        self.machines: list[Machine | Turbofan] = [
            (Turbofan if types[i % len(types)] == "turbofan" else Machine)(
                i, self.config, np.random.default_rng(s)
            )
            for i, s in enumerate(children)
        ]
        self.steps_done = 0
        self._by_id = {m.device_id: m for m in self.machines}

    @property
    def now(self) -> datetime:
        """The simulated time of the next step."""
        return self.config.start + timedelta(seconds=self.steps_done * self.config.step_s)

    def machine(self, device_id: str) -> Machine | Turbofan:
        """The machine called ``device_id``.

        Raises:
            SimulatorError: no such machine.
        """
        try:
            return self._by_id[device_id]
        except KeyError:
            raise SimulatorError(f"no machine {device_id!r} in this fleet") from None

    def step(self) -> list[Reading]:
        """Advance one step; the readings of the machines that run."""
        t = self.now
        hour = t.hour + t.minute / 60.0
        out = []
        for machine in self.machines:
            reading = machine.step(t, hour)
            if reading is not None:
                out.append(reading)
        self.steps_done += 1
        return out

    def steps(self, count: int | None = None) -> Iterator[Reading]:
        """Yield readings for ``count`` steps (forever when None), step by step."""
        done = 0
        while count is None or done < count:
            yield from self.step()
            done += 1

    def maintain(self, device_id: str) -> None:
        """Maintain ``device_id`` now: its health is back to 1 (a new life starts)."""
        self.machine(device_id).maintain(self.now)

    def ground_truth(self) -> list[Life]:
        """Every life of every machine so far (the current ones with ``end_reason`` running)."""
        return [life for m in self.machines for life in m.lives]

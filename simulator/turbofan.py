"""The ``turbofan`` machine type: engines that read like NASA C-MAPSS FD001.

A turbofan reports once per operating cycle (``FleetConfig.cycle_s`` simulated seconds,
600 by default, as the C-MAPSS replay adapter): sensors ``s1``..``s21``, ``cycle`` and settings
``setting1``..``setting3``, with C-MAPSS's names, units (:data:`ingest.validation.SENSOR_RULES`)
and decimals, so the default FD001 model can score a simulated fleet.

Model. One life lasts ``L`` cycles, drawn from FD001's distribution of run-to-failure
lengths (:data:`LIFE_DECILES`: min 128, median 199, max 362), or, for the first
``fast_fail`` machines' first life, ``fast_fail_cycles x U(2/3, 1)`` cycles (60-90 by
default). A hidden life fraction ``u`` runs linearly from ``u0`` to 1 over the life; a new
engine starts with unknown initial wear, ``u0 ~ U(0, 0.2)``, a renewed one (after repair or
maintenance) at ``u0 = 0``. The reading of cycle ``k`` (0-based) shows the state at the end
of the cycle, ``u = u0 + (1 - u0)(k + 1) / L``, so the last reading of a life is its
failure cycle, as the last row of an FD001 engine; at the next cycle the engine has failed
(``hpc_degradation``), is down for ``repair_s`` and starts a new life. Each sensor reads::

    value = base + shift * g(u, a) + offset(u) + noise * z,   g(u, a) = (exp(a u) - 1) / (exp(a) - 1)
    offset(u) = o_h + (o_f - o_h) * g(u, a)

The engine's own deviation moves from ``o_h ~ N(0, spread)``, drawn once per engine
(engine-to-engine variation when healthy), to ``o_f ~ N(0, failure_spread)``, drawn per
life (how this life's degradation ends); ``z ~ N(0, 1)`` is drawn per cycle; values are rounded to FD001's decimals (``s17`` is an integer; ``s6``, whose noise
is below FD001's rounding step, and the constant sensors keep more). ``base`` and
``shift`` are derived from :data:`CALIBRATION` (:func:`curves`) so that, over a fleet whose
lives are drawn like FD001's, the mean over cycles with more than 150 cycles of remaining
life is ``healthy`` and the mean over each life's last 5 cycles is ``failure``: the same
statistics, computed the same way, as in FD001. Health (ground truth) is
``1 - g(u, HEALTH_RATE)``: 1 for a renewed engine, 0 at failure.

FD001's constant sensors (``s1``, ``s5``, ``s10``, ``s16``, ``s18``, ``s19``) keep their
value with a tiny relative noise (1e-5); ``s6`` is nearly constant (FD001's noise).
``setting1``/``setting2`` are noise around 0 with FD001's spread; ``setting3`` is 100.
The ``cycle`` sensor counts the cycles of the current life (1 at its first, as C-MAPSS's
time column; it restarts after a repair or maintenance) and has no faults.

Sensor faults follow ``FleetConfig.faults`` as for the other types: dropouts (``None``) and
stuck spells per sensor and cycle; a drifting sensor walks away by 0.1 of its noise per
cycle (capped at 5 noise), and ``faults.noise`` scales the per-cycle noise.

The calibration reads FD001 once, offline; the simulator never reads the data set.
"""

from __future__ import annotations

import functools
import logging
import math
from datetime import datetime, timedelta
from typing import Final, NamedTuple

import numpy as np

from ingest.schema import Reading
from ingest.validation import SENSOR_RULES
from simulator.config import MACHINE_TYPES, FleetConfig
from simulator.life import Life

logger = logging.getLogger(__name__)

__all__ = [
    "CALIBRATION",
    "HEALTH_RATE",
    "INITIAL_WEAR",
    "LIFE_DECILES",
    "SETTING_NOISE",
    "Curve",
    "SensorCalibration",
    "Turbofan",
    "curves",
    "shape",
]


class SensorCalibration(NamedTuple):
    """One C-MAPSS sensor, as measured on FD001's training set.

    Attributes:
        decimals: how FD001 rounds it.
        healthy: mean over the cycles with remaining life > 150.
        noise: standard deviation within an engine over those cycles (per-cycle noise).
        spread: standard deviation of the engines' healthy means, less the part the
            noise explains (engine-to-engine variation).
        failure: mean over each engine's last 5 cycles (``healthy`` when it does not drift).
        failure_spread: standard deviation of the engines' means over their last 5 cycles,
            less the part the noise explains (``spread`` when it does not drift). Most
            sensors converge near failure; the core speeds ``s9``, ``s14`` fan out.
        rate: the fitted ``a`` of the drift shape :func:`shape`; 0 when it does not drift.
    """

    decimals: int
    healthy: float
    noise: float
    spread: float
    failure: float
    failure_spread: float
    rate: float


# Source: NASA C-MAPSS, subset FD001, train_FD001.txt (100 engines run to failure; see
# ../shared/data/cmapss/README.md; Saxena et al., PHM08). Derived once, offline, with the
# script below (numpy, scipy), run in that folder; it prints the rows of CALIBRATION and
# LIFE_DECILES. Units are C-MAPSS's (degR, psia, rpm; ingest.validation.SENSOR_RULES).
# ``rate`` is fitted to the mean normalised trajectory (x - healthy) / (failure - healthy)
# over 40 bins of life fraction, modelled as this simulator's expected curve (initial wear
# u0 ~ U[0, 0.2]) in the same normalisation.
#
#   import numpy as np
#   from scipy.optimize import minimize_scalar
#
#   d = np.loadtxt("train_FD001.txt")
#   unit, cycle = d[:, 0].astype(int), d[:, 1]
#   lives = {k: cycle[unit == k].max() for k in np.unique(unit)}
#   length = np.array([lives[k] for k in unit])
#   rul, frac = length - cycle, cycle / length
#   healthy, failing = rul > 150, rul < 5  # failing: the last 5 cycles
#   print("life deciles", np.percentile(sorted(lives.values()), np.arange(0, 101, 10)))
#
#   def g(u, a):  # the drift shape
#       return np.expm1(a * u) / np.expm1(a)
#
#   def expected_g(x, a):  # at observed life fraction x, over initial wear u0 ~ U[0, 0.2]
#       return np.mean([g(u0 + (1 - u0) * x, a) for u0 in np.linspace(0, 0.2, 21)], axis=0)
#
#   edges = np.linspace(0, 1, 41)
#   bins, mid = np.digitize(frac, edges[1:-1]), (edges[1:] + edges[:-1]) / 2
#   for j in range(21):
#       x = d[:, 5 + j]
#       h, f = x[healthy].mean(), x[failing].mean()
#       engines = [k for k in lives if (healthy & (unit == k)).sum() > 5]
#       var = np.array([x[healthy & (unit == k)].var() for k in engines])
#       n = np.array([(healthy & (unit == k)).sum() for k in engines])
#       means = np.array([x[healthy & (unit == k)].mean() for k in engines])
#       noise = np.sqrt(var.mean())  # within an engine
#       spread = np.sqrt(max(0.0, means.var() - (var / n).mean()))  # between engines
#       last = [x[unit == k][-5:] for k in lives]  # each engine's last 5 cycles
#       lmeans = np.array([v.mean() for v in last])
#       lvar = np.array([v.var(ddof=1) for v in last])
#       end_spread = np.sqrt(max(0.0, lmeans.var() - lvar.mean() / 5))  # between engines
#       rate = 0.0
#       if abs(f - h) > max(3 * x[healthy].std(), 1e-6):  # drifts: fit a
#           curve = np.array([((x[bins == i] - h) / (f - h)).mean() for i in range(40)])
#
#           def loss(a):
#               gh = expected_g(frac[healthy], a).mean()
#               gf = expected_g(frac[failing], a).mean()
#               return (((expected_g(mid, a) - gh) / (gf - gh) - curve) ** 2).sum()
#
#           rate = minimize_scalar(loss, bounds=(0.5, 10), method="bounded").x
#       else:
#           f, end_spread = h, spread
#       print(f"s{j + 1}: {h:.4f} {noise:.4g} {spread:.4g} {f:.4f} {end_spread:.4g} {rate:.2f}")
#
# Noise and spread below 1e-9 (floating-point residue of constant columns) are written 0.
# Fitting one rate to all 14 drifting sensors together gives 4.38 (HEALTH_RATE).
CALIBRATION: Final[dict[str, SensorCalibration]] = {
    # name: SensorCalibration(decimals, healthy, noise, spread, failure, failure_spread, rate)
    "s1": SensorCalibration(2, 518.67, 0.0, 0.0, 518.67, 0.0, 0.0),
    "s2": SensorCalibration(2, 642.3736, 0.3005, 0.2159, 643.6700, 0.0, 4.24),
    "s3": SensorCalibration(2, 1586.9156, 3.934, 2.307, 1602.2891, 1.237, 4.27),
    "s4": SensorCalibration(2, 1402.6792, 3.944, 4.308, 1428.9268, 0.0, 4.19),
    "s5": SensorCalibration(2, 14.62, 0.0, 0.0, 14.62, 0.0, 0.0),
    "s6": SensorCalibration(2, 21.6095, 0.00185, 0.0004718, 21.6095, 0.0004718, 0.0),
    "s7": SensorCalibration(2, 553.9629, 0.4028, 0.4655, 551.4948, 0.2306, 4.12),
    "s8": SensorCalibration(2, 2388.0558, 0.03, 0.04612, 2388.2321, 0.04823, 4.52),
    "s9": SensorCalibration(2, 9057.0073, 4.174, 7.212, 9097.9920, 53.75, 5.23),
    "s10": SensorCalibration(2, 1.3, 0.0, 0.0, 1.3, 0.0, 0.0),
    "s11": SensorCalibration(2, 47.3499, 0.1017, 0.1412, 48.1422, 0.01422, 4.12),
    "s12": SensorCalibration(2, 521.9181, 0.2985, 0.397, 519.8092, 0.2224, 4.15),
    "s13": SensorCalibration(2, 2388.0548, 0.02981, 0.04615, 2388.2335, 0.05077, 4.50),
    "s14": SensorCalibration(2, 8138.2914, 3.092, 7.388, 8166.8665, 48.55, 5.51),
    "s15": SensorCalibration(4, 8.4179, 0.0196, 0.01709, 8.5204, 0.0, 4.23),
    "s16": SensorCalibration(2, 0.03, 0.0, 0.0, 0.03, 0.0, 0.0),
    "s17": SensorCalibration(0, 392.2559, 0.9197, 0.6477, 396.2400, 0.3277, 4.14),
    "s18": SensorCalibration(0, 2388.0, 0.0, 0.0, 2388.0, 0.0, 0.0),
    "s19": SensorCalibration(2, 100.0, 0.0, 0.0, 100.0, 0.0, 0.0),
    "s20": SensorCalibration(2, 38.9328, 0.09744, 0.08301, 38.4460, 0.0, 4.13),
    "s21": SensorCalibration(4, 23.3599, 0.06077, 0.04997, 23.0700, 0.0, 4.07),
}
"""Sensor -> its FD001 statistics (see the comment above this table for the script)."""

LIFE_DECILES: Final = (128.0, 154.9, 167.6, 183.8, 192.6, 199.0, 207.4, 214.3, 234.0, 275.1, 362.0)
"""Deciles (0 %, 10 %, ... 100 %) of FD001's run-to-failure lengths, cycles (mean 206.3).
A life is drawn by linear interpolation between them (mean about 207)."""

SETTING_NOISE: Final = {"setting1": 0.00217, "setting2": 0.000296}
"""FD001's standard deviation of the operational settings 1-2 (4 decimals, mean about 0)."""

HEALTH_RATE: Final = 4.38
"""The rate ``a`` of the health curve (the one rate fitted to all drifting sensors)."""

INITIAL_WEAR: Final = 0.2
"""A new engine starts at a life fraction drawn uniformly in ``[0, INITIAL_WEAR]``."""

SETTING3: Final = 100.0
_CONSTANT_NOISE: Final = 1e-5  # relative; FD001's constant sensors carry none
_CONSTANT_DECIMALS: Final = 8  # enough to keep that tiny noise
_FINE_DECIMALS: Final = 4  # for a sensor whose noise is below half FD001's rounding step
_DRIFT_PER_CYCLE: Final = 0.1  # sensor-fault drift, in noise per cycle
_DRIFT_CAP: Final = 5.0  # in noise
_HEALTHY_RUL: Final = 150
_FAILING_CYCLES: Final = 5
_FAILURE_MODE: Final = "hpc_degradation"


def shape(u: float, a: float) -> float:
    """The drift shape: 0 at ``u = 0``, 1 at ``u = 1``, exponential in between.

    >>> shape(0.0, 4.0), shape(1.0, 4.0), round(shape(0.5, 4.0), 4)
    (0.0, 1.0, 0.1192)
    """
    return math.expm1(a * u) / math.expm1(a)


class Curve(NamedTuple):
    """A sensor's noise-free level over life: ``base + shift * shape(u, rate)``."""

    base: float
    shift: float
    rate: float


def _decimals(cal: SensorCalibration) -> int:
    """How to round a sensor: FD001's decimals, unless that would erase its noise.

    FD001's constant sensors get :data:`_CONSTANT_DECIMALS` (their tiny noise would round
    away); a sensor whose noise is below half of FD001's rounding step (``s6``: 0.0019 at
    0.01) gets :data:`_FINE_DECIMALS`, so its healthy mean and spread match FD001's.
    """
    if cal.noise == 0.0:
        return _CONSTANT_DECIMALS
    if cal.noise < 0.5 * 10.0**-cal.decimals:
        return _FINE_DECIMALS
    return cal.decimals


def _draw_life(unit_random: float) -> int:
    """A life length in cycles from :data:`LIFE_DECILES`, for a uniform draw in [0, 1)."""
    quantiles = np.linspace(0.0, 1.0, len(LIFE_DECILES))
    return round(float(np.interp(unit_random, quantiles, LIFE_DECILES)))


@functools.cache
def curves() -> dict[str, Curve]:
    """Each sensor's :class:`Curve`, so the simulated fleet reproduces :data:`CALIBRATION`.

    The mean of ``shape`` over the cycles with remaining life > 150 (``gh``) and over the
    last 5 cycles (``gf``) of lives drawn like FD001's (with initial wear) are computed
    once; then ``base + shift * gh = healthy`` and ``base + shift * gf = failure``.
    """
    us, ruls = [], []
    for q in (np.arange(200) + 0.5) / 200:
        length = _draw_life(float(q))
        k = np.arange(length)
        for u0 in (np.arange(10) + 0.5) / 10 * INITIAL_WEAR:
            us.append(u0 + (1.0 - u0) * (k + 1) / length)
            ruls.append(length - 1 - k)
    u, rul = np.concatenate(us), np.concatenate(ruls)
    healthy, failing = rul > _HEALTHY_RUL, rul < _FAILING_CYCLES
    out = {}
    for name, cal in CALIBRATION.items():
        if cal.rate == 0.0:
            out[name] = Curve(cal.healthy, 0.0, 0.0)
            continue
        g = np.expm1(cal.rate * u) / math.expm1(cal.rate)
        gh, gf = float(g[healthy].mean()), float(g[failing].mean())
        shift = (cal.failure - cal.healthy) / (gf - gh)
        out[name] = Curve(cal.healthy - shift * gh, shift, cal.rate)
    return out


class Turbofan:
    """One simulated turbofan engine. Use it through :class:`simulator.fleet.Fleet`.

    It has the public surface of :class:`simulator.fleet.Machine` (``step``, ``maintain``,
    ``health``, ``damage``, ``life``, ``lives``), but reports once per cycle: ``step``
    returns None at the fleet steps between two cycles.
    """

    def __init__(self, index: int, config: FleetConfig, rng: np.random.Generator) -> None:
        self.index = index
        self.config = config
        self.rng = rng
        self.type = MACHINE_TYPES["turbofan"]
        self.device_id = f"{self.type.name}-{index:04d}"
        self.sensors = self.type.sensors
        self.fast = index < config.fast_fail
        self.seq = 0
        self.lives: list[Life] = []
        self.down_until: datetime | None = None
        self.cycle = timedelta(seconds=config.cycle_s)
        self.next_cycle = config.start
        table = curves()
        cals = [CALIBRATION[name] for name in self.sensors]
        self._curves = [table[name] for name in self.sensors]
        self._noise = [c.noise or _CONSTANT_NOISE * abs(c.healthy) for c in cals]
        self._decimals = [_decimals(c) for c in cals]
        # Rounding adds variance q**2 / 12 (q = 10**-decimals; 1/12 for s17): take it out.
        self._raw_noise = [
            math.sqrt(max(0.0, s * s - (10.0**-d) ** 2 / 12.0))
            for s, d in zip(self._noise, self._decimals, strict=True)
        ]
        spreads = np.array([c.spread for c in cals])
        self.offset: list[float] = (rng.standard_normal(len(cals)) * spreads).tolist()
        self._end_spreads = np.array([c.failure_spread for c in cals])
        self.end_offset = self.offset
        n = len(self.sensors)
        self.drift_slope = [0.0] * n
        self.drift = [0.0] * n
        self.stuck_left = [0] * n
        self.last: list[float | None] = [None] * n
        self.u0 = 0.0
        self.first_cycle = config.start
        if config.maintenance_interval_s is not None:
            self.next_maintenance: datetime | None = config.start + timedelta(
                seconds=config.maintenance_interval_s * float(rng.uniform(0.5, 1.0))
            )
        else:
            self.next_maintenance = None
        self._new_life(config.start, config.start)

    # -- hidden state ------------------------------------------------------------------
    @property
    def life(self) -> Life:
        """The current life (ground truth)."""
        return self.lives[-1]

    def fraction(self, t: datetime) -> float:
        """The hidden life fraction ``u`` at ``t``: ``u0`` at the life's start, 1 at failure."""
        life = self.life
        span = (life.failure_time - self.first_cycle).total_seconds()
        x = (t - self.first_cycle).total_seconds() / span
        return self.u0 + (1.0 - self.u0) * min(1.0, max(0.0, x))

    def damage(self, t: datetime) -> float:
        """Damage at ``t`` in the current life: 0 healthy, 1 failed."""
        return shape(self.fraction(t), HEALTH_RATE)

    def health(self, t: datetime) -> float:
        """Health at ``t``: 1 new, 0 failed (hidden from readings)."""
        return 1.0 - self.damage(t)

    def _new_life(self, t: datetime, first_cycle: datetime) -> None:
        rng, cfg = self.rng, self.config
        first = not self.lives
        if self.fast and first:
            cycles = max(2, round(cfg.fast_fail_cycles * float(rng.uniform(2.0 / 3.0, 1.0))))
        else:
            cycles = _draw_life(float(rng.random()))
        self.u0 = float(rng.uniform(0.0, INITIAL_WEAR)) if first else 0.0
        self.end_offset = (rng.standard_normal(len(self.sensors)) * self._end_spreads).tolist()
        self.first_cycle = first_cycle
        self.lives.append(
            Life(
                self.device_id,
                self.type.name,
                len(self.lives),
                t,
                t,
                first_cycle + cycles * self.cycle,
                _FAILURE_MODE,
                HEALTH_RATE,
            )
        )
        n = len(self.sensors)
        self.drift_slope = [0.0] * n
        self.drift = [0.0] * n

    def maintain(self, t: datetime) -> None:
        """Maintenance at ``t``: the current life ends and a new one starts (health 1)."""
        self.life.end_time = t
        self.life.end_reason = "maintenance"
        self._new_life(t, max(t, self.next_cycle))

    # -- one cycle -----------------------------------------------------------------------
    def step(self, t: datetime, hour_of_day: float) -> Reading | None:
        """The reading of the cycle due at ``t``, or None (between cycles, or down)."""
        slot = self.next_cycle
        if t < slot:
            return None
        reading = self._cycle(slot)
        self.next_cycle = slot + self.cycle
        return reading

    def _cycle(self, slot: datetime) -> Reading | None:
        cfg = self.config
        if self.down_until is not None:
            if slot < self.down_until:
                return None
            self.down_until = None
            self._new_life(slot, slot)
        if self.next_maintenance is not None and slot >= self.next_maintenance:
            assert cfg.maintenance_interval_s is not None
            self.maintain(slot)
            self.next_maintenance = slot + timedelta(seconds=cfg.maintenance_interval_s)
        if slot >= self.life.failure_time:
            self.life.end_time = slot
            self.life.end_reason = "failure"
            logger.info("%s failed at %s (%s)", self.device_id, slot.isoformat(), _FAILURE_MODE)
            self.down_until = slot + timedelta(seconds=cfg.repair_s)
            return None
        u = self.fraction(slot + self.cycle)  # the state at the end of this cycle
        n = len(self.sensors)
        # Plain floats: numpy scalars are slow in arithmetic and leak into the readings.
        draws: list[float] = self.rng.random(3 * n).tolist()
        z: list[float] = self.rng.standard_normal(n + 2).tolist()
        faults = cfg.faults
        sensors: dict[str, float | None] = {}
        for i, name in enumerate(self.sensors):
            curve = self._curves[i]
            if draws[i] < faults.drift and self.drift_slope[i] == 0.0 and faults.may_drift(name):
                sign = 1.0 if draws[n + i] < 0.5 else -1.0
                self.drift_slope[i] = sign * _DRIFT_PER_CYCLE * self._noise[i]
            if self.drift_slope[i] != 0.0:
                cap = _DRIFT_CAP * self._noise[i]
                self.drift[i] = max(-cap, min(cap, self.drift[i] + self.drift_slope[i]))
            if self.stuck_left[i] > 0:
                self.stuck_left[i] -= 1
                sensors[name] = self.last[i]
                continue
            if draws[2 * n + i] < faults.stuck and self.last[i] is not None:
                self.stuck_left[i] = max(1, int(self.rng.exponential(faults.stuck_steps)))
                sensors[name] = self.last[i]
                continue
            if draws[2 * n + i] > 1.0 - faults.dropout:
                sensors[name] = None
                continue
            level = curve.base + self.offset[i]
            if curve.shift:
                g = shape(u, curve.rate)
                level += (curve.shift + self.end_offset[i] - self.offset[i]) * g
            value = level + self.drift[i] + faults.noise * self._raw_noise[i] * z[i]
            rule = SENSOR_RULES[name]
            value = round(min(rule.high, max(rule.low, value)), self._decimals[i])
            sensors[name] = value
            self.last[i] = value
        # The age counter, as C-MAPSS's time column: cycles of this life so far, 1 at its first
        # cycle. A counter, not a measurement: no sensor faults.
        sensors["cycle"] = float((slot - self.first_cycle) // self.cycle + 1)
        settings = {
            "setting1": round(faults.noise * SETTING_NOISE["setting1"] * z[n], 4),
            "setting2": round(faults.noise * SETTING_NOISE["setting2"] * z[n + 1], 4),
            "setting3": SETTING3,
        }
        reading = Reading(self.device_id, slot, self.seq, sensors, settings, {"type": "turbofan"})
        self.seq += 1
        return reading

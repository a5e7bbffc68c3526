"""Prognos simulator: a fleet of machines that wear, fail and publish sensor readings.

A :class:`Fleet` (settings in :class:`FleetConfig`) steps its machines through their lives;
:func:`run_fleet` publishes their readings through an ``ingest`` producer and/or records
them, at a :class:`Pace`.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "FaultRates",
    "Fleet",
    "FleetConfig",
    "Life",
    "Pace",
    "RunReport",
    "SimulatorError",
    "run_fleet",
]

_EXPORTS = {
    "FaultRates": "simulator.config",
    "Fleet": "simulator.fleet",
    "FleetConfig": "simulator.config",
    "Life": "simulator.fleet",
    "Pace": "simulator.run",
    "RunReport": "simulator.run",
    "SimulatorError": "simulator.errors",
    "run_fleet": "simulator.run",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import simulator` (and `prognos --help`) stays cheap.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""Ground truth: one :class:`Life` per machine life, kept beside the readings, never inside."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

logger = logging.getLogger(__name__)

__all__ = ["Life"]


@dataclass
class Life:
    """Ground truth of one life of one machine, from start (new or renewed) to its end.

    Attributes:
        device_id: the machine.
        machine_type: its type.
        life: 0 for the first life, then 1, 2...
        start_time: when this life started.
        onset_time: when degradation began.
        failure_time: when the machine fails (or would have, had the run or a maintenance
            not ended the life first).
        failure_mode: the mode that degrades it.
        exponent: the shape of the damage curve: the power ``p`` of
            :class:`simulator.fleet.Machine`, the exponential rate ``a`` of
            :class:`simulator.turbofan.Turbofan`.
        end_time: when the life ended (failure or maintenance), None while it runs.
        end_reason: ``failure``, ``maintenance`` or ``running``.
    """

    device_id: str
    machine_type: str
    life: int
    start_time: datetime
    onset_time: datetime
    failure_time: datetime
    failure_mode: str
    exponent: float
    end_time: datetime | None = None
    end_reason: str = "running"

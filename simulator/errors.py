"""Errors raised by :mod:`simulator`.

Hierarchy::

    SimulatorError   root of this package; ``retriable`` says if a retry can help
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Root of the errors raised by :mod:`simulator`."""

    retriable = False

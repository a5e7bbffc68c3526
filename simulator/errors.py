"""Errors raised by :mod:`simulator`.

Hierarchy::

    SimulatorError      root of this package; ``retriable`` says if a retry can help
    ├── ConfigError     a fleet setting is out of range; the message names it and the fix
    └── RecordError     the recording folder cannot be written
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Root of the errors raised by :mod:`simulator`."""

    retriable = False


class ConfigError(SimulatorError):
    """A fleet setting is out of range."""


class RecordError(SimulatorError):
    """The recording cannot be written (folder not writable, disk full)."""

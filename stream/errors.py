"""Errors raised by :mod:`stream`.

Hierarchy::

    StreamError        root of this package; ``retriable`` says if a retry can help
    └── PreflightError Spark cannot start here: Java or the Kafka connector is wrong
"""

from __future__ import annotations


class StreamError(Exception):
    """Root of the errors raised by :mod:`stream`."""

    retriable = False


class PreflightError(StreamError):
    """The environment cannot run Spark with the Kafka connector; the message says why."""

"""Errors raised by :mod:`stream`.

Hierarchy::

    StreamError              root of this package; ``retriable`` says if a retry can help
    ├── PreflightError       Spark cannot start here: Java or the Kafka connector is wrong
    ├── ConfigError          a setting of the job is invalid (names the setting and the fix)
    ├── CheckpointMismatchError  the checkpoint was written by an incompatible job
    ├── ServiceUnreachableError  Kafka or Redis does not answer at start-up (retriable)
    │   └── RedisUnreachableError  a subscriber's Redis does not answer (retriable)
    ├── AlertFormatError     an alert event is not valid JSON or lacks a field
    ├── CoverageError        the readings share no sensor with the model
    └── SinkError            Redis failed while writing a batch (retriable)
"""

from __future__ import annotations


class StreamError(Exception):
    """Root of the errors raised by :mod:`stream`."""

    retriable = False


class PreflightError(StreamError):
    """The environment cannot run Spark with the Kafka connector; the message says why."""


class ConfigError(StreamError):
    """A setting of the stream job is invalid."""


class CheckpointMismatchError(StreamError):
    """The checkpoint belongs to a job whose grouping, windows or model inputs differ."""


class ServiceUnreachableError(StreamError):
    """Kafka or Redis does not answer at start-up."""

    retriable = True


class RedisUnreachableError(ServiceUnreachableError):
    """Redis does not answer (at start, or for longer than the reconnect timeout)."""

    retriable = True


class AlertFormatError(StreamError):
    """An alert event is not valid JSON or lacks a field, or a field has the wrong type."""


class CoverageError(StreamError):
    """The readings carry none of the model's sensors: every risk would be meaningless."""


class SinkError(StreamError):
    """Redis failed while writing a batch; the batch is not committed."""

    retriable = True

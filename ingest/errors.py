"""Errors raised by :mod:`ingest`.

Every error says whether a retry can help (``retriable``) and, where bad input is the
cause, names the input, the field and the fix.

Hierarchy::

    IngestError                     root of this package; ``retriable`` says if a retry can help
    ├── ConfigError                 a setting is missing, malformed or unsafe
    │   ├── IdempotenceDisabledError   a producer setting would turn idempotence or acks=all off
    │   └── CatalogueError             a sensor catalogue is malformed (ingest.catalogue)
    ├── BrokerUnavailableError      the Kafka bootstrap servers do not answer (retriable)
    ├── DeliveryError               records were not acknowledged by the broker (retriable)
    ├── TopicError                  the cluster refused to create the readings or dead-letter topic
    ├── InvalidReadingError         a Reading was built with a value of the wrong kind
    ├── EncodeError                 a Reading cannot be written in the wire format (e.g. NaN)
    ├── DecodeError                 bytes are not a valid reading; ``field`` and ``rule`` say why
    └── ReplayError                 a recording cannot be replayed
        ├── InputFileError          the file is missing, unreadable or of an unknown format
        ├── MappingError            the column mapping names a column the file does not have
        └── RowError                a row cannot be parsed (``--strict``); ``source`` is file:line
"""

from __future__ import annotations


class IngestError(Exception):
    """Root of the errors raised by :mod:`ingest`."""

    retriable = False


class ConfigError(IngestError):
    """A setting is missing, malformed or unsafe; the message names the setting."""


class IdempotenceDisabledError(ConfigError):
    """The caller asked for producer settings that would disable idempotence or acks=all."""


class BrokerUnavailableError(IngestError):
    """No broker answered at the configured bootstrap servers."""

    retriable = True


class DeliveryError(IngestError):
    """Some records were not acknowledged by the broker.

    Attributes:
        failed: how many records failed.
        first_error: the first error the client reported, as text.
    """

    retriable = True

    def __init__(self, message: str, failed: int = 0, first_error: str | None = None) -> None:
        super().__init__(message)
        self.failed = failed
        self.first_error = first_error


class TopicError(IngestError):
    """The cluster refused to create a topic (not allowed, too many replicas, a policy).

    The message names the topic, the cluster's reason and the setting or step that fixes it.
    """


class InvalidReadingError(IngestError, ValueError):
    """A :class:`ingest.schema.Reading` was built with a value of the wrong kind."""


class _FieldError(IngestError):
    """An error about one field of a reading, by a named rule."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(f"{field}: {message} (rule: {rule})")
        self.field = field
        self.rule = rule
        self.reason = message


class EncodeError(_FieldError):
    """A reading cannot be encoded (a non-finite number, a value JSON cannot hold).

    Attributes:
        field: the offending field, in wire notation (``x.vibration``).
        rule: the rule it breaks (``finite``, ``type``).
        reason: a sentence for humans.
    """


class DecodeError(_FieldError):
    """Bytes are not a valid reading in the wire format.

    Attributes:
        field: the offending field in wire notation (``t``, ``x.vibration``), or
            ``payload`` when the bytes as a whole are wrong.
        rule: the rule it breaks: ``size``, ``utf8``, ``json``, ``object``, ``required``,
            ``version``, ``type``, ``timestamp``, ``unknown-field``.
        reason: a sentence for humans.
    """


class ReplayError(IngestError):
    """A recording cannot be replayed."""


class InputFileError(ReplayError):
    """The recording is missing, unreadable or in a format that cannot be told apart."""


class MappingError(ReplayError):
    """The column mapping does not fit the recording (unknown column, bad mapping file)."""


class RowError(ReplayError):
    """A row of a recording cannot be turned into a reading.

    Attributes:
        source: ``file:line`` of the row.
        field: the column or reading field at fault.
        rule: the rule it breaks (``number``, ``required``, ``timestamp``, ``columns``...).
        raw: the row's original bytes.
    """

    def __init__(self, source: str, field: str, rule: str, message: str, raw: bytes = b"") -> None:
        super().__init__(f"{source}: {field}: {message} (rule: {rule})")
        self.source = source
        self.field = field
        self.rule = rule
        self.reason = message
        self.raw = raw

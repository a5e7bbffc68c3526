"""Errors raised by :mod:`ingest`.

Hierarchy::

    IngestError                 root of this package; ``retriable`` says if a retry can help
    └── BrokerUnavailableError  the Kafka bootstrap servers do not answer (retriable)
"""

from __future__ import annotations


class IngestError(Exception):
    """Root of the errors raised by :mod:`ingest`."""

    retriable = False


class BrokerUnavailableError(IngestError):
    """No broker answered at the configured bootstrap servers."""

    retriable = True

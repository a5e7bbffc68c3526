"""Errors raised by :mod:`models`.

Hierarchy::

    ModelError   root of this package; ``retriable`` says if a retry can help
"""

from __future__ import annotations


class ModelError(Exception):
    """Root of the errors raised by :mod:`models`."""

    retriable = False

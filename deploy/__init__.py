"""Prognos deployment: what runs the system, on top of every other package.

``deploy`` starts the local stack (a real Apache Kafka broker in KRaft mode and a real
``redis-server``, :class:`Stack` with :class:`StackConfig`), resolves the broker's and
Spark's Kafka connector jars from Maven Central, builds the Spark session a command runs
in (:func:`spark_session`), and hosts the ``prognos`` command with the whole-system
commands (``stack``, ``stream``, ``smoke``, ``demo``, ``status``).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DemoConfig",
    "DeployError",
    "Stack",
    "StackConfig",
    "run_demo",
    "spark_session",
]

_EXPORTS = {
    "DemoConfig": "deploy.demo",
    "DeployError": "deploy.errors",
    "Stack": "deploy.stack",
    "StackConfig": "deploy.config",
    "run_demo": "deploy.demo",
    "spark_session": "deploy.spark",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import deploy` (and `prognos --help`) stays cheap.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""Prognos deployment: the local stack (Kafka, Redis, Spark's Kafka connector) and the CLI.

``deploy`` holds what runs the system. It starts a real Apache Kafka broker in KRaft mode
and a real ``redis-server`` for laptops and CI, resolves the broker's and Spark's Kafka
connector jars from Maven Central, and hosts the ``prognos`` command's dispatcher.
"""

from __future__ import annotations

from deploy.config import StackConfig
from deploy.errors import DeployError

__all__ = ["DeployError", "StackConfig"]

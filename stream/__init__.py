"""Prognos stream: the Spark Structured Streaming job from Kafka to Redis."""

from __future__ import annotations

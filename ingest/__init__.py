"""Prognos ingest: the reading schema and codecs, validation and the dead-letter topic,
Kafka producers and consumers, and replay of recorded data."""

from __future__ import annotations

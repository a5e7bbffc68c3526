"""Prognos simulator: a fleet of machines that wear, fail and publish sensor readings."""

from __future__ import annotations

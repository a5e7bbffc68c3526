"""A stop that interrupts a batch which had just started does not log Spark's ERROR for the
broadcast it cut short; the logger's level is restored afterwards."""

from __future__ import annotations

from typing import Any

from stream.runner import _STOP_NOISE, _quiet_interrupted_batch


def test_the_stop_noise_is_off_only_while_the_query_stops(spark: Any) -> None:
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j
    (name,) = _STOP_NOISE
    before = str(log4j.LogManager.getLogger(name).getLevel())
    with _quiet_interrupted_batch():
        assert str(log4j.LogManager.getLogger(name).getLevel()) == "OFF"
    assert str(log4j.LogManager.getLogger(name).getLevel()) == before != "OFF"

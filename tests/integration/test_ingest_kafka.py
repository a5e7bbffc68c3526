"""Producer and consumer against a real broker: nothing lost, nothing duplicated, dead letters."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from ingest.codec import decode, encode
from ingest.config import KafkaConfig
from ingest.consumer import read_readings, read_records
from ingest.deadletter import HEADER_FIELD, HEADER_REASON, HEADER_RULE, HEADER_SOURCE
from ingest.producer import ReadingProducer
from ingest.schema import Reading
from simulator.config import FleetConfig
from simulator.fleet import Fleet
from simulator.run import Pace, run_fleet


def test_a_simulated_run_is_consumed_back_reading_for_reading(
    kafka_bootstrap: str, unique_topic: str, dlq_topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kafka")  # the broker start quiets it
    config = FleetConfig(machines=25, seed=17, fast_fail=3, fast_fail_s=120, step_s=2.0)
    expected = list(Fleet(config).steps(200))
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic=unique_topic)
    with ReadingProducer(kafka) as producer:
        report = run_fleet(Fleet(config), steps=200, pace=Pace(None), producer=producer)
    assert report.readings == len(expected) and report.dead_letters == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

    got = read_readings(kafka_bootstrap, unique_topic, expected=len(expected), timeout_s=60)
    assert len(got) == len(expected), f"{len(expected) - len(got)} readings lost"
    sent = Counter(encode(r) for r in expected)
    received = Counter(encode(r) for r in got)
    assert received == sent, "readings lost, duplicated or altered"
    # Keyed by device: each device's readings arrive in order.
    seqs: dict[str, list[int]] = {}
    for r in got:
        seqs.setdefault(r.device_id, []).append(r.seq)
    assert all(s == sorted(s) for s in seqs.values())


def test_invalid_readings_go_to_the_dead_letter_topic_and_valid_ones_are_kept(
    kafka_bootstrap: str, unique_topic: str, dlq_topic: str
) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    good = [Reading("pump-0001", t, i, {"vibration": 2.0 + i}) for i in range(5)]
    bad = [
        Reading("pump-0002", t, 0, {"vibration": 500.0}),
        Reading("pump-0002", t, 1, {"vibration": math.nan}),
        Reading("", t, 2, {"vibration": 1.0}),
    ]
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic=unique_topic)
    with ReadingProducer(kafka) as producer:
        results = [producer.send(r) for r in [good[0], *bad, *good[1:]]]
    assert results == [True, False, False, False, True, True, True, True]
    assert producer.stats().dead_letters == {
        "x.vibration/range": 1,
        "x.vibration/finite": 1,
        "d/required": 1,
    }

    assert read_readings(kafka_bootstrap, unique_topic, expected=5) == good
    letters = read_records(kafka_bootstrap, dlq_topic, expected=3, decode_values=False)
    assert [(x.headers[HEADER_FIELD], x.headers[HEADER_RULE]) for x in letters] == [
        ("x.vibration", "range"),
        ("x.vibration", "finite"),
        ("d", "required"),
    ]
    assert all(x.headers[HEADER_SOURCE] == "producer" for x in letters)
    assert "outside [0, 100]" in letters[0].headers[HEADER_REASON]
    assert decode(letters[0].value) == bad[0]  # the reading itself, readable
    assert letters[0].key == b"pump-0002"


def test_producer_flushes_what_it_was_given_on_ctrl_c(
    kafka_bootstrap: str, unique_topic: str, dlq_topic: str
) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic=unique_topic)
    readings = [Reading("fan-0001", t, i, {"speed": 900.0}) for i in range(300)]
    with pytest.raises(KeyboardInterrupt), ReadingProducer(kafka) as producer:
        for r in readings:
            producer.send(r)
        raise KeyboardInterrupt
    assert read_readings(kafka_bootstrap, unique_topic, expected=300) == readings


def test_the_cli_publishes_a_simulation(
    kafka_bootstrap: str,
    unique_topic: str,
    dlq_topic: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from deploy.cli import main

    monkeypatch.setenv("PROGNOS_KAFKA_BOOTSTRAP", kafka_bootstrap)
    code = main(
        [
            "simulate",
            "--machines",
            "6",
            "--steps",
            "50",
            "--rate",
            "max",
            "--seed",
            "3",
            "--topic",
            unique_topic,
        ]
    )
    assert code == 0
    assert "300 readings" in capsys.readouterr().out
    expected = list(Fleet(replace(FleetConfig(machines=6, seed=3))).steps(50))
    got = read_readings(kafka_bootstrap, unique_topic, expected=300)
    assert Counter(encode(r) for r in got) == Counter(encode(r) for r in expected)

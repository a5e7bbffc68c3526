"""Replay against a real broker: all of C-MAPSS FD001, and malformed rows to the dead-letter topic."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.config import KafkaConfig
from ingest.consumer import read_readings, read_records
from ingest.deadletter import HEADER_FIELD, HEADER_REASON, HEADER_RULE, HEADER_SOURCE
from ingest.producer import ReadingProducer
from ingest.replay import ReplayOptions, replay_file
from ingest.sources import CMAPSS_COLUMNS


@pytest.fixture
def fresh_topic(kafka_bootstrap: str) -> Iterator[str]:
    """A topic name nobody has created; it and its dead-letter topic are deleted afterwards."""
    from kafka import KafkaAdminClient

    name = f"test-fresh-{uuid.uuid4().hex[:12]}"
    yield name
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="prognos-tests")
    try:
        present = [t for t in (name, f"{name}.dlq") if t in admin.list_topics()]
        if present:
            admin.delete_topics(present)
    finally:
        admin.close()


def test_a_first_replay_creates_its_topics_and_logs_no_error(
    kafka_bootstrap: str,
    fresh_topic: str,
    cmapss_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The session's broker start quiets the "kafka" logger; hear everything from INFO up.
    caplog.set_level(logging.INFO, logger="kafka")
    caplog.set_level(logging.INFO, logger="ingest")
    lines = (cmapss_dir / "train_FD001.txt").read_text().splitlines()[:50]
    path = tmp_path / "train_FD001.txt"
    path.write_text("\n".join([*lines[:10], "1 99 0.1", *lines[10:]]) + "\n")  # one dead letter
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic=fresh_topic, partitions=3)
    with ReadingProducer(kafka, source=str(path)) as producer:
        report = replay_file(path, producer, ReplayOptions(progress=False))
    assert (report.sent, report.dead_lettered) == (50, 1)

    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert any(r.name.startswith("kafka.") for r in caplog.records), "kafka's logs not captured"
    assert f"created topic {fresh_topic}: 3 partitions" in caplog.text
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="prognos-tests")
    try:
        described = {
            t["name"]: t for t in admin.describe_topics([fresh_topic, f"{fresh_topic}.dlq"])
        }
    finally:
        admin.close()
    assert {name: len(t["partitions"]) for name, t in described.items()} == {
        fresh_topic: 3,
        f"{fresh_topic}.dlq": 3,
    }
    assert len(read_readings(kafka_bootstrap, fresh_topic, expected=50)) == 50
    [letter] = read_records(kafka_bootstrap, f"{fresh_topic}.dlq", expected=1, decode_values=False)
    assert letter.headers[HEADER_SOURCE] == f"{path}:11"


def test_replaying_train_fd001_delivers_every_reading(
    kafka_bootstrap: str, unique_topic: str, dlq_topic: str, cmapss_dir: Path
) -> None:
    path = cmapss_dir / "train_FD001.txt"
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic=unique_topic)
    with ReadingProducer(kafka, source=str(path)) as producer:
        report = replay_file(path, producer, ReplayOptions(progress=False))
    assert (report.rows, report.sent, report.dead_lettered) == (20_631, 20_631, 0)

    got = read_readings(kafka_bootstrap, unique_topic, expected=20_631, timeout_s=90)
    assert len(got) == 20_631
    by_key = {(r.device_id, r.seq): r for r in got}
    assert len(by_key) == 20_631, "duplicated (device, cycle)"
    for line in path.read_text().splitlines():
        values = dict(zip(CMAPSS_COLUMNS, (float(x) for x in line.split()), strict=True))
        reading = by_key[(f"FD001-{int(values['unit']):03d}", int(values["cycle"]))]
        assert reading.sensors == {
            **{f"s{i}": values[f"s{i}"] for i in range(1, 22)},
            "cycle": values["cycle"],
        }
        assert reading.settings == {f"setting{i}": values[f"setting{i}"] for i in range(1, 4)}
    assert len({r.device_id for r in got}) == 100
    assert max(r.seq for r in got if r.device_id == "FD001-069") == 362


def test_malformed_rows_land_in_the_dead_letter_topic_with_their_reason(
    kafka_bootstrap: str, unique_topic: str, dlq_topic: str, cmapss_dir: Path, tmp_path: Path
) -> None:
    lines = (cmapss_dir / "train_FD001.txt").read_text().splitlines()[:40]
    malformed = [
        "1 41 -0.0007 -0.0004",  # truncated row
        lines[0].replace("641.82", "x641"),  # not a number in s2
        lines[1].replace("1591.82", "99999.0"),  # s3 out of its physical range
    ]
    path = tmp_path / "train_FD001.txt"
    path.write_text("\n".join([*lines[:20], *malformed, *lines[20:]]) + "\n")
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic=unique_topic)
    with ReadingProducer(kafka) as producer:
        report = replay_file(path, producer, ReplayOptions(progress=False))
    assert report.sent == 40 and report.dead_lettered == 3

    assert len(read_readings(kafka_bootstrap, unique_topic, expected=40)) == 40
    letters = read_records(kafka_bootstrap, dlq_topic, expected=3, decode_values=False)
    by_source = {x.headers[HEADER_SOURCE]: x for x in letters}
    assert set(by_source) == {f"{path}:21", f"{path}:22", f"{path}:23"}
    assert by_source[f"{path}:21"].value == malformed[0].encode()
    assert by_source[f"{path}:22"].value == malformed[1].encode()
    assert (
        by_source[f"{path}:22"].headers[HEADER_FIELD],
        by_source[f"{path}:22"].headers[HEADER_RULE],
    ) == ("s2", "number")
    assert (
        by_source[f"{path}:23"].headers[HEADER_FIELD],
        by_source[f"{path}:23"].headers[HEADER_RULE],
    ) == ("x.s3", "range")
    assert "99999.0" in by_source[f"{path}:23"].headers[HEADER_REASON]
    assert by_source[f"{path}:21"].headers[HEADER_RULE] == "columns"


def test_cli_replays_csv_with_a_mapping_and_reports_bad_rows(
    kafka_bootstrap: str,
    unique_topic: str,
    dlq_topic: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from deploy.cli import main

    data = tmp_path / "plant.csv"
    data.write_text("machine,ts,vib\nm1,1767225600,1.5\nm1,1767225601,oops\nm2,1767225602,2.5\n")
    monkeypatch.setenv("PROGNOS_KAFKA_BOOTSTRAP", kafka_bootstrap)
    code = main(
        [
            "replay",
            str(data),
            "--device-column",
            "machine",
            "--time-column",
            "ts",
            "--time-format",
            "epoch_s",
            "--sensors",
            "vibration=vib",
            "--as-fast-as-possible",
            "--topic",
            unique_topic,
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "2 readings" in captured.out and "1 dead letters" in captured.out
    assert f"{data}:3" in captured.err
    assert [r.sensors for r in read_readings(kafka_bootstrap, unique_topic, expected=2)] == [
        {"vibration": 1.5},
        {"vibration": 2.5},
    ]
    [letter] = read_records(kafka_bootstrap, dlq_topic, expected=1, decode_values=False)
    assert letter.value == b"m1,1767225601,oops" and letter.headers[HEADER_FIELD] == "vib"

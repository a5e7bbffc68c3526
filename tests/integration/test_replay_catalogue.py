"""A new user's recording against a real broker: one rule rejecting it is reported at once
with the fix; the catalogue ``prognos catalogue infer`` proposes replays it with no false
dead letter (a slice of the Backblaze sample; cite Backblaze, see its README)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from deploy.cli import main
from ingest.catalogue import Catalogue
from ingest.columns import ColumnMapping
from ingest.config import KafkaConfig
from ingest.consumer import read_readings, read_records
from ingest.deadletter import HEADER_RULE
from ingest.producer import ReadingProducer
from ingest.replay import ReplayOptions, replay_file

ROOT = Path(__file__).resolve().parents[2]
BACKBLAZE = ROOT.parent / "shared" / "data" / "backblaze" / "drives_sample3000.csv"
ROWS = 3_000


def _plant(path: Path, rows: int) -> Path:
    """Hourly readings of 4 machines whose ``pressure`` is in psi (the default catalogue's
    simulator range is 0-40 bar): every row breaks the same rule."""
    lines = ["machine,ts,pressure,temp"]
    for i in range(rows):
        hour, machine = divmod(i, 4)
        lines.append(f"m{machine},2026-01-01T{hour % 24:02d}:00:00Z,{80 + i % 7}.5,{40 + i % 3}.0")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_recording_rejected_by_one_rule_is_reported_at_once_with_the_fix(
    kafka_bootstrap: str,
    unique_topic: str,
    dlq_topic: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = _plant(tmp_path / "plant.csv", 1_200)
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic=unique_topic)
    options = ReplayOptions(progress=False, mapping=ColumnMapping(device="machine", time="ts"))
    caplog.set_level(logging.ERROR, logger="ingest.producer")
    with ReadingProducer(kafka, source=str(path)) as producer:
        report = replay_file(path, producer, options)
        reported = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert (report.sent, report.dead_lettered) == (0, 1_200)  # dead-lettered, never dropped
    [message] = reported  # once, during the replay
    assert "100% of the first 1,000 readings" in message and "x.pressure/range" in message
    assert f"prognos catalogue infer {path}" in message
    assert producer.stats().rejection == message
    letters = read_records(kafka_bootstrap, dlq_topic, expected=1_200, decode_values=False)
    assert {x.headers[HEADER_RULE] for x in letters} == {"range"}

    # The fix the message gives: infer a catalogue, replay with it.
    out = tmp_path / "plant.toml"
    columns = ["--device-column", "machine", "--time-column", "ts"]
    assert main(["catalogue", "infer", str(path), *columns, "--out", str(out)]) == 0
    catalogue = Catalogue.load(out)
    with ReadingProducer(kafka, source=str(path), catalogue=catalogue) as producer:
        again = replay_file(path, producer, options)
    assert (again.sent, again.dead_lettered) == (1_200, 0)
    assert producer.stats().rejection is None


def test_backblaze_replays_with_the_inferred_catalogue_and_no_dead_letter(
    kafka_bootstrap: str,
    unique_topic: str,
    dlq_topic: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not BACKBLAZE.is_file():
        pytest.fail(
            f"Backblaze data not found at {BACKBLAZE}; the repo expects ../shared beside it"
        )
    recording = tmp_path / "drives.csv"
    with BACKBLAZE.open() as f:
        recording.write_text("".join(line for _, line in zip(range(ROWS + 1), f, strict=False)))
    out = tmp_path / "disks.toml"
    columns = ["--device-column", "serial_number", "--time-column", "date"]
    options = ["--metadata", "model,capacity_bytes", "--ignore", "failure"]
    assert main(["catalogue", "infer", str(recording), *columns, *options, "--out", str(out)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("PROGNOS_KAFKA_BOOTSTRAP", kafka_bootstrap)
    replay = ["replay", str(recording), *columns, "--catalogue", str(out), "--topic", unique_topic]
    assert main([*replay, "--as-fast-as-possible", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert f"{ROWS:,} readings to {unique_topic}, 0 dead letters" in printed.out
    assert f"(catalogue {out})" in printed.out
    got = read_readings(kafka_bootstrap, unique_topic, expected=ROWS, timeout_s=60)
    assert len(got) == ROWS
    # The catalogue decided the mapping: its metadata fields, its sensors (not the failure flag).
    assert set(got[0].sensors) == {s.name for s in Catalogue.load(out).sensors}
    assert set(got[0].metadata) == {"model", "capacity_bytes"}
    assert read_records(kafka_bootstrap, dlq_topic, timeout_s=3) == []

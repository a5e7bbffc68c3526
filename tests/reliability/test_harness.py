"""The harness's own judgement, on made-up snapshots and checkpoints: a lost, duplicated or
changed alert, or a device whose state differs, is counted, so a fault run that broke
something cannot pass. No services."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

from tests.reliability.harness import (
    ChaosSettings,
    FaultRow,
    Report,
    Snapshot,
    batch_sizes,
    committed_offsets,
    compare,
    last_commit,
    make_recording,
)


def _event(event_id: str, risk: float) -> tuple[str, str]:
    return event_id, json.dumps({"event_id": event_id, "risk": risk}, sort_keys=True)


GOLDEN = Snapshot(
    events=(_event("a", 0.9), _event("b", 0.95), _event("c", 0.2)),
    devices={"d1": {"risk": "0.2", "last_window_end": "3"}, "d2": {"risk": "0.1"}},
    risk={"d1": "0.2", "d2": "0.1"},
    open=frozenset({"d1"}),
    dead_letters=Counter({b"bad-1": 1, b"bad-2": 1}),
    dead_letter_counts={"payload/json": "2"},
)


def test_an_identical_run_passes_whatever_the_order() -> None:
    run = replace(GOLDEN, events=tuple(reversed(GOLDEN.events)))
    assert compare(GOLDEN, run).ok


def test_lost_duplicated_differing_and_unexpected_events_are_counted() -> None:
    run = replace(
        GOLDEN, events=(_event("a", 0.9), _event("a", 0.9), _event("b", 0.5), _event("z", 0.7))
    )
    result = compare(GOLDEN, run)
    assert not result.ok
    assert (result.lost, result.duplicated, result.differing, result.unexpected) == (
        ("c",),
        ("a",),
        ("b",),
        ("z",),
    )
    row = FaultRow.from_comparison("made up", 10, result)
    assert (row.alerts_expected, row.lost, row.duplicated, row.differing) == (3, 1, 1, 2)


def test_dead_letters_lost_duplicated_or_counted_otherwise_fail_the_run() -> None:
    lost = compare(GOLDEN, replace(GOLDEN, dead_letters=Counter({b"bad-1": 1})))
    assert not lost.ok and lost.dead_letters_lost == ("bad-2",)
    twice = compare(GOLDEN, replace(GOLDEN, dead_letters=Counter({b"bad-1": 2, b"bad-2": 1})))
    assert not twice.ok and twice.dead_letters_duplicated == ("bad-1",)
    counted = compare(GOLDEN, replace(GOLDEN, dead_letter_counts={"payload/json": "3"}))
    assert not counted.ok and counted.dead_letter_counts_differ
    row = FaultRow.from_comparison("made up", 10, twice)
    assert (row.dead_letters_expected, row.dead_letters_lost, row.dead_letters_duplicated) == (
        2,
        0,
        1,
    )


def test_a_device_whose_latest_state_differs_is_counted() -> None:
    devices = {**GOLDEN.devices, "d2": {"risk": "0.7"}}
    assert compare(GOLDEN, replace(GOLDEN, devices=devices)).state_differs == ("d2",)
    assert compare(GOLDEN, replace(GOLDEN, open=frozenset())).state_differs == ("d1",)


def _offsets(folder: Path, batch: int, offsets: dict[str, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"batchWatermarkMs": 0, "batchTimestampMs": 0, "conf": {}}
    (folder / str(batch)).write_text(f"v1\n{json.dumps(meta)}\n{json.dumps({'topic': offsets})}")


def test_batch_sizes_and_committed_offsets_come_from_the_checkpoint(tmp_path: Path) -> None:
    for batch, offsets in enumerate(
        [{"0": 300, "1": 200}, {"0": 550, "1": 450}, {"0": 600, "1": 460}]
    ):
        _offsets(tmp_path / "main" / "offsets", batch, offsets)
    commits = tmp_path / "main" / "commits"
    commits.mkdir()
    (commits / "0").write_text("v1\n{}")
    (commits / "1").write_text("v1\n{}")
    (commits / ".2.tmp").write_text("")  # Spark's half-written file is not a commit
    assert batch_sizes(tmp_path) == {0: 500, 1: 500, 2: 60}
    assert last_commit(tmp_path) == 1
    assert committed_offsets(tmp_path) == {0: 550, 1: 450}


def test_a_recording_split_by_cycle_adds_up(cmapss_dir: Path, tmp_path: Path) -> None:
    whole = make_recording(cmapss_dir, 3, tmp_path / "whole")
    first = make_recording(cmapss_dir, 3, tmp_path / "a", (0, 40))
    rest = make_recording(cmapss_dir, 3, tmp_path / "b", (41, 10**9))
    assert whole.path.name == "train_FD001.txt"
    assert first.readings + rest.readings == whole.readings
    assert (first.last_cycle, rest.first_cycle) == (40, 41)


def test_the_report_prints_each_row_and_saves_json(tmp_path: Path) -> None:
    report = Report(ChaosSettings())
    report.add(FaultRow("fault x", 100, 5, 0, 0, 0, 0, recovery_s=[1.5, None, 3.0], job_starts=2))
    report.fuzz.append({"engine": "e", "runs": 10, "seconds": 1.0, "failures": 0})
    text = report.markdown()
    assert (
        "| fault x | 100 | 5 | 0 | 0 | 0 | 0 | 0 / 0 / 0 / equal | 1.5, ?, 3.0 (max 3.0) | 2 |"
        in text
    )
    assert "10 inputs" in text
    saved = json.loads(report.save(tmp_path / "r.json").read_text())
    assert saved["rows"][0]["fault"] == "fault x"

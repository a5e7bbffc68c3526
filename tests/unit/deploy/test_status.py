"""``prognos status``'s pure parts: the checkpoint's offsets and the rendered report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploy.status import read_checkpoint_offsets, render


def test_checkpoint_offsets_come_from_the_newest_batch(tmp_path: Path) -> None:
    assert read_checkpoint_offsets(tmp_path, "t") is None
    folder = tmp_path / "main" / "offsets"
    folder.mkdir(parents=True)
    (folder / "9").write_text('v1\n{}\n{"t":{"0":5}}\n')
    (folder / "10").write_text('v1\n{"batchWatermarkMs":1}\n{"t":{"0":7,"1":9}}\n')
    (folder / ".10.crc").write_text("x")
    assert read_checkpoint_offsets(tmp_path, "t") == (10, {0: 7, 1: 9})
    assert read_checkpoint_offsets(tmp_path, "other") is None


def _report(**changes: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "prefix": "prognos",
        "services": [
            {"name": "kafka", "state": "stopped", "address": "127.0.0.1:9092", "pid": None}
        ],
        "redis": {"url": "redis://127.0.0.1:6379/0", "reachable": True},
        "metrics": {},
        "dead_letters": {},
        "fleet": {},
        "top_devices": [],
        "lag": {"readings": None, "detail": "no offsets"},
    }
    report.update(changes)
    return report


def test_status_says_no_data_yet_and_not_running() -> None:
    lines = "\n".join(render(_report()))
    assert "kafka  stopped" in lines
    assert "no data yet: no batch recorded" in lines and "no data yet: no window scored" in lines
    assert "kafka lag: unknown (no offsets)" in lines and "dead letters: none" in lines
    stale = "\n".join(render(_report(metrics={"batch_id": "3", "updated_ms": "0"}), now_ms=10**9))
    assert "not running (no batch for a while); last batch 3" in stale
    down = "\n".join(
        render(_report(redis={"url": "redis://h:1/0", "reachable": False, "error": "refused"}))
    )
    assert "not reachable (refused): run `prognos stack up`" in down

"""The driver's side of a hot swap without Redis: a Redis that does not answer before a
batch keeps the running model, and the pointer file the workers read is written whole."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import redis

from models.metadata import DEFAULT_MODEL
from models.scorer import Scorer
from stream.contract import Keys, ModelEntry
from stream.registry import ModelSwitch, entry_of, read_pointer, write_pointer


class _Down:
    """A Redis client whose every round trip fails as a lost connection does (a pipeline
    queues commands and fails when executed, as redis-py's does)."""

    def __getattr__(self, name: str) -> Any:
        def fail(*_: Any, **__: Any) -> Any:
            raise redis.ConnectionError("Connection refused")

        return fail

    def pipeline(self, **_: Any) -> Any:
        down = self

        class Pipe:
            def __getattr__(self, name: str) -> Any:
                return (lambda *a, **k: None) if name != "execute" else down.execute

        return Pipe()


def test_redis_not_answering_before_a_batch_keeps_the_running_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scorer = Scorer.load(DEFAULT_MODEL)
    switch = ModelSwitch(_Down(), Keys("p"), tmp_path, scorer, load=None, compatible=None)
    caplog.set_level(logging.WARNING)
    assert switch.before_batch(7) is None
    assert switch.scorer is scorer
    assert "batch 7: could not read p:model" in caplog.text
    switch.add_recent([b"\0" * 8])  # advisory: logged, not raised
    assert "could not keep recent model inputs" in caplog.text


def test_the_pointer_is_replaced_whole_and_read_back(tmp_path: Path) -> None:
    entry = entry_of(Scorer.load(DEFAULT_MODEL), generation=3)
    path = write_pointer(tmp_path / "ckpt", entry)
    assert read_pointer(path) == entry
    newer = ModelEntry(**{**entry.__dict__, "version": "v2", "generation": 4})
    write_pointer(tmp_path / "ckpt", newer)
    assert read_pointer(path) == newer
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["active-model.json"]  # no temp left
    assert read_pointer(tmp_path / "missing.json") is None


def test_windows_scored_by_another_model_than_the_pointers_are_found() -> None:
    """The driver's check that the executors followed its pointer (a worker that cannot
    read it scores with the model the job started with, and a promotion does not apply)."""
    import pyarrow as pa

    from stream.job import other_models

    scored = pa.table({"model_version": ["2.0.0", "1.0.0", "2.0.0", "1.0.0"]})
    assert other_models(scored, "2.0.0") == ["1.0.0"]
    assert other_models(scored.slice(0, 1), "2.0.0") == []
    assert other_models(scored.slice(0, 0), "2.0.0") == []

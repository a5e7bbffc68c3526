"""The running job's own check of a promoted model, against a real redis-server: what
`prognos model promote` accepted is verified again before the job switches, and refused
(recorded, the registry pointed back at the running model) when it changed since or reads
other inputs. `test_model_swap` covers promote's own refusals and a switch that applies."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import redis

from models.candidate import contract_differences
from models.metadata import DEFAULT_MODEL, MODEL_NAME
from models.scorer import Scorer
from stream.contract import Keys, ModelEntry
from stream.registry import POINTER_FILE, ModelSwitch, history, read_active, read_pointer
from tests.integration.test_model_swap import _candidate


def _switch(client: Any, prefix: str, pointer: Path) -> ModelSwitch:
    switch = ModelSwitch(
        client,
        Keys(prefix),
        pointer,
        Scorer.load(DEFAULT_MODEL),
        load=Scorer.load,
        compatible=contract_differences,
    )
    switch.start()
    return switch


def _promote(client: Any, prefix: str, folder: Path, version: str, sha256: str) -> ModelEntry:
    """What `prognos model promote` leaves in the registry (its own checks passed)."""
    running = read_active(client, Keys(prefix))
    assert running is not None
    entry = ModelEntry(version, str(folder.resolve()), sha256, running.generation + 1, 1, "")
    client.hset(Keys(prefix).model, mapping=entry.to_hash())
    return entry


def test_a_promoted_model_that_changed_since_or_reads_other_inputs_is_refused_by_the_job(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        switch = _switch(client, key_prefix, tmp_path / "pointer")
        running = switch.entry
        pointer = tmp_path / "pointer" / POINTER_FILE
        assert read_pointer(pointer) == running

        # The folder promote checked now holds another file than the one it promoted.
        other = _candidate(tmp_path / "other", "switch-test-2")
        promoted = Scorer.load(other).metadata.sha256
        _promote(client, key_prefix, other, "switch-test-2", "0" * 64)
        assert promoted != "0" * 64
        assert switch.before_batch(5) is None and switch.entry.version == running.version
        # Another model reading other inputs (windows of another length).
        longer = _candidate(tmp_path / "longer", "switch-test-3", window_seconds=1200.0)
        _promote(client, key_prefix, longer, "switch-test-3", Scorer.load(longer).metadata.sha256)
        assert switch.before_batch(6) is None and switch.entry.version == running.version
        # A model whose network does not read what its metadata says (K = 7 against 10).
        wrong = _candidate(tmp_path / "wrong", "switch-test-4", sequence_length=7)
        digest = hashlib.sha256((wrong / MODEL_NAME).read_bytes()).hexdigest()
        _promote(client, key_prefix, wrong, "switch-test-4", digest)
        assert switch.before_batch(7) is None and switch.entry.version == running.version

        steps = [s for s in history(client, Keys(key_prefix), 20) if s["action"].startswith("ref")]
        assert [(s["action"], s["version"]) for s in reversed(steps)] == [
            ("refused by the job", "switch-test-2"),
            ("refused by the job", "switch-test-3"),
            ("refused by the job", "switch-test-4"),
        ]
        assert "changed since it was promoted" in steps[2]["reason"]
        assert "input contract differs" in steps[1]["reason"], steps[1]
        assert "needs [batch, 7, 90]" in steps[0]["reason"], steps[0]
        # The registry names the running model again, and the workers still read it.
        active = read_active(client, Keys(key_prefix))
        assert active is not None and (active.version, active.sha256) == (
            running.version,
            running.sha256,
        )
        assert read_pointer(pointer) is not None
        assert read_pointer(pointer).sha256 == running.sha256  # type: ignore[union-attr]
    finally:
        client.close()

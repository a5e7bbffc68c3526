"""The model registry in Redis: which model the job is to score with, and its history.

``prognos model promote`` and ``rollback`` (``deploy.promote``) write ``P:model`` (a
:class:`stream.contract.ModelEntry` with a new ``generation``); the stream job reads it at
the start of every batch and, when the generation changed, verifies the model again and
switches to it for that batch and the ones after (:class:`ModelSwitch`): a batch is scored
by one model, never two. Each step is recorded in ``P:model:history``. A promotion made
while no job runs is applied when the next one starts.

The workers learn the model of the batch from a pointer file beside the checkpoint,
``<checkpoint>/active-model.json``, which the driver rewrites (atomically) before the
batch runs: the workers of one Spark application share it (local mode; a cluster needs
the checkpoint on a shared file system, as it does anyway).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream.contract import MODEL_HISTORY_LENGTH, MODEL_RECENT_LENGTH, Keys, ModelEntry

if TYPE_CHECKING:
    from models.scorer import Scorer

logger = logging.getLogger(__name__)

__all__ = [
    "POINTER_FILE",
    "ModelSwitch",
    "history",
    "read_active",
    "read_pointer",
    "record",
    "write_pointer",
]

POINTER_FILE = "active-model.json"


def read_active(client: Any, keys: Keys) -> ModelEntry | None:
    return ModelEntry.from_hash(client.hgetall(keys.model))


def record(client: Any, keys: Keys, action: str, entry: ModelEntry | None, **details: Any) -> None:
    """Add a line to ``P:model:history`` (newest first, bounded)."""
    line = {"action": action, "at_ms": int(time.time() * 1000), **details}
    if entry is not None:
        line |= {"version": entry.version, "path": entry.path, "sha256": entry.sha256}
        line["generation"] = entry.generation
    pipe = client.pipeline(transaction=False)
    pipe.lpush(keys.model_history, json.dumps(line, sort_keys=True))
    pipe.ltrim(keys.model_history, 0, MODEL_HISTORY_LENGTH - 1)
    pipe.execute()


def history(client: Any, keys: Keys, count: int = 20) -> list[dict[str, Any]]:
    return [json.loads(x) for x in client.lrange(keys.model_history, 0, count - 1)]


def write_pointer(folder: Path, entry: ModelEntry) -> Path:
    """Point the workers at ``entry`` (write then rename: they never read half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / POINTER_FILE
    tmp = folder / f".{POINTER_FILE}.{os.getpid()}"
    tmp.write_text(entry.to_json(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_pointer(path: str | Path) -> ModelEntry | None:
    try:
        return ModelEntry.from_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def entry_of(scorer: Scorer, generation: int = 0, previous: str = "") -> ModelEntry:
    return ModelEntry(
        version=scorer.metadata.model_version,
        path=str(Path(scorer.path).parent.resolve()),
        sha256=scorer.metadata.sha256,
        generation=generation,
        since_ms=int(time.time() * 1000),
        previous=previous,
    )


class ModelSwitch:
    """The driver's side of a hot swap: reads ``P:model`` before each batch.

    Args:
        client: a Redis client (the sink's).
        keys: the job's keys.
        pointer_dir: where the workers' pointer file is (the checkpoint folder).
        current: the model the job started with.
        load: loads and verifies a model folder (checksum, provider), raising
            :class:`models.errors.ModelError` when it is refused.
        compatible: the differences between the running and a new model's input contract.
        fixed: why the job cannot switch models (its executors have only the model shipped
            with it); each promotion is then refused with this reason. None: it can.
    """

    def __init__(
        self,
        client: Any,
        keys: Keys,
        pointer_dir: Path,
        current: Scorer,
        load: Any,
        compatible: Any,
        fixed: str | None = None,
    ) -> None:
        self.fixed = fixed
        self.client = client
        self.keys = keys
        self.pointer_dir = pointer_dir
        self.load = load
        self.compatible = compatible
        self.scorer = current
        self.entry = entry_of(current)

    def start(self) -> Scorer:
        """Apply a promotion made while no job ran, or register the starting model.

        Returns:
            The scorer to start with.
        """
        active = read_active(self.client, self.keys)
        if active is not None and active.sha256 != self.entry.sha256:
            candidate = self._verified(active, batch=None)
            if candidate is not None:
                logger.warning(
                    "using model %s promoted at %s (prognos model promote), not the job's "
                    "--model %s; `prognos model rollback` returns to the one before",
                    active.version,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(active.since_ms / 1000)),
                    self.entry.version,
                )
                self.scorer, self.entry = candidate, active
                record(self.client, self.keys, "applied at start", active)
        elif active is None:
            self.client.hset(self.keys.model, mapping=self.entry.to_hash())
            record(self.client, self.keys, "started", self.entry)
        else:
            self.entry = active  # the same model, its generation as registered
        if self.fixed is None:
            write_pointer(self.pointer_dir, self.entry)
        return self.scorer

    def before_batch(self, batch_id: int) -> Scorer | None:
        """The new model when a promotion or rollback is to apply from this batch, else None.

        Redis not answering here keeps the current model (the sink's own writes retry and,
        if Redis stays away, fail the batch with the reason).
        """
        import redis

        try:
            active = read_active(self.client, self.keys)
        except redis.RedisError as exc:
            logger.warning(
                "batch %d: could not read %s (%s); model unchanged", batch_id, self.keys.model, exc
            )
            return None
        if active is None or active.generation == self.entry.generation:
            return None
        if active.sha256 == self.entry.sha256:
            self.entry = active
            return None
        candidate = self._verified(active, batch=batch_id)
        if candidate is None:
            return None
        previous = self.entry
        write_pointer(self.pointer_dir, active)
        self.scorer, self.entry = candidate, active
        record(self.client, self.keys, "applied", active, batch=batch_id)
        logger.warning(
            "batch %d: now scoring with model %s (was %s)",
            batch_id,
            active.version,
            previous.version,
        )
        return candidate

    def _verified(self, active: ModelEntry, batch: int | None) -> Scorer | None:
        """The promoted model loaded and checked again, or None (the refusal recorded, the
        registry pointed back at the running model)."""
        from models.errors import ModelError

        try:
            if self.fixed is not None:
                raise ModelError(self.fixed)
            candidate: Scorer = self.load(active.path)
            if candidate.metadata.sha256 != active.sha256:
                raise ModelError(
                    f"{active.path} changed since it was promoted (sha256 "
                    f"{candidate.metadata.sha256[:12]}, promoted {active.sha256[:12]})"
                )
            differences: Sequence[str] = self.compatible(self.scorer.metadata, candidate.metadata)
            if differences:
                raise ModelError("its input contract differs: " + "; ".join(differences))
        except ModelError as exc:
            logger.error(
                "model %s refused at %s: %s; still scoring with %s",
                active.version,
                "start" if batch is None else f"batch {batch}",
                exc,
                self.entry.version,
            )
            record(self.client, self.keys, "refused by the job", active, reason=str(exc))
            restored = ModelEntry(**{**self.entry.__dict__, "generation": active.generation})
            self.client.hset(self.keys.model, mapping=restored.to_hash())
            self.entry = restored
            return None
        return candidate

    def add_recent(self, packed: Sequence[bytes]) -> None:
        """Keep a sample of recent model inputs for the next promotion's shadow scoring."""
        import redis

        if not packed:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(self.keys.model_recent, *packed)
        pipe.ltrim(self.keys.model_recent, 0, MODEL_RECENT_LENGTH - 1)
        try:
            pipe.execute()
        except redis.RedisError as exc:  # a sample for the next promotion: not worth a batch
            logger.warning("could not keep recent model inputs: %s", exc)


def recent_inputs(client: Any, keys: Keys, k: int, f: int) -> Any:
    """The sampled recent inputs as float32 ``[N, K, F]`` (rows of another shape skipped)."""
    import numpy as np

    rows = [
        np.frombuffer(raw, dtype="<f4")
        for raw in client.lrange(keys.model_recent, 0, -1)
        if len(raw) == 4 * k * f
    ]
    if not rows:
        return np.empty((0, k, f), dtype=np.float32)
    return np.stack(rows).astype(np.float32).reshape(-1, k, f)

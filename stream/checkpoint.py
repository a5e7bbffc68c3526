"""What a checkpoint's state depends on, recorded beside it and checked on every start.

Spark cannot reuse a checkpoint's state after a change of window, sequence length, features,
state partitions, topic or state layout; it would fail deep inside a batch, or worse, read
the state wrongly. The job records those settings in ``job.json`` at the checkpoint's root
when it first starts, and a later start with different ones is refused, naming each
difference and the fix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from stream.errors import CheckpointMismatchError
from stream.storage import Location, is_uri, join

logger = logging.getLogger(__name__)

__all__ = ["FINGERPRINT_FILE", "QUERY_FOLDER", "check_checkpoint", "fingerprint"]

FINGERPRINT_FILE = "job.json"

#: The folder of a job's checkpoint that holds its query's (:func:`stream.job.build_query`).
QUERY_FOLDER = "main"


def fingerprint(
    *,
    window_ms: int,
    sequence_length: int,
    features: list[str],
    shuffle_partitions: int,
    topic: str,
    state_layout: str,
    deployment: str = "local",
) -> dict[str, Any]:
    """The settings a checkpoint's state depends on.

    >>> fingerprint(window_ms=600_000, sequence_length=50, features=["s2__mean"],
    ...             shuffle_partitions=2, topic="t", state_layout="v3")["window_ms"]
    600000
    """
    return {
        "window_ms": window_ms,
        "sequence_length": sequence_length,
        "features": list(features),
        "shuffle_partitions": shuffle_partitions,
        "topic": topic,
        "state_layout": state_layout,
        "deployment": deployment,
    }


class TextFiles(Protocol):
    """Reads and writes small text files where a checkpoint lives (:mod:`stream.storage`)."""

    def read_text(self, uri: str) -> str | None: ...

    def write_text(self, uri: str, text: str) -> None: ...


class LocalFiles:
    """:class:`TextFiles` on the local file system."""

    def read_text(self, uri: str) -> str | None:
        path = Path(uri)
        return path.read_text() if path.is_file() else None

    def write_text(self, uri: str, text: str) -> None:
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def check_checkpoint(
    checkpoint: Location, current: Mapping[str, Any], files: TextFiles | None = None
) -> None:
    """Record ``current`` in a new checkpoint, or refuse one written with other settings.

    Args:
        checkpoint: the checkpoint folder, local or on a Hadoop file system.
        current: this job's :func:`fingerprint`.
        files: how to reach a checkpoint given as a URI (:class:`stream.storage.HadoopFiles`).

    Raises:
        CheckpointMismatchError: the checkpoint was written by a job whose state-defining
            settings differ; the message names each difference and the fix.
    """
    if files is None:
        if is_uri(checkpoint):
            raise ValueError(f"{checkpoint} is a URI: pass the files of its file system")
        files = LocalFiles()
    uri = join(checkpoint, FINGERPRINT_FILE)
    text = files.read_text(uri)
    if text is not None:
        # A checkpoint from before the deployment was recorded was written in local mode.
        stored = {"deployment": "local", **json.loads(text)}
        changed = {k: (stored.get(k), v) for k, v in current.items() if stored.get(k) != v}
        if "deployment" in changed:
            old, new = changed["deployment"]
            raise CheckpointMismatchError(
                f"the checkpoint {checkpoint} was written by a job in {old} mode and this job "
                f"runs in {new} mode: its state is laid out for the other's executors and "
                "paths. Give this job its own --checkpoint (a new one re-reads from "
                "--starting-offsets), or run it where the checkpoint was written."
            )
        if changed:
            detail = "; ".join(
                f"{k}: checkpoint has {old!r}, this job has {new!r}"
                for k, (old, new) in changed.items()
            )
            raise CheckpointMismatchError(
                f"the checkpoint {checkpoint} was written by a job with different "
                f"state-defining settings ({detail}). Spark cannot reuse its state: start with a "
                "new --checkpoint (the new job re-reads from --starting-offsets), or restore the "
                "previous settings."
            )
        return
    # The query's own checkpoint (Spark's ``metadata`` file, written when a query first
    # starts, after job.json): a checkpoint with progress and no job.json was not started by
    # this job, or lost the file, and its state cannot be judged.
    if files.read_text(join(join(checkpoint, QUERY_FOLDER), "metadata")) is not None:
        raise CheckpointMismatchError(
            f"the checkpoint {checkpoint} holds a query's progress ({QUERY_FOLDER}/) but no "
            f"{FINGERPRINT_FILE}, which records the settings its state was written with: "
            "it was not written by a Prognos stream job, or the file was removed. Give "
            f"this job a new --checkpoint (it re-reads from --starting-offsets), or put "
            f"back the {FINGERPRINT_FILE} it was written with."
        )
    files.write_text(uri, json.dumps(dict(current), indent=2) + "\n")
    logger.debug("recorded the checkpoint's settings in %s", uri)

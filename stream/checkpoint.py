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
from typing import Any

from stream.errors import CheckpointMismatchError

logger = logging.getLogger(__name__)

__all__ = ["FINGERPRINT_FILE", "check_checkpoint", "fingerprint"]

FINGERPRINT_FILE = "job.json"


def fingerprint(
    *,
    window_ms: int,
    sequence_length: int,
    features: list[str],
    shuffle_partitions: int,
    topic: str,
    state_layout: str,
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
    }


def check_checkpoint(checkpoint: Path, current: Mapping[str, Any]) -> None:
    """Record ``current`` in a new checkpoint, or refuse one written with other settings.

    Raises:
        CheckpointMismatchError: the checkpoint was written by a job whose state-defining
            settings differ; the message names each difference and the fix.
    """
    path = checkpoint / FINGERPRINT_FILE
    if path.is_file():
        stored = json.loads(path.read_text())
        changed = {k: (stored.get(k), v) for k, v in current.items() if stored.get(k) != v}
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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(current), indent=2) + "\n")
    logger.debug("recorded the checkpoint's settings in %s", path)

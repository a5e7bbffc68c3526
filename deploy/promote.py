"""``prognos model promote | rollback | history``: change the running job's model.

``promote MODEL_DIR`` checks the candidate before it can score anything:

1. its checksum (``manifest.json``) and that ONNX Runtime loads it;
2. its parity fixture (``parity.npz``) reproduced by ONNX Runtime;
3. its input contract (features, window, sequence length) against the model the job runs
   (``P:model``): a different one cannot take over the job's window state, so it is
   refused with the way forward (a new job on a new checkpoint);
4. a shadow scoring of the job's recent model inputs (``P:model:recent``) beside the
   active model: refused on a NaN risk, or when its alert rate differs from the active
   model's by more than ``--max-rate-change``, unless ``--force``.

Then it writes ``P:model`` with a new generation; the job switches at its next batch
(:class:`stream.registry.ModelSwitch`) and names the new version in every alert event it
scores. ``rollback`` points ``P:model`` back at the entry the last promotion replaced.
Every outcome is recorded in ``P:model:history``. A refused candidate changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.errors import DeployError

logger = logging.getLogger(__name__)

__all__ = ["PromotionRefused", "model_history", "promote", "rollback"]

#: The largest change of alert rate (share of recent windows at or over the threshold)
#: a promotion accepts without ``--force``.
MAX_RATE_CHANGE = 0.2


class PromotionRefused(DeployError):
    """The candidate failed a check; the active model keeps scoring."""


@dataclass(frozen=True)
class Outcome:
    """What a promotion or rollback did."""

    version: str
    previous: str | None
    generation: int
    shadow: Any = None
    parity: float | None = None


def _client(redis_url: str) -> Any:
    import redis

    return redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)


def promote(
    model_dir: Path,
    redis_url: str,
    key_prefix: str,
    *,
    force: bool = False,
    max_rate_change: float = MAX_RATE_CHANGE,
    providers: str = "auto",
) -> Outcome:
    """Check ``model_dir`` and make it the model the job scores with (see the module).

    Raises:
        PromotionRefused: a check failed (recorded in the history); nothing changed.
        DeployError: Redis does not answer.
    """
    import redis

    from models.candidate import check_parity, contract_differences, shadow
    from models.errors import ModelError
    from models.scorer import Scorer
    from stream.contract import Keys
    from stream.registry import entry_of, read_active, recent_inputs, record

    keys = Keys(key_prefix)
    client = _client(redis_url)
    refused = None
    try:
        active = read_active(client, keys)
        try:
            if not Path(model_dir).is_dir():
                raise ModelError(f"{model_dir} is not a model folder (no such directory)")
            candidate = Scorer.load(model_dir, providers=providers)
        except ModelError as exc:
            refused = f"{model_dir} cannot be loaded: {exc}"
            raise PromotionRefused(f"promotion refused: {refused}") from exc
        meta = candidate.metadata
        parity = None
        try:
            parity = check_parity(candidate)
        except ModelError as exc:
            if not force:
                refused = str(exc)
                raise PromotionRefused(f"promotion refused: {exc}") from exc
            logger.warning("--force: %s", exc)
        result = None
        if active is not None:
            if active.sha256 == meta.sha256:
                raise PromotionRefused(
                    f"model {meta.model_version} ({meta.sha256[:12]}) is already the active model"
                )
            running = Scorer.load(active.path, providers=providers, sha256=active.sha256)
            differences = contract_differences(running.metadata, meta)
            if differences:
                refused = (
                    f"{meta.model_version} reads other inputs than the running model "
                    f"{active.version}: {'; '.join(differences)}. It cannot take over the "
                    "job's window state: start a new job with `prognos stream --model "
                    f"{model_dir} --checkpoint NEW_FOLDER` (and its own --key-prefix), or "
                    "retrain it with the running model's window, sequence length and sensors"
                )
                raise PromotionRefused(f"promotion refused: {refused}")
            x = recent_inputs(client, keys, *meta.input_shape)
            result = shadow(running, candidate, x)
            if result.nan:
                refused = (
                    f"shadow scoring: {result.nan} of {result.windows} recent windows got a "
                    "NaN risk from the candidate"
                )
                raise PromotionRefused(f"promotion refused: {refused}")
            if result.windows and result.rate_change > max_rate_change and not force:
                refused = (
                    f"shadow scoring of {result.windows} recent windows: the candidate would "
                    f"alert on {result.candidate_rate:.1%} of them, the active model on "
                    f"{result.active_rate:.1%} (a change over {max_rate_change:.0%}); check the "
                    "candidate, or promote with --force"
                )
                raise PromotionRefused(f"promotion refused: {refused}")
        generation = (active.generation if active else 0) + 1
        entry = entry_of(
            candidate, generation=generation, previous=active.to_json() if active else ""
        )
        client.hset(keys.model, mapping=entry.to_hash())
        details: dict[str, Any] = {"parity": parity}
        if result is not None:
            details |= {
                "shadow_windows": result.windows,
                "active_rate": round(result.active_rate, 4),
                "candidate_rate": round(result.candidate_rate, 4),
            }
        record(client, keys, "promoted", entry, forced=force, **details)
        return Outcome(
            meta.model_version, active.version if active else None, generation, result, parity
        )
    except redis.RedisError as exc:
        raise _redis_down(exc) from exc
    finally:
        if refused is not None:
            with contextlib.suppress(redis.RedisError):
                record(
                    client,
                    keys,
                    "refused",
                    None,
                    candidate=str(Path(model_dir).resolve()),
                    reason=refused,
                )
        client.close()


def rollback(redis_url: str, key_prefix: str, providers: str = "auto") -> Outcome:
    """Point ``P:model`` back at the entry the last promotion replaced.

    Raises:
        PromotionRefused: no model to go back to, or it no longer verifies.
    """
    import redis

    from models.errors import ModelError
    from models.scorer import Scorer
    from stream.contract import Keys, ModelEntry
    from stream.registry import read_active, record

    keys = Keys(key_prefix)
    client = _client(redis_url)
    try:
        active = read_active(client, keys)
        previous = ModelEntry.from_json(active.previous) if active else None
        if active is None or previous is None:
            what = (
                "no model is registered"
                if active is None
                else f"{active.version} was not promoted over another"
            )
            raise PromotionRefused(f"nothing to roll back to under key prefix {key_prefix}: {what}")
        try:
            Scorer.load(previous.path, providers=providers, sha256=previous.sha256)
        except ModelError as exc:
            raise PromotionRefused(
                f"cannot roll back to {previous.version}: {exc}; promote a verified model instead"
            ) from exc
        entry = ModelEntry(
            version=previous.version,
            path=previous.path,
            sha256=previous.sha256,
            generation=active.generation + 1,
            since_ms=int(time.time() * 1000),
            previous=previous.previous,
        )
        client.hset(keys.model, mapping=entry.to_hash())
        record(client, keys, "rolled back", entry, replaced=active.version)
        return Outcome(entry.version, active.version, entry.generation)
    except redis.RedisError as exc:
        raise _redis_down(exc) from exc
    finally:
        client.close()


def model_history(redis_url: str, key_prefix: str, count: int = 20) -> list[dict[str, Any]]:
    """The newest ``count`` lines of ``P:model:history``.

    Raises:
        DeployError: Redis does not answer.
    """
    import redis

    from stream.contract import Keys
    from stream.registry import history

    client = _client(redis_url)
    try:
        return history(client, Keys(key_prefix), count)
    except redis.RedisError as exc:
        raise _redis_down(exc) from exc
    finally:
        client.close()


def _redis_down(exc: Exception) -> DeployError:
    return DeployError(
        f"Redis does not answer ({exc}): the model registry is there; start it "
        "(`prognos stack up`) or set PROGNOS_REDIS_URL / --redis-url"
    )

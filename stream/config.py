"""The stream job's settings: one frozen object, from the environment and the command line.

==============================  ==========================================================
variable                        meaning (default)
==============================  ==========================================================
``PROGNOS_MODEL``               the model folder (the committed default model)
``PROGNOS_PROVIDERS``           ONNX Runtime providers: ``auto`` or a comma-separated list
``PROGNOS_CHECKPOINT``          checkpoint location (``$PROGNOS_HOME/.prognos/checkpoints/
                                stream``; ``PROGNOS_HOME`` defaults to the current folder,
                                or the source tree under the ``prognos`` command)
``PROGNOS_CATALOGUE``           the sensor catalogue readings are validated with: a TOML
                                file or a shipped name (the model folder's
                                ``catalogue.toml``, else the default catalogue)
``PROGNOS_METRICS_PORT``        serve Prometheus metrics at ``/metrics`` on this port (off)
``PROGNOS_METRICS_HOST``        the address it listens on (``127.0.0.1``; ``0.0.0.0`` for
                                a Prometheus on another machine)
==============================  ==========================================================

Kafka's settings come from :class:`ingest.config.KafkaConfig` (``PROGNOS_KAFKA_*``,
``PROGNOS_TOPIC``), Redis's from :class:`stream.redis_config.RedisConfig`
(``PROGNOS_REDIS_*``, ``PROGNOS_KEY_PREFIX``). Every other setting is a flag of
``prognos stream`` (see :class:`StreamConfig`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.catalogue import Catalogue, default_catalogue, load_catalogue
from ingest.config import KafkaConfig
from models.metadata import DEFAULT_MODEL
from stream.alerts import AlertPolicy
from stream.contract import DEFAULT_PREFIX
from stream.errors import ConfigError
from stream.redis_config import RedisConfig
from stream.storage import Location, location

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODEL", "MODEL_CATALOGUE", "StreamConfig", "default_checkpoint"]

MODEL_CATALOGUE = "catalogue.toml"
"""The file in a model folder that records the catalogue the model was trained with."""


def _count(env: Mapping[str, str], name: str) -> int:
    raw = (env.get(name) or "0").strip()
    if not raw.isdigit():
        raise ConfigError(
            f"{name}={raw!r} is not a whole number >= 0; set it to e.g. 1, or unset it"
        )
    return int(raw)


def _seconds(env: Mapping[str, str], name: str) -> float | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a number of seconds; set it to e.g. 86400, or unset it"
        ) from None


def _port(env: Mapping[str, str], name: str) -> int | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > 65535:
        raise ConfigError(f"{name}={raw!r} is not a TCP port; set it to e.g. 9108, or unset it")
    return int(raw)


def default_checkpoint(env: Mapping[str, str] | None = None) -> Location:
    """``PROGNOS_CHECKPOINT`` (a path or a Hadoop URI such as ``hdfs://nn:8020/cp``), else
    ``$PROGNOS_HOME/.prognos/checkpoints/stream``."""
    env = os.environ if env is None else env
    explicit = env.get("PROGNOS_CHECKPOINT")
    if explicit:
        return location(explicit)
    return Path(env.get("PROGNOS_HOME") or Path.cwd()) / ".prognos" / "checkpoints" / "stream"


@dataclass(frozen=True)
class StreamConfig:
    """Settings of one stream job. Build with :meth:`from_env`; flags override.

    Attributes:
        kafka: bootstrap servers, topics and security (:class:`ingest.config.KafkaConfig`).
        redis_url: where alerts go (:class:`stream.redis_config.RedisConfig`; masked in
            the repr).
        checkpoint: checkpoint location (``PROGNOS_CHECKPOINT``).
        model_path: the model folder (``PROGNOS_MODEL``, the committed default model).
        catalogue: the sensor catalogue readings are validated with, a TOML file or a
            shipped name (``PROGNOS_CATALOGUE``); None: the model folder's
            ``catalogue.toml`` if it has one, else the default catalogue (see
            :meth:`load_catalogue`).
        key_prefix: prefix of every Redis key (``PROGNOS_KEY_PREFIX``, ``prognos``).
        providers: ONNX Runtime execution providers, ``auto`` or a comma-separated list.
        allow_fallback: accept CPU when a requested GPU provider is not active.
        starting_offsets: ``earliest`` or ``latest`` for a new checkpoint.
        max_offsets_per_trigger: bound on records per micro-batch (bounded memory on a backlog).
        fail_on_data_loss: fail when Kafka offsets were deleted before being read.
        trigger_seconds: micro-batch interval; 0 runs batches back to back.
        watermark_seconds: how late (in event time) a reading may arrive; default one window.
        state_ttl_seconds: how long (event time) a silent device's state is kept after its
            last window closed (``PROGNOS_STATE_TTL``, ``--state-ttl``); None: three times
            the span of the model's K windows; 0: kept for ever.
        max_future_skew_s: readings further ahead of the job's clock are refused.
        stream_maxlen: approximate bound of the alert stream's length.
        redis_wait_replicas: wait until this many Redis replicas have each batch's writes
            before the batch counts as written (``PROGNOS_REDIS_WAIT_REPLICAS``, 0).
        min_coverage: windows with a smaller share of the model's sensors are counted
            and warned about (the figure is in the metrics and in each alert event).
        threshold: the alert threshold (default: the model's); with ``hysteresis``,
            ``resolve_windows``, ``cooldown_windows``, ``update_delta`` and ``critical``
            it makes the alert policy (:meth:`policy`).
        available_now: process what is in the topic, then stop (replays, tests).
        metrics_port: serve Prometheus metrics at ``/metrics`` on this port
            (``PROGNOS_METRICS_PORT``; None: off; 0: any free port).
        metrics_host: the address the metrics endpoint listens on
            (``PROGNOS_METRICS_HOST``, ``127.0.0.1``).
    """

    kafka: KafkaConfig
    redis_url: str = field(repr=False)
    checkpoint: Location
    model_path: Path = DEFAULT_MODEL
    catalogue: Path | None = None
    key_prefix: str = DEFAULT_PREFIX
    providers: str = "auto"
    allow_fallback: bool = False
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int = 50_000
    fail_on_data_loss: bool = True
    trigger_seconds: float = 1.0
    watermark_seconds: float | None = None
    state_ttl_seconds: float | None = None
    max_future_skew_s: float = 86_400.0
    stream_maxlen: int = 100_000
    redis_wait_replicas: int = 0
    min_coverage: float = 0.8
    threshold: float | None = None
    hysteresis: float = 0.1
    resolve_windows: int = 2
    cooldown_windows: int = 3
    update_delta: float = 0.15
    critical: float = 0.9
    available_now: bool = False
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if self.starting_offsets not in ("earliest", "latest"):
            raise ConfigError(
                f"starting offsets {self.starting_offsets!r}: choose earliest or latest"
            )
        if self.max_offsets_per_trigger < 1:
            raise ConfigError(
                f"--max-offsets-per-trigger {self.max_offsets_per_trigger}: give a number >= 1"
            )
        if self.trigger_seconds < 0:
            raise ConfigError(f"--trigger {self.trigger_seconds}: give seconds >= 0")
        if self.redis_wait_replicas < 0:
            raise ConfigError(
                f"--redis-wait-replicas {self.redis_wait_replicas}: give a number of replicas >= 0"
            )
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ConfigError(f"--min-coverage {self.min_coverage}: give a share in [0, 1]")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(
                f"--metrics-port {self.metrics_port}: give a TCP port in 1-65535 (e.g. 9108)"
            )
        if self.watermark_seconds is not None and self.watermark_seconds <= 0:
            raise ConfigError(f"--watermark {self.watermark_seconds}: give seconds > 0")
        ttl = self.state_ttl_seconds
        if ttl is not None and not (ttl >= 0 and math.isfinite(ttl)):
            raise ConfigError(
                f"--state-ttl / PROGNOS_STATE_TTL {ttl}: give event-time seconds >= 0 "
                "(0 keeps a silent device's state for ever)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> StreamConfig:
        """Read the settings from ``env`` (default ``os.environ``); non-None ``overrides`` win.

        Raises:
            ConfigError: a setting is malformed (the message names it and the fix).
        """
        env = os.environ if env is None else env
        redis = RedisConfig.from_env(env)
        values: dict[str, Any] = {
            "kafka": KafkaConfig.from_env(env),
            "redis_url": redis.url,
            "key_prefix": redis.key_prefix,
            "checkpoint": default_checkpoint(env),
            "model_path": Path(env.get("PROGNOS_MODEL") or DEFAULT_MODEL),
            "providers": env.get("PROGNOS_PROVIDERS") or "auto",
            "catalogue": Path(env["PROGNOS_CATALOGUE"]) if env.get("PROGNOS_CATALOGUE") else None,
            "redis_wait_replicas": _count(env, "PROGNOS_REDIS_WAIT_REPLICAS"),
            "metrics_port": _port(env, "PROGNOS_METRICS_PORT"),
            "metrics_host": env.get("PROGNOS_METRICS_HOST") or "127.0.0.1",
            "state_ttl_seconds": _seconds(env, "PROGNOS_STATE_TTL"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def catalogue_in_force(self) -> Path | None:
        """Where the catalogue in force comes from: :attr:`catalogue` if given, else the
        model folder's ``catalogue.toml`` (the one it was trained with) if present; None:
        the default catalogue."""
        if self.catalogue is not None:
            return self.catalogue
        model_catalogue = self.model_path / MODEL_CATALOGUE
        return model_catalogue if model_catalogue.is_file() else None

    def load_catalogue(self) -> Catalogue:
        """The catalogue in force (:meth:`catalogue_in_force`).

        Raises:
            ingest.catalogue.CatalogueError: the file is missing or malformed (the message
                names the file, the entry and the fix).
        """
        source = self.catalogue_in_force()
        catalogue = default_catalogue() if source is None else load_catalogue(source)
        logger.info(
            "catalogue %s: %d sensors, %d settings, unknown names %s",
            catalogue.origin,
            len(catalogue.sensors),
            len(catalogue.settings),
            "accepted" if catalogue.unknown == "accept" else "dead-lettered",
        )
        return catalogue

    @property
    def redis(self) -> RedisConfig:
        """Redis's URL and key prefix as one config."""
        return RedisConfig(self.redis_url, self.key_prefix)

    @property
    def provider_list(self) -> str | list[str]:
        """:attr:`providers` as :meth:`models.scorer.Scorer.load` takes it."""
        return self.providers if self.providers == "auto" else self.providers.split(",")

    def policy(self, model_threshold: float) -> AlertPolicy:
        """The alert policy: these settings, the threshold defaulting to the model's.

        Raises:
            ConfigError: the settings do not make a valid policy.
        """
        threshold = self.threshold if self.threshold is not None else model_threshold
        try:
            return AlertPolicy(
                threshold=threshold,
                hysteresis=min(self.hysteresis, threshold / 2),
                resolve_windows=self.resolve_windows,
                cooldown_windows=self.cooldown_windows,
                update_delta=self.update_delta,
                critical=max(self.critical, threshold),
            )
        except ValueError as exc:
            raise ConfigError(f"alert policy: {exc}") from exc

"""Settings of the local stack, read from the environment in one place.

Every setting has a ``PROGNOS_*`` environment variable; the CLI may override some of them
with flags (see :func:`StackConfig.from_env`).

==============================  ==========================================================
variable                        meaning (default)
==============================  ==========================================================
``PROGNOS_HOME``                project folder that holds ``.prognos/`` (the source tree,
                                else the current folder)
``PROGNOS_STATE_DIR``           state: data, logs, PID files (``$PROGNOS_HOME/.prognos/state``)
``PROGNOS_CACHE_DIR``           resolved jars, shared by checkouts (``~/.cache/prognos``)
``PROGNOS_KAFKA_PORT``          broker listener port on 127.0.0.1 (9092)
``PROGNOS_KAFKA_CONTROLLER_PORT`` KRaft controller port on 127.0.0.1 (9093)
``PROGNOS_REDIS_PORT``          redis-server port on 127.0.0.1 (6379)
``PROGNOS_KAFKA_VERSION``       Apache Kafka broker version (4.2.2)
``PROGNOS_KAFKA_HEAP``          broker JVM heap (512m)
``PROGNOS_START_TIMEOUT``       seconds a service may take to become healthy (90)
``PROGNOS_KAFKA_HOME``          an unpacked Kafka distribution to use instead of Maven
``PROGNOS_JARS_DIR``            a folder of jars to use instead of Maven Central
``PROGNOS_MAVEN_REPO``          Maven repository URL (Maven Central)
``PROGNOS_KAFKA_BOOTSTRAP``     an existing Kafka cluster: the stack starts no broker
``PROGNOS_REDIS_URL``           an existing Redis: the stack starts no redis-server
==============================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

KAFKA_VERSION = "4.2.2"
SCALA_BINARY = "2.13"
LOG4J_VERSION = "2.25.5"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


def _project_home() -> Path:
    """The source tree when running from a checkout, else the current folder."""
    tree = Path(__file__).resolve().parents[1]
    if (tree / "pyproject.toml").is_file():
        return tree
    return Path.cwd()


def _user_cache(env: Mapping[str, str]) -> Path:
    root = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "prognos"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not an integer; set it to a port or a number of seconds"
        ) from None
    return value


@dataclass(frozen=True)
class StackConfig:
    """Where the local stack lives and how it listens. Immutable; build with :meth:`from_env`."""

    home: Path
    state_dir: Path
    cache_dir: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    redis_port: int = 6379
    kafka_version: str = KAFKA_VERSION
    kafka_heap: str = "512m"
    start_timeout: float = 90.0
    kafka_home: Path | None = None
    jars_dir: Path | None = None
    maven_repo: str = MAVEN_CENTRAL
    external_kafka: str | None = None
    external_redis: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> StackConfig:
        """Read the settings from ``env`` (default: ``os.environ``); ``overrides`` win."""
        env = os.environ if env is None else env
        home = Path(env.get("PROGNOS_HOME") or _project_home()).resolve()
        base = home / ".prognos"
        config = cls(
            home=home,
            state_dir=Path(env.get("PROGNOS_STATE_DIR") or base / "state").resolve(),
            cache_dir=Path(env.get("PROGNOS_CACHE_DIR") or _user_cache(env)).resolve(),
            kafka_port=_int(env, "PROGNOS_KAFKA_PORT", 9092),
            kafka_controller_port=_int(env, "PROGNOS_KAFKA_CONTROLLER_PORT", 9093),
            redis_port=_int(env, "PROGNOS_REDIS_PORT", 6379),
            kafka_version=env.get("PROGNOS_KAFKA_VERSION") or KAFKA_VERSION,
            kafka_heap=env.get("PROGNOS_KAFKA_HEAP") or "512m",
            start_timeout=float(_int(env, "PROGNOS_START_TIMEOUT", 90)),
            kafka_home=Path(env["PROGNOS_KAFKA_HOME"]) if env.get("PROGNOS_KAFKA_HOME") else None,
            jars_dir=Path(env["PROGNOS_JARS_DIR"]) if env.get("PROGNOS_JARS_DIR") else None,
            maven_repo=(env.get("PROGNOS_MAVEN_REPO") or MAVEN_CENTRAL).rstrip("/"),
            external_kafka=env.get("PROGNOS_KAFKA_BOOTSTRAP") or None,
            external_redis=env.get("PROGNOS_REDIS_URL") or None,
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(config, **clean) if clean else config  # type: ignore[arg-type]

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers clients should use: the external cluster or the local broker."""
        return self.external_kafka or f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        """Redis URL clients should use: the external server or the local one."""
        return self.external_redis or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

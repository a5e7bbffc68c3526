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
``PROGNOS_STACK_SECURE``        ``1``: the secure profile (Kafka SASL_SSL/SCRAM, Redis TLS
                                and ACL users; :mod:`deploy.secure`) (off)
``PROGNOS_REDIS_FSYNC``         redis-server's ``appendfsync``: ``everysec`` (a machine crash
                                can lose the last second of acknowledged writes) or
                                ``always`` (the durable profile: fsync before each reply)
                                (``everysec``)
==============================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from deploy.errors import ConfigError

KAFKA_VERSION = "4.2.2"
SCALA_BINARY = "2.13"
LOG4J_VERSION = "2.25.5"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
#: redis-server's ``appendfsync`` choices the stack offers.
REDIS_FSYNC = ("everysec", "always")


def _project_home() -> Path:
    """The source tree when running from a checkout, else the current folder."""
    tree = Path(__file__).resolve().parents[1]
    if (tree / "pyproject.toml").is_file():
        return tree
    return Path.cwd()


def _user_cache(env: Mapping[str, str]) -> Path:
    root = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "prognos"


def _int(env: Mapping[str, str], name: str, default: int, what: str = "a port") -> int:
    """An integer setting; a malformed one is a :class:`ConfigError` naming it and the fix.

    >>> _int({"PROGNOS_KAFKA_PORT": "9192"}, "PROGNOS_KAFKA_PORT", 9092)
    9192
    >>> _int({"PROGNOS_KAFKA_PORT": "abc"}, "PROGNOS_KAFKA_PORT", 9092)
    Traceback (most recent call last):
    ...
    deploy.errors.ConfigError: PROGNOS_KAFKA_PORT='abc' is not a port; set it to a whole number such as 9092, or unset it for the default (9092)
    """
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    limit = 65535 if what == "a port" else None
    if not text.isdigit() or int(text) < 1 or (limit is not None and int(text) > limit):
        raise ConfigError(
            f"{name}={raw!r} is not {what}; set it to a whole number such as {default}, "
            f"or unset it for the default ({default})"
        )
    return int(text)


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r}: use 1 (on) or 0 (off), or unset it (off)")


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
    secure: bool = False
    redis_fsync: str = "everysec"

    def __post_init__(self) -> None:
        if self.redis_fsync not in REDIS_FSYNC:
            raise ConfigError(
                f"PROGNOS_REDIS_FSYNC={self.redis_fsync!r}: use everysec (the default) or always "
                "(the durable profile)"
            )

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
            start_timeout=float(_int(env, "PROGNOS_START_TIMEOUT", 90, "a number of seconds")),
            kafka_home=Path(env["PROGNOS_KAFKA_HOME"]) if env.get("PROGNOS_KAFKA_HOME") else None,
            jars_dir=Path(env["PROGNOS_JARS_DIR"]) if env.get("PROGNOS_JARS_DIR") else None,
            maven_repo=(env.get("PROGNOS_MAVEN_REPO") or MAVEN_CENTRAL).rstrip("/"),
            external_kafka=env.get("PROGNOS_KAFKA_BOOTSTRAP") or None,
            external_redis=env.get("PROGNOS_REDIS_URL") or None,
            secure=_flag(env, "PROGNOS_STACK_SECURE"),
            redis_fsync=(env.get("PROGNOS_REDIS_FSYNC") or "everysec").strip().lower(),
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
        if self.external_redis:
            return self.external_redis
        if self.secure:
            from deploy.secure import SecureFiles, redis_url

            return redis_url(SecureFiles(self.secure_dir), self.redis_port)
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def client_env(self) -> dict[str, str]:
        """``PROGNOS_*`` variables that point Prognos's clients (and ``prognos stack``) here.

        Ports and state folder, and for the secure profile the switch and the clients'
        settings: Kafka's SASL_SSL and Redis's TLS, each user's password as a file. No
        secret is in the values. ``ingest.config.KafkaConfig`` and
        ``stream.redis_config.RedisConfig`` read them.
        """
        env = {
            "PROGNOS_HOME": str(self.home),
            "PROGNOS_STATE_DIR": str(self.state_dir),
            "PROGNOS_KAFKA_PORT": str(self.kafka_port),
            "PROGNOS_KAFKA_CONTROLLER_PORT": str(self.kafka_controller_port),
            "PROGNOS_REDIS_PORT": str(self.redis_port),
        }
        if self.secure:
            from deploy.secure import KAFKA_APP_USER, REDIS_APP_USER, SCRAM_MECHANISM, SecureFiles

            files = SecureFiles(self.secure_dir)
            env.update(
                PROGNOS_STACK_SECURE="1",
                PROGNOS_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                PROGNOS_KAFKA_SASL_MECHANISM=SCRAM_MECHANISM,
                PROGNOS_KAFKA_SASL_USERNAME=KAFKA_APP_USER,
                PROGNOS_KAFKA_SASL_PASSWORD_FILE=str(files.kafka_app_password),
                PROGNOS_KAFKA_SSL_CAFILE=str(files.ca),
                PROGNOS_REDIS_USERNAME=REDIS_APP_USER,
                PROGNOS_REDIS_PASSWORD_FILE=str(files.redis_app_password),
                PROGNOS_REDIS_SSL_CAFILE=str(files.ca),
            )
        return env

    @property
    def secure_dir(self) -> Path:
        """The secure profile's certificates and passwords."""
        return self.state_dir / "secure"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

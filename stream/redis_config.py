"""Where the stream job's Redis is and how to reach it, read from the environment in one place.

==================================  ========================================================
variable                            meaning (default)
==================================  ========================================================
``PROGNOS_REDIS_URL``               the whole URL, ``redis://`` or ``rediss://`` (TLS);
                                    when set, the variables below except the password
                                    file are not used
``PROGNOS_REDIS_PORT``              port of the local stack's redis-server on 127.0.0.1
                                    (6379)
``PROGNOS_REDIS_USERNAME``          ACL user name (none: the ``default`` user)
``PROGNOS_REDIS_PASSWORD_FILE``     a file holding the password (preferred: it never
                                    appears in a URL you type, a log line or ``ps``)
``PROGNOS_REDIS_SSL_CAFILE``        PEM file of the CA that signed the server's
                                    certificate; set, the URL is ``rediss://``
``PROGNOS_KEY_PREFIX``              prefix of every key and channel (``prognos``)
==================================  ========================================================

The password never appears in a repr or a log line: :func:`redact_url` masks it wherever a
URL is shown.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from stream.contract import DEFAULT_PREFIX, Keys
from stream.errors import ConfigError

__all__ = [
    "DEFAULT_REDIS_PORT",
    "NO_ANSWER",
    "RedisConfig",
    "explain_redis_error",
    "redact_url",
    "redis_answers",
    "redis_problem",
]

DEFAULT_REDIS_PORT: Final = 6379


def redact_url(url: str) -> str:
    """Replace the password of a URL with ``***``.

    >>> redact_url("redis://alerts:s3cret@cache:6380/2")
    'redis://alerts:***@cache:6380/2'
    >>> redact_url("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
    """
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _with_password(url: str, username: str | None, password: str) -> str:
    """``url`` with its user and password set (both quoted)."""
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.quote(username or parts.username or "", safe="")
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{host}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class RedisConfig:
    """The Redis alerts go to, and the key prefix. Immutable; build with :meth:`from_env`.

    Attributes:
        url: the connection URL, password included (masked in the repr; show it with
            :func:`redact_url`).
        key_prefix: prefix of every key and channel.

    Example:

        >>> config = RedisConfig.from_env({"PROGNOS_REDIS_PORT": "6380"})
        >>> config.url, config.keys.alerts
        ('redis://127.0.0.1:6380/0', 'prognos:alerts')
    """

    url: str = field(default=f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0", repr=False)
    key_prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        scheme = urllib.parse.urlsplit(self.url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"the Redis URL {redact_url(self.url)!r} is not a redis://, rediss:// or unix:// "
                "URL; set PROGNOS_REDIS_URL to e.g. redis://127.0.0.1:6379/0"
            )
        if not self.key_prefix.strip():
            raise ConfigError("the key prefix is empty; set PROGNOS_KEY_PREFIX or --key-prefix")

    def __repr__(self) -> str:
        return f"RedisConfig(url={redact_url(self.url)!r}, key_prefix={self.key_prefix!r})"

    @property
    def keys(self) -> Keys:
        """The contract's key and channel names under this prefix."""
        return Keys(self.key_prefix)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> RedisConfig:
        """Read the settings from ``env`` (default ``os.environ``); non-None ``overrides`` win.

        Raises:
            ConfigError: a variable is malformed or the password file cannot be read; the
                message names the variable and the fix.
        """
        env = os.environ if env is None else env
        url = env.get("PROGNOS_REDIS_URL") or ""
        username = env.get("PROGNOS_REDIS_USERNAME") or None
        if not url:
            raw_port = env.get("PROGNOS_REDIS_PORT") or str(DEFAULT_REDIS_PORT)
            if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
                raise ConfigError(
                    f"PROGNOS_REDIS_PORT={raw_port!r} is not a port number; set it to the port "
                    "of the local stack's redis-server (6379), or set PROGNOS_REDIS_URL"
                )
            cafile = env.get("PROGNOS_REDIS_SSL_CAFILE") or None
            scheme = "rediss" if cafile else "redis"
            query = urllib.parse.urlencode({"ssl_ca_certs": cafile}) if cafile else ""
            url = f"{scheme}://127.0.0.1:{int(raw_port)}/0" + (f"?{query}" if query else "")
        password_file = env.get("PROGNOS_REDIS_PASSWORD_FILE")
        if password_file:
            try:
                password = Path(password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"PROGNOS_REDIS_PASSWORD_FILE={password_file}: cannot read it "
                    f"({exc.strerror}); point it at the file holding the Redis password"
                ) from None
            url = _with_password(url, username, password)
        elif username:
            parts = urllib.parse.urlsplit(url)
            if parts.username is None:
                netloc = f"{urllib.parse.quote(username, safe='')}@{parts.netloc}"
                url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        values: dict[str, Any] = {
            "url": url,
            "key_prefix": env.get("PROGNOS_KEY_PREFIX") or DEFAULT_PREFIX,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def client(self, **kwargs: Any) -> Any:
        """A ``redis.Redis`` client for :attr:`url`; ``kwargs`` go to ``Redis.from_url``."""
        import redis

        return redis.Redis.from_url(self.url, **kwargs)


def redis_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True when the Redis server at ``url`` answers PING."""
    return redis_problem(url, timeout_s) is None


#: The fix for a Redis that does not answer at all.
NO_ANSWER = "run `prognos stack up`, or set PROGNOS_REDIS_URL to the Redis the job writes to"


def redis_problem(url: str, timeout_s: float = 2.0) -> str | None:
    """None when the Redis server at ``url`` answers PING; else :func:`explain_redis_error`.

    A server that answers but refuses the credentials, the user's permissions or the TLS
    handshake is named as such: the fix there is a setting, not starting a server.
    """
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
        return None
    except (redis.RedisError, OSError) as exc:
        return explain_redis_error(url, exc)
    finally:
        client.close()


def explain_redis_error(url: str, exc: BaseException) -> str:
    """What a failed call to the Redis at ``url`` says about the setting to check: the
    credentials, the user's permissions, TLS, or (``no answer ...``) the server itself."""
    import redis

    text = str(exc)
    if isinstance(exc, redis.AuthenticationError):  # WRONGPASS, NOAUTH
        return (
            f"it refused the credentials ({text}): check PROGNOS_REDIS_USERNAME and "
            "PROGNOS_REDIS_PASSWORD_FILE, or the user and password in PROGNOS_REDIS_URL"
        )
    if isinstance(exc, redis.exceptions.NoPermissionError):  # NOPERM: the ACL user's
        return (
            f"it refused a command ({text}): the ACL user needs PING and the commands of "
            "the sink and subscribers on the key prefix's keys (docs/security.md)"
        )
    if isinstance(exc, redis.ResponseError):  # DENIED (protected mode), ...
        return f"it answered with an error ({text}): the server's settings refuse this client"
    if isinstance(exc, redis.TimeoutError):  # a server that takes the connection, no reply
        return f"no answer ({text}): {NO_ANSWER}"
    if "SSL" in text or "certificate" in text.lower():
        return (
            f"the TLS handshake failed ({text}): check PROGNOS_REDIS_SSL_CAFILE (the CA "
            "that signed the server's certificate) and that the URL is rediss://"
        )
    dropped = ("reading from", "closed by server", "reset by peer")
    if url.startswith("redis://") and any(d in text for d in dropped):
        return (
            f"it took the connection and dropped it ({text}): a server on TLS only needs "
            "a rediss:// URL (set PROGNOS_REDIS_SSL_CAFILE to the CA that signed its "
            "certificate)"
        )
    return f"no answer ({text}): {NO_ANSWER}"

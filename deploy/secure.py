"""The secure profile of the local stack: Kafka over SASL_SSL (SCRAM), Redis over TLS with ACLs.

``PROGNOS_STACK_SECURE=1`` (or ``prognos stack up --secure``) starts the same two services
with authentication and encryption, as a production cluster would run them:

* **Kafka**: the client listener speaks ``SASL_SSL`` with ``SCRAM-SHA-512``; two users are
  created when the storage is formatted: ``admin`` (the broker's own inter-broker login)
  and ``prognos`` (the producers and the stream job). The KRaft controller listener stays
  ``PLAINTEXT`` on 127.0.0.1 (SCRAM cannot authenticate controllers: its credentials live
  in the metadata log the controller serves). Least-privilege ACLs for a cluster with an
  authorizer are listed in docs/security.md; the local broker runs without one.
* **Redis**: TLS only (no plain port), the ``default`` user off, and a ``prognos`` user
  allowed the keys and pub/sub channels under ``<prefix>:`` and no dangerous commands.

Secrets are made once, in ``<state>/secure`` (mode 0700, files 0600): a certificate
authority (``ca.pem``), a server certificate for 127.0.0.1 and ``localhost`` signed by it,
the broker's PKCS#12 keystore and the passwords, one file each. They never appear on a
command line: the broker reads them from its properties file, redis-server from its
configuration file, and clients from files named by ``PROGNOS_*`` variables
(:meth:`deploy.config.StackConfig.client_env`; Redis's password from its file through
:attr:`deploy.config.StackConfig.redis_url`).
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import DeployError

logger = logging.getLogger(__name__)

__all__ = [
    "KAFKA_APP_USER",
    "SCRAM_MECHANISM",
    "SecureFiles",
    "ensure_secrets",
    "redis_acl_lines",
    "redis_url",
    "scram_format_args",
    "write_private",
]

SCRAM_MECHANISM = "SCRAM-SHA-512"
KAFKA_ADMIN_USER = "admin"
KAFKA_APP_USER = "prognos"
REDIS_APP_USER = "prognos"
_DAYS = 825


@dataclass(frozen=True)
class SecureFiles:
    """Where the secure profile's certificates and passwords are."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    @property
    def keystore(self) -> Path:
        return self.dir / "broker.p12"

    @property
    def keystore_password(self) -> Path:
        return self.dir / "broker.p12.password"

    @property
    def kafka_admin_password(self) -> Path:
        return self.dir / f"kafka-{KAFKA_ADMIN_USER}.password"

    @property
    def kafka_app_password(self) -> Path:
        return self.dir / f"kafka-{KAFKA_APP_USER}.password"

    @property
    def redis_app_password(self) -> Path:
        return self.dir / f"redis-{REDIS_APP_USER}.password"

    @property
    def passwords(self) -> tuple[Path, ...]:
        """Every password file."""
        return (
            self.keystore_password,
            self.kafka_admin_password,
            self.kafka_app_password,
            self.redis_app_password,
        )

    @property
    def certificates(self) -> tuple[Path, ...]:
        """The CA, the server certificate and key, and the broker's keystore."""
        return (self.ca, self.server_cert, self.server_key, self.keystore)

    def read(self, path: Path) -> str:
        """A password file's content."""
        return path.read_text(encoding="utf-8").strip()


def _openssl(args: list[str], cwd: Path) -> None:
    try:
        result = subprocess.run(
            ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError:
        raise DeployError(
            "the secure profile needs the openssl command to make its certificates: install "
            "it (Debian: apt-get install openssl), or run the stack without --secure"
        ) from None
    if result.returncode != 0:
        raise DeployError(f"openssl {args[0]} failed in {cwd}:\n{result.stderr[-1500:]}")


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (passwords, configuration that holds them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    path.chmod(0o600)


def ensure_secrets(directory: Path) -> SecureFiles:
    """Make the certificates and passwords in ``directory`` unless they are all there."""
    files = SecureFiles(directory)
    if all(p.is_file() for p in (*files.certificates, *files.passwords)):
        return files
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    for path in files.passwords:
        write_private(path, secrets.token_urlsafe(24) + "\n")
    old = os.umask(0o077)
    try:
        _openssl(
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", str(_DAYS), "-subj", "/CN=Prognos local stack CA"],
            directory,
        )  # fmt: skip
        _openssl(
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1"],
            directory,
        )  # fmt: skip
        (directory / "server.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "extendedKeyUsage=serverAuth\n"
            "keyUsage=digitalSignature,keyEncipherment\n",
            encoding="utf-8",
        )
        _openssl(
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", str(_DAYS), "-extfile",
             "server.ext"],
            directory,
        )  # fmt: skip
        _openssl(
            ["pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key", "-certfile",
             "ca.pem", "-name", "broker", "-out", "broker.p12", "-passout",
             f"file:{files.keystore_password.name}"],
            directory,
        )  # fmt: skip
    finally:
        os.umask(old)
    # The CA key is not kept: nothing else is ever signed with it.
    for leftover in ("server.csr", "server.ext", "ca.srl", "ca.key"):
        (directory / leftover).unlink(missing_ok=True)
    logger.info("made the secure profile's certificates and passwords in %s", directory)
    return files


def scram_format_args(files: SecureFiles) -> list[str]:
    """``kafka-storage format`` arguments that create the SCRAM users with the storage."""
    args = []
    for user, path in (
        (KAFKA_ADMIN_USER, files.kafka_admin_password),
        (KAFKA_APP_USER, files.kafka_app_password),
    ):
        args.append(f"--add-scram={SCRAM_MECHANISM}=[name={user},password={files.read(path)}]")
    return args


def redis_acl_lines(files: SecureFiles, prefix: str = "prognos") -> str:
    """redis.conf lines: the default user off, the application user on its own keys."""
    password = files.read(files.redis_app_password)
    return (
        "user default off\n"
        f"user {REDIS_APP_USER} on >{password} ~{prefix}:* &{prefix}:* +@all -@dangerous\n"
    )


def redis_url(files: SecureFiles, port: int, *, with_password: bool = True) -> str:
    """The ``rediss://`` URL of the secure Redis (password from its file, CA as a parameter)."""
    secret = files.read(files.redis_app_password) if with_password else ""
    auth = f"{REDIS_APP_USER}:{urllib.parse.quote(secret, safe='')}@" if with_password else ""
    query = urllib.parse.urlencode({"ssl_ca_certs": str(files.ca)})
    return f"rediss://{auth}127.0.0.1:{port}/0?{query}"

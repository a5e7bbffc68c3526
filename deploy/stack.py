"""The local stack: a real Apache Kafka broker (KRaft) and a real redis-server.

Each service is started as a detached process whose PID, command line marker and log file
live in the state folder (``.prognos/state``). ``down`` ends exactly the processes the
stack started, found by their PID files, and checks that their ports are closed.

Where ``PROGNOS_KAFKA_BOOTSTRAP`` or ``PROGNOS_REDIS_URL`` name existing services, the
stack starts nothing for them and ``status`` only checks that they answer. With
``StackConfig.secure`` both services run the secure profile (:mod:`deploy.secure`).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

from deploy.config import StackConfig
from deploy.errors import (
    DeployError,
    NotRunningError,
    PortInUseError,
    RedisMissingError,
    ServiceStartError,
)
from deploy.jars import kafka_jars
from deploy.java import find_java
from deploy.secure import write_private
from ingest.admin import kafka_answers
from stream.redis_config import redact_url, redis_answers

logger = logging.getLogger(__name__)

_STOP_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 30


def _template(name: str) -> str:
    return resources.files("deploy").joinpath("conf", name).read_text()


def _quote_arg(arg: str) -> str:
    """One argument as a java launcher argument file line (double-quoted, escaped)."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` and it can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that is free right now (for tests and ad-hoc stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or a note that it is empty or missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join(kept) if kept else f"(log {path} is empty)"


def _process_cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:
        return None  # a zombie: exited, not yet reaped
    return raw.replace(b"\0", b" ").decode(errors="replace")


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status`` reports for one service."""

    name: str
    state: str  # "running", "stopped", "external", "unreachable", "stale"
    address: str
    pid: int | None = None
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.state in ("running", "external")


class Service(Protocol):
    """One process of the local stack.

    ``start`` returns once the service answers its health check, or raises
    :class:`ServiceStartError` with the tail of its log; ``stop`` ends only the process
    the stack started (by its PID file) and returns whether one was running.
    """

    name: str

    def start(self) -> None: ...

    def stop(self) -> bool: ...

    def status(self) -> ServiceStatus: ...


class _ManagedProcess:
    """Shared mechanics: PID file with a command-line marker, start, health wait, stop."""

    name = "service"

    def __init__(self, config: StackConfig, port: int, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.config = config
        self.port = port
        self.dir = config.state_dir / self.name
        self.pid_file = self.dir / f"{self.name}.pid"
        self.log_file = config.logs_dir / f"{self.name}.log"

    # -- to be provided by subclasses ------------------------------------------------
    @property
    def marker(self) -> str:
        """A string that appears in the process's command line and nowhere else."""
        raise NotImplementedError

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    def command(self) -> list[str]:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write configuration and initialise storage before the first start."""

    # -- mechanics ---------------------------------------------------------------------
    def running_pid(self) -> int | None:
        """The PID of our process if it is alive and is still ours, else None."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        cmdline = _process_cmdline(pid)
        if cmdline is None or self.marker not in cmdline:
            return None
        return pid

    def environment(self) -> dict[str, str] | None:
        """The process's environment (None: this process's own)."""
        return None

    def start(self) -> None:
        """Start the process and wait until it answers its health check."""
        process = self.launch()
        if process is not None:
            self.await_healthy(process)

    def launch(self) -> subprocess.Popen[bytes] | None:
        """Start the process without waiting for it to answer; None when it already runs.

        Services that only answer together (a Kafka controller quorum) are launched
        first and awaited after (:meth:`await_healthy`).
        """
        if self.running_pid() is not None:
            logger.info("%s already running (pid %s)", self.name, self.running_pid())
            return None
        for port in self.ports:
            if not port_is_free(port):
                raise PortInUseError(
                    f"{self.name} cannot start: port {port} on 127.0.0.1 is already in use by a "
                    f"process this stack did not start. Stop that process, or choose another "
                    f"port with {self._port_variable(port)}."
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        cmd = self.command()
        logger.info("starting %s: %s", self.name, " ".join(cmd[:3]) + " ...")
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                env=self.environment(),
                start_new_session=True,  # Ctrl-C in the caller's terminal does not reach it
                close_fds=True,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def await_healthy(self, process: subprocess.Popen[bytes]) -> None:
        """Wait until the launched ``process`` answers; stop it and raise if it does not."""
        deadline = time.monotonic() + self.config.start_timeout
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                self.pid_file.unlink(missing_ok=True)
                raise ServiceStartError(
                    f"{self.name} exited with code {code} during start-up. "
                    f"Last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            if self.healthy():
                logger.info("%s is up on 127.0.0.1:%d (pid %d)", self.name, self.port, process.pid)
                return
            time.sleep(0.5)
        self._terminate(process.pid)
        self.pid_file.unlink(missing_ok=True)
        raise ServiceStartError(
            f"{self.name} did not become healthy within {self.config.start_timeout:.0f}s "
            f"(PROGNOS_START_TIMEOUT). Last lines of {self.log_file}:\n{tail(self.log_file)}"
        )

    def _port_variable(self, port: int) -> str:
        return "the PROGNOS_*_PORT settings"

    def _terminate(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if _process_cmdline(pid) is None:
                break
            time.sleep(0.2)
        else:
            logger.warning(
                "%s (pid %d) ignored SIGTERM for %.0fs; killing it", self.name, pid, _STOP_TIMEOUT_S
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            for _ in range(50):
                if _process_cmdline(pid) is None:
                    break
                time.sleep(0.1)
        # Reap it if it is our child (tests start stacks in-process).
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)

    def stop(self) -> bool:
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        logger.info("stopping %s (pid %d)", self.name, pid)
        self._terminate(pid)
        self.pid_file.unlink(missing_ok=True)
        for port in self.ports:
            deadline = time.monotonic() + 10
            while not port_is_free(port) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not port_is_free(port):
                raise DeployError(f"{self.name} stopped, but port {port} is still listening")
        return True

    def status(self) -> ServiceStatus:
        address = f"127.0.0.1:{self.port}"
        pid = self.running_pid()
        if pid is None:
            stale = self.pid_file.exists()
            return ServiceStatus(self.name, "stale" if stale else "stopped", address)
        if not self.healthy():
            return ServiceStatus(
                self.name, "unreachable", address, pid, "process alive, not answering"
            )
        return ServiceStatus(self.name, "running", address, pid)


def storage_format_args(cluster_id: str, properties: Path) -> list[str]:
    """Arguments of Kafka's storage tool that format a new KRaft log folder.

    The id goes in one ``--cluster-id=ID`` token: a base64url id can start with ``-``,
    which the tool would otherwise take for an option (1 start in 64 failed so).
    """
    return [
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster_id}",
        f"--config={properties}",
    ]


class KafkaBroker(_ManagedProcess):
    """A single-node Apache Kafka 4.x broker in KRaft mode on 127.0.0.1."""

    name = "kafka"

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, config.kafka_port)
        self.properties = self.dir / "server.properties"
        # The secure profile's storage holds its SCRAM users: never the plain one's.
        self.data_dir = self.dir / ("data-secure" if config.secure else "data")

    @property
    def marker(self) -> str:
        return str(self.properties)

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.config.kafka_port, self.config.kafka_controller_port)

    def _port_variable(self, port: int) -> str:
        if port == self.config.kafka_controller_port:
            return "PROGNOS_KAFKA_CONTROLLER_PORT"
        return "PROGNOS_KAFKA_PORT"

    def _classpath(self) -> str:
        return os.pathsep.join(str(j) for j in kafka_jars(self.config))

    def _java_base(self) -> list[str]:
        java = find_java()
        log_config = resources.files("deploy").joinpath("conf", "log4j2.properties")
        return [
            str(java.executable),
            f"-Xms{self.config.kafka_heap}",
            f"-Xmx{self.config.kafka_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_config}",
            "-cp",
            self._classpath(),
        ]

    def prepare(self) -> None:
        users: list[str] = []
        if self.config.secure:
            from deploy.secure import KAFKA_ADMIN_USER, ensure_secrets, scram_format_args

            files = ensure_secrets(self.config.secure_dir)
            text = _template("server-secure.properties.template").format(
                port=self.config.kafka_port,
                controller_port=self.config.kafka_controller_port,
                data_dir=self.data_dir,
                admin_user=KAFKA_ADMIN_USER,
                admin_password=files.read(files.kafka_admin_password),
                keystore=files.keystore,
                keystore_password=files.read(files.keystore_password),
                ca=files.ca,
            )
            users = scram_format_args(files)
        else:
            text = _template("server.properties.template").format(
                port=self.config.kafka_port,
                controller_port=self.config.kafka_controller_port,
                data_dir=self.data_dir,
            )
        write_private(self.properties, text)
        if (self.data_dir / "meta.properties").is_file():
            return
        # First start: format the storage with a fresh cluster id.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        args = [*storage_format_args(cluster_id, self.properties), *users]
        # The tool's arguments (SCRAM passwords among them) go in a private argument file
        # that the java launcher expands: never on a command line others can read.
        argfile = self.dir / "format.args"
        write_private(argfile, "\n".join(_quote_arg(a) for a in args) + "\n")
        cmd = [*self._java_base(), f"@{argfile}"]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ServiceStartError(
                f"formatting Kafka storage in {self.data_dir} failed:\n{(result.stdout + result.stderr)[-2000:]}"
            )
        logger.info("formatted Kafka storage in %s (cluster id %s)", self.data_dir, cluster_id)

    def command(self) -> list[str]:
        return [*self._java_base(), "kafka.Kafka", str(self.properties)]

    def healthy(self) -> bool:
        from ingest.config import KafkaConfig

        # As a client of this stack connects (`prognos stack env`): SASL_SSL when secure.
        client = KafkaConfig.from_env(self.config.client_env()).security_kwargs()
        return kafka_answers(f"127.0.0.1:{self.port}", timeout_s=2.0, client=client)


class RedisServer(_ManagedProcess):
    """A ``redis-server`` on 127.0.0.1 with append-only persistence in the state folder."""

    name = "redis"

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, config.redis_port)
        self.conf_file = self.dir / "redis.conf"

    @property
    def marker(self) -> str:
        return f"127.0.0.1:{self.port}"

    def prepare(self) -> None:
        data_dir = self.dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        pid_file = self.dir / "redis-server.pid"
        if self.config.secure:
            from deploy.secure import ensure_secrets, redis_acl_lines

            files = ensure_secrets(self.config.secure_dir)
            text = _template("redis-secure.conf.template").format(
                port=self.port,
                cert=files.server_cert,
                key=files.server_key,
                ca=files.ca,
                data_dir=data_dir,
                pid_file=pid_file,
                acl=redis_acl_lines(files),
                appendfsync=self.config.redis_fsync,
            )
        else:
            text = _template("redis.conf.template").format(
                port=self.port,
                data_dir=data_dir,
                pid_file=pid_file,
                appendfsync=self.config.redis_fsync,
            )
        write_private(self.conf_file, text)

    def command(self) -> list[str]:
        # redis-server rewrites its argv to "redis-server 127.0.0.1:PORT", the marker.
        return [redis_server_binary(), str(self.conf_file)]

    def healthy(self) -> bool:
        return redis_answers(self.config.redis_url)


def redis_server_binary() -> str:
    """The ``redis-server`` to run: ``PROGNOS_REDIS_SERVER``, else the one on PATH."""
    explicit = os.environ.get("PROGNOS_REDIS_SERVER")
    if explicit:
        if not Path(explicit).is_file():
            raise RedisMissingError(f"PROGNOS_REDIS_SERVER={explicit} does not exist")
        return explicit
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if Path(p).is_file()),
        None,
    )
    if found is None:
        raise RedisMissingError(
            "redis-server was not found. Run `prognos stack setup` (installs Debian's "
            "redis-server package when run as root), or install it yourself "
            "(`apt-get install redis-server`, `brew install redis`), or set "
            "PROGNOS_REDIS_SERVER to its path, or point PROGNOS_REDIS_URL at an existing Redis."
        )
    return found


def install_redis(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> str:
    """Make sure a ``redis-server`` binary exists, installing Debian's package if we can.

    Returns:
        The path of the binary.

    Raises:
        RedisMissingError: it is missing and cannot be installed here; the message says how
            to provide one.
    """
    try:
        return redis_server_binary()
    except RedisMissingError:
        pass
    apt = shutil.which("apt-get")
    prefix: list[str] | None = None
    if apt and os.geteuid() == 0:
        prefix = []
    elif apt and shutil.which("sudo"):
        probe = run(["sudo", "-n", "true"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            prefix = ["sudo", "-n"]
    if prefix is None:
        raise RedisMissingError(
            "redis-server is missing and cannot be installed automatically (needs apt-get as "
            "root or password-less sudo). Install it (`apt-get install redis-server`, "
            "`brew install redis`), or set PROGNOS_REDIS_SERVER to its path, or point "
            "PROGNOS_REDIS_URL at an existing Redis."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    logger.info("installing redis-server with apt-get")
    for cmd in (
        [*prefix, "apt-get", "update", "-q"],
        [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", "redis-server"],
    ):
        result = run(cmd, capture_output=True, text=True, check=False, env=env)
        if result.returncode != 0:
            raise RedisMissingError(
                f"`{' '.join(cmd)}` failed:\n{(result.stdout + result.stderr)[-1500:]}\n"
                "Install redis-server yourself, or set PROGNOS_REDIS_SERVER or PROGNOS_REDIS_URL."
            )
    return redis_server_binary()


class Stack:
    """The local stack as a whole: ``up``, ``down`` and ``status`` over its services."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig.from_env()
        self.services: list[_ManagedProcess] = []
        if self.config.external_kafka is None:
            self.services.append(KafkaBroker(self.config))
        if self.config.external_redis is None:
            self.services.append(RedisServer(self.config))

    def setup(self) -> None:
        """Everything ``up`` needs that can be done ahead: Java check, jars, redis-server."""
        from deploy.jars import connector_jars

        find_java()
        if self.config.external_kafka is None:
            kafka_jars(self.config)
        connector_jars(self.config)
        if self.config.external_redis is None:
            install_redis()

    def up(self) -> list[ServiceStatus]:
        """Start every service that is not running; stop what this call started on failure."""
        started: list[_ManagedProcess] = []
        try:
            for service in self.services:
                was_running = service.running_pid() is not None
                service.start()
                if not was_running:
                    started.append(service)
        except BaseException:
            for service in reversed(started):
                with contextlib.suppress(DeployError):
                    service.stop()
            raise
        return self.status()

    def down(self) -> list[str]:
        """Stop the services this stack started; returns their names.

        Raises:
            NotRunningError: nothing of the stack was running.
        """
        stopped = [service.name for service in reversed(self.services) if service.stop()]
        if not stopped:
            raise NotRunningError(
                f"nothing to stop: no service of the stack in {self.config.state_dir} is running"
            )
        return stopped

    def status(self) -> list[ServiceStatus]:
        statuses = [service.status() for service in self.services]
        if self.config.external_kafka is not None:
            from ingest.config import KafkaConfig

            security = KafkaConfig.from_env(bootstrap_servers=self.config.external_kafka)
            ok = kafka_answers(self.config.external_kafka, client=security.security_kwargs())
            statuses.append(
                ServiceStatus(
                    "kafka", "external" if ok else "unreachable", self.config.external_kafka
                )
            )
        if self.config.external_redis is not None:
            ok = redis_answers(self.config.external_redis)
            statuses.append(
                ServiceStatus(
                    "redis",
                    "external" if ok else "unreachable",
                    redact_url(self.config.external_redis),
                )
            )
        return statuses

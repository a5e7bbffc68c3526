"""The local multi-process cluster: what a production deployment runs, on one machine.

``prognos cluster up`` starts, each as its own process with its PID file and log under
``.prognos/cluster``:

- three Apache Kafka brokers in KRaft mode, each also a voter of a three-voter controller
  quorum; the readings and dead-letter topics at replication factor 3 with
  ``min.insync.replicas=2`` (one broker may be down without a write being refused);
- HDFS: a NameNode and a DataNode run from Apache Hadoop's own jars (resolved from Maven
  Central like the Kafka jars), speaking the real HDFS protocol;
- a Spark standalone master and two workers, separate JVMs started with pyspark's own
  ``bin/spark-class``;
- a redis-server, as in the local stack.

It is sized for a 2-core, 24 GiB machine (small heaps, one core per worker). Ports are
consecutive offsets from ``PROGNOS_CLUSTER_PORT_BASE`` (19000), so a cluster and the local
stack (9092, 6379) run side by side. ``prognos cluster env`` prints the settings that point
Prognos's commands at it; ``prognos submit`` runs the stream job on its Spark master.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from deploy.config import StackConfig, _int
from deploy.errors import DeployError, NotRunningError, ServiceStartError
from deploy.jars import Coordinate, _resolve, kafka_jars, spark_build
from deploy.java import find_java
from deploy.stack import (
    KafkaBroker,
    RedisServer,
    ServiceStatus,
    _ManagedProcess,
    _template,
    install_redis,
    storage_format_args,
)

logger = logging.getLogger(__name__)

__all__ = ["HADOOP_VERSION", "Cluster", "ClusterConfig", "hadoop_jars"]

#: Apache Hadoop's version for the NameNode and DataNode: the client pyspark 4.2 bundles.
HADOOP_VERSION = "3.5.0"
BROKERS = 3
WORKERS = 2
#: The readings topic's replicas and the fewest in sync for a write to be acknowledged.
REPLICATION = 3
MIN_INSYNC = 2

# Each port is the base plus its offset; none collides with another service's.
_OFFSETS = {
    "spark_master": 77,
    "spark_master_ui": 80,
    "kafka": 90,  # + broker id (1..3)
    "kafka_controller": 190,  # + broker id
    "redis": 379,
    "spark_worker": 780,  # + worker number (1..2)
    "spark_worker_ui": 80,  # + worker number: 81, 82
    "namenode": 820,
    "namenode_http": 870,
    "datanode": 866,
    "datanode_http": 864,
    "datanode_ipc": 867,
    "datanode_proxy": 868,
}


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster lives, its ports and its processes' sizes. Build with :meth:`from_env`.

    Attributes:
        stack: the local stack's settings, its state folder moved to ``.prognos/cluster``
            (jar cache, Maven repository, Kafka version and start timeout are shared).
        port_base: ``PROGNOS_CLUSTER_PORT_BASE`` (19000); every port is an offset from it.
        kafka_heap: each broker's heap (``PROGNOS_CLUSTER_KAFKA_HEAP``, 256m).
        hdfs_heap: the NameNode's and DataNode's heap (128m).
        daemon_memory: the Spark master's and workers' own heap (256m).
        worker_memory: what each Spark worker offers its executors (2g).
    """

    stack: StackConfig
    port_base: int = 19000
    kafka_heap: str = "256m"
    hdfs_heap: str = "128m"
    daemon_memory: str = "256m"
    worker_memory: str = "2g"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ClusterConfig:
        env = os.environ if env is None else env
        stack = StackConfig.from_env(env)
        base = _int(env, "PROGNOS_CLUSTER_PORT_BASE", 19000, "a port base")
        if not 1024 <= base <= 64000:
            from deploy.errors import ConfigError

            raise ConfigError(
                f"PROGNOS_CLUSTER_PORT_BASE={base}: the cluster uses ports base..base+900; "
                "choose a base between 1024 and 64000 (default 19000)"
            )
        state = Path(env.get("PROGNOS_CLUSTER_DIR") or stack.home / ".prognos" / "cluster")
        stack = replace(
            stack,
            state_dir=state.resolve(),
            kafka_port=base + _OFFSETS["kafka"] + 1,
            kafka_controller_port=base + _OFFSETS["kafka_controller"] + 1,
            redis_port=base + _OFFSETS["redis"],
            kafka_heap=env.get("PROGNOS_CLUSTER_KAFKA_HEAP") or "256m",
            external_kafka=None,
            external_redis=None,
            secure=False,
        )
        config = cls(stack=stack, port_base=base)
        return replace(config, **overrides) if overrides else config

    def port(self, what: str, number: int = 0) -> int:
        return self.port_base + _OFFSETS[what] + number

    @property
    def state_dir(self) -> Path:
        return self.stack.state_dir

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port('kafka', i)}" for i in range(1, BROKERS + 1))

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port('redis')}/0"

    @property
    def spark_master(self) -> str:
        return f"spark://127.0.0.1:{self.port('spark_master')}"

    @property
    def hdfs(self) -> str:
        return f"hdfs://127.0.0.1:{self.port('namenode')}"

    def client_env(self) -> dict[str, str]:
        """The settings that point ``prognos`` commands at this cluster."""
        return {
            "PROGNOS_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "PROGNOS_REDIS_URL": self.redis_url,
            "PROGNOS_SPARK_MASTER": self.spark_master,
            "PROGNOS_HDFS": self.hdfs,
            "PROGNOS_TOPIC_REPLICATION": str(REPLICATION),
            "PROGNOS_CHECKPOINT": f"{self.hdfs}/prognos/checkpoints/stream",
        }


def hadoop_coordinates(version: str = HADOOP_VERSION) -> list[Coordinate]:
    """HDFS's daemons: ``hadoop-hdfs`` marks its client ``provided``, so it is listed too."""
    return [
        Coordinate("org.apache.hadoop", artifact, version)
        for artifact in ("hadoop-hdfs", "hadoop-hdfs-client", "hadoop-common")
    ]


def hadoop_jars(stack: StackConfig, version: str = HADOOP_VERSION) -> list[Path]:
    """The NameNode's and DataNode's classpath, resolved from Maven Central once."""
    if stack.jars_dir is not None and any(stack.jars_dir.glob(f"hadoop-hdfs-{version}.jar")):
        return sorted(stack.jars_dir.glob("*.jar"))
    target = stack.cache_dir / f"hadoop-{version}"
    return _resolve(stack, hadoop_coordinates(version), target, f"HDFS {version}")


def _get_json(url: str, timeout: float = 2.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read().decode())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def _java_args(heap: str, marker: str) -> list[str]:
    return [
        str(find_java().executable),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dprognos.service={marker}",
    ]


class ClusterBroker(KafkaBroker):
    """One of the three brokers; also one voter of the controller quorum."""

    def __init__(self, cluster: ClusterConfig, node_id: int) -> None:
        stack = replace(
            cluster.stack,
            kafka_port=cluster.port("kafka", node_id),
            kafka_controller_port=cluster.port("kafka_controller", node_id),
        )
        self.cluster = cluster
        self.node_id = node_id
        _ManagedProcess.__init__(self, stack, stack.kafka_port, name=f"kafka-{node_id}")
        self.properties = self.dir / "server.properties"
        self.data_dir = self.dir / "data"

    def _port_variable(self, port: int) -> str:
        return "PROGNOS_CLUSTER_PORT_BASE"

    def prepare(self) -> None:
        voters = ",".join(
            f"{i}@127.0.0.1:{self.cluster.port('kafka_controller', i)}"
            for i in range(1, BROKERS + 1)
        )
        text = _template("server-cluster.properties.template").format(
            node_id=self.node_id,
            voters=voters,
            port=self.config.kafka_port,
            controller_port=self.config.kafka_controller_port,
            data_dir=self.data_dir,
        )
        self.properties.write_text(text)
        if (self.data_dir / "meta.properties").is_file():
            return
        # Every voter formats with the same cluster id (kept beside the brokers' folders).
        id_file = self.config.state_dir / "kafka-cluster-id"
        if not id_file.is_file():
            import base64
            import uuid

            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        cluster_id = id_file.read_text().strip()
        import subprocess

        cmd = [*self._java_base(), *storage_format_args(cluster_id, self.properties)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise ServiceStartError(
                f"formatting {self.name}'s storage in {self.data_dir} failed:\n"
                f"{(result.stdout + result.stderr)[-2000:]}"
            )

    def healthy(self) -> bool:
        from ingest.admin import kafka_answers

        return kafka_answers(f"127.0.0.1:{self.port}", timeout_s=2.0)


class _HdfsDaemon(_ManagedProcess):
    """A NameNode or DataNode: Hadoop's own main class on the resolved jars."""

    main_class = ""

    def __init__(self, cluster: ClusterConfig, name: str, port: int) -> None:
        super().__init__(cluster.stack, port, name=name)
        self.cluster = cluster
        self.hdfs_dir = cluster.state_dir / "hdfs"
        self.conf_dir = self.hdfs_dir / "conf"

    @property
    def marker(self) -> str:
        return f"-Dprognos.service={self.dir}"

    def _port_variable(self, port: int) -> str:
        return "PROGNOS_CLUSTER_PORT_BASE"

    def _classpath(self) -> str:
        web = self.hdfs_dir / "web"
        jars = hadoop_jars(self.config)
        return os.pathsep.join([str(self.conf_dir), str(web), *map(str, jars)])

    def java(self, *args: str) -> list[str]:
        return [
            *_java_args(self.cluster.hdfs_heap, str(self.dir)),
            f"-Dhadoop.log.dir={self.config.logs_dir}",
            "-Dhadoop.root.logger=INFO,console",
            "-cp",
            self._classpath(),
            self.main_class,
            *args,
        ]

    def prepare(self) -> None:
        write_hdfs_conf(self.cluster, self.conf_dir)
        # The daemons look their web pages up on the classpath; empty folders serve.
        for folder in ("hdfs", "datanode", "static", "secondary"):
            (self.hdfs_dir / "web" / "webapps" / folder).mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return self.java()

    def _namenode_bean(self, name: str) -> dict[str, Any] | None:
        port = self.cluster.port("namenode_http")
        data = _get_json(f"http://127.0.0.1:{port}/jmx?qry=Hadoop:service=NameNode,name={name}")
        beans = (data or {}).get("beans") or []
        return beans[0] if beans else None


class NameNode(_HdfsDaemon):
    main_class = "org.apache.hadoop.hdfs.server.namenode.NameNode"

    def __init__(self, cluster: ClusterConfig) -> None:
        super().__init__(cluster, "namenode", cluster.port("namenode"))

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.cluster.port("namenode_http"))

    def prepare(self) -> None:
        super().prepare()
        if (self.hdfs_dir / "name" / "current" / "VERSION").is_file():
            return
        import subprocess

        cmd = self.java("-format", "-force", "-nonInteractive")
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        if result.returncode != 0:
            raise ServiceStartError(
                f"formatting HDFS in {self.hdfs_dir / 'name'} failed:\n"
                f"{(result.stdout + result.stderr)[-2000:]}"
            )

    def healthy(self) -> bool:
        return self._namenode_bean("NameNodeInfo") is not None


class DataNode(_HdfsDaemon):
    main_class = "org.apache.hadoop.hdfs.server.datanode.DataNode"

    def __init__(self, cluster: ClusterConfig) -> None:
        super().__init__(cluster, "datanode", cluster.port("datanode"))

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(
            self.cluster.port(p)
            for p in ("datanode", "datanode_http", "datanode_ipc", "datanode_proxy")
        )

    def healthy(self) -> bool:
        # Ready when the NameNode counts it live and has left safe mode (writes accepted).
        state = self._namenode_bean("FSNamesystemState")
        info = self._namenode_bean("NameNodeInfo")
        if state is None or info is None:
            return False
        return int(state.get("NumLiveDataNodes", 0)) >= 1 and not info.get("Safemode")


def write_hdfs_conf(cluster: ClusterConfig, conf_dir: Path) -> None:
    """``core-site.xml`` and ``hdfs-site.xml`` of the local HDFS: every port pinned."""
    hdfs = cluster.state_dir / "hdfs"
    p = cluster.port
    core = {"fs.defaultFS": cluster.hdfs, "hadoop.tmp.dir": str(hdfs / "tmp")}
    site = {
        "dfs.namenode.name.dir": str(hdfs / "name"),
        "dfs.datanode.data.dir": str(hdfs / "data"),
        "dfs.replication": "1",
        "dfs.permissions.enabled": "false",
        "dfs.namenode.rpc-address": f"127.0.0.1:{p('namenode')}",
        "dfs.namenode.http-address": f"127.0.0.1:{p('namenode_http')}",
        "dfs.namenode.safemode.extension": "0",
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        "dfs.datanode.address": f"127.0.0.1:{p('datanode')}",
        "dfs.datanode.http.address": f"127.0.0.1:{p('datanode_http')}",
        "dfs.datanode.ipc.address": f"127.0.0.1:{p('datanode_ipc')}",
        "dfs.datanode.http.internal-proxy.port": str(p("datanode_proxy")),
        "dfs.datanode.hostname": "127.0.0.1",
        "dfs.heartbeat.interval": "1",
        # One DataNode: a pipeline cannot replace a failed node with another.
        "dfs.client.block.write.replace-datanode-on-failure.enable": "false",
    }
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "core-site.xml").write_text(_hadoop_xml(core))
    (conf_dir / "hdfs-site.xml").write_text(_hadoop_xml(site))
    log_config = resources.files("deploy").joinpath("conf", "hadoop-log4j.properties").read_text()
    (conf_dir / "log4j.properties").write_text(log_config)


def _hadoop_xml(properties: Mapping[str, str]) -> str:
    body = "\n".join(
        f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>"
        for k, v in properties.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{body}\n</configuration>\n'


class _SparkDaemon(_ManagedProcess):
    """A Spark standalone master or worker, started with pyspark's own ``bin/spark-class``."""

    main_class = ""

    def __init__(self, cluster: ClusterConfig, name: str, port: int) -> None:
        super().__init__(cluster.stack, port, name=name)
        self.cluster = cluster

    @property
    def marker(self) -> str:
        return f"-Dprognos.service={self.dir}"

    def _port_variable(self, port: int) -> str:
        return "PROGNOS_CLUSTER_PORT_BASE"

    def args(self) -> list[str]:
        raise NotImplementedError

    def command(self) -> list[str]:
        spark_class = spark_build().jars_dir.parent / "bin" / "spark-class"
        return ["bash", str(spark_class), self.main_class, *self.args()]

    def environment(self) -> dict[str, str]:
        java = find_java()
        spark_home = spark_build().jars_dir.parent
        options = [
            f"-Dprognos.service={self.dir}",
            "-Dspark.master.rest.enabled=false",  # else the master opens port 6066
            f"-Dlog4j2.configurationFile={spark_log_config()}",
        ]
        env = {
            **os.environ,
            "JAVA_HOME": str(java.executable.resolve().parent.parent),
            "SPARK_HOME": str(spark_home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": self.cluster.daemon_memory,
            "SPARK_DAEMON_JAVA_OPTS": " ".join(options),
            "SPARK_LOG_DIR": str(self.config.logs_dir),
            "SPARK_CONF_DIR": str(self.dir / "conf"),
            "SPARK_WORKER_DIR": str(self.dir / "work"),
        }
        # The submitting client's settings must not leak into the daemons.
        for name in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_ENV_LOADED"):
            env.pop(name, None)
        return env

    def prepare(self) -> None:
        (self.dir / "conf").mkdir(parents=True, exist_ok=True)
        (self.dir / "work").mkdir(parents=True, exist_ok=True)

    def master_state(self) -> dict[str, Any] | None:
        state = _get_json(f"http://127.0.0.1:{self.cluster.port('spark_master_ui')}/json/")
        return state if isinstance(state, dict) else None


class SparkMaster(_SparkDaemon):
    main_class = "org.apache.spark.deploy.master.Master"

    def __init__(self, cluster: ClusterConfig) -> None:
        super().__init__(cluster, "spark-master", cluster.port("spark_master"))

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.cluster.port("spark_master_ui"))

    def args(self) -> list[str]:
        return [
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--webui-port",
            str(self.cluster.port("spark_master_ui")),
        ]

    def healthy(self) -> bool:
        state = self.master_state()
        return state is not None and state.get("status") == "ALIVE"


#: A finished application's folder on a worker is removed this long after its last write,
#: checked every WORK_CLEANUP_INTERVAL_S (Spark's own worker cleanup).
WORK_RETENTION_S = 120
WORK_CLEANUP_INTERVAL_S = 60


class SparkWorker(_SparkDaemon):
    main_class = "org.apache.spark.deploy.worker.Worker"

    def __init__(self, cluster: ClusterConfig, number: int) -> None:
        super().__init__(cluster, f"spark-worker-{number}", cluster.port("spark_worker", number))
        self.number = number

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.cluster.port("spark_worker_ui", self.number))

    def args(self) -> list[str]:
        return [
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--webui-port",
            str(self.cluster.port("spark_worker_ui", self.number)),
            "--cores",
            "1",
            "--memory",
            self.cluster.worker_memory,
            "--work-dir",
            str(self.dir / "work"),
            self.cluster.spark_master,
        ]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        # Each executor unpacks what `prognos submit` ships (the Python environment, about
        # 360 MB) into the application's folder under work/; Spark keeps a finished
        # application's folder for 7 days, so a day of submissions could fill the disk.
        # Here it goes WORK_RETENTION_S after the application ends.
        env["SPARK_WORKER_OPTS"] = (
            "-Dspark.worker.cleanup.enabled=true "
            f"-Dspark.worker.cleanup.interval={WORK_CLEANUP_INTERVAL_S} "
            f"-Dspark.worker.cleanup.appDataTtl={WORK_RETENTION_S}"
        )
        return env

    def healthy(self) -> bool:
        state = self.master_state() or {}
        return any(
            w.get("port") == self.port and w.get("state") == "ALIVE"
            for w in state.get("workers", [])
        )


def spark_log_config() -> Path:
    from deploy.spark import spark_log_config as config

    return config()


class Cluster:
    """The local cluster as a whole: ``up``, ``down``, ``status`` and ``setup``."""

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig.from_env()
        self.brokers = [ClusterBroker(self.config, i) for i in range(1, BROKERS + 1)]
        self.namenode = NameNode(self.config)
        self.datanode = DataNode(self.config)
        self.master = SparkMaster(self.config)
        self.workers = [SparkWorker(self.config, i) for i in range(1, WORKERS + 1)]
        self.redis = RedisServer(self.config.stack)
        self.services: list[_ManagedProcess] = [
            *self.brokers,
            self.namenode,
            self.datanode,
            self.master,
            *self.workers,
            self.redis,
        ]

    def service(self, name: str) -> _ManagedProcess:
        for service in self.services:
            if service.name == name:
                return service
        names = ", ".join(s.name for s in self.services)
        raise DeployError(f"the cluster has no service {name!r}; its services: {names}")

    def setup(self) -> None:
        """Java, the Kafka and Hadoop jars, the connector, redis-server: no process started."""
        from deploy.jars import connector_jars

        find_java()
        kafka_jars(self.config.stack)
        hadoop_jars(self.config.stack)
        connector_jars(self.config.stack)
        install_redis()

    def up(self) -> list[ServiceStatus]:
        """Start what is not running (brokers together: a quorum answers only as one).

        On a failure, what this call started is stopped again.
        """
        self.setup()
        started: list[_ManagedProcess] = []
        try:
            launched = []
            for broker in self.brokers:
                process = broker.launch()
                if process is not None:
                    started.append(broker)
                    launched.append((broker, process))
            for broker, process in launched:
                broker.await_healthy(process)
            for service in [self.namenode, self.datanode, self.master, *self.workers, self.redis]:
                was_running = service.running_pid() is not None
                service.start()
                if not was_running:
                    started.append(service)
            self.create_topics()
        except BaseException:
            self._stop(list(reversed(started)))
            raise
        return self.status()

    def create_topics(self) -> None:
        """The readings and dead-letter topics at replication factor 3, two in sync."""
        from ingest.admin import ensure_topics
        from ingest.config import KafkaConfig

        kafka = KafkaConfig.from_env(
            {**os.environ, **self.config.client_env()},
            bootstrap_servers=self.config.kafka_bootstrap,
        )
        ensure_topics(kafka, timeout_s=30.0)

    def down(self) -> list[str]:
        """Stop what the cluster started, workers before the master, brokers last.

        Every service is tried even when one fails to stop; the failures are raised
        together at the end.

        Raises:
            NotRunningError: nothing of the cluster was running.
            DeployError: some service did not stop (each named, with why).
        """
        stopped, failures = self._stop(
            [*self.workers, self.master, self.datanode, self.namenode, self.redis, *self.brokers]
        )
        if failures:
            raise DeployError("the cluster did not stop cleanly: " + "; ".join(failures))
        if not stopped:
            raise NotRunningError(
                f"nothing to stop: no service of the cluster in {self.config.state_dir} is running"
            )
        return stopped

    def _stop(self, services: list[_ManagedProcess]) -> tuple[list[str], list[str]]:
        """Stop ``services`` in order, the brokers among them together (one alone waits for
        a quorum to hand over to); returns (stopped, failures)."""
        brokers = [s for s in services if s in self.brokers and s.running_pid() is not None]
        for broker in brokers:  # SIGTERM to all first
            pid = broker.running_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 15)
        stopped: list[str] = []
        failures: list[str] = []
        for service in services:
            try:
                if service.stop():
                    stopped.append(service.name)
            except DeployError as exc:
                failures.append(f"{service.name}: {exc}")
        return stopped, failures

    def status(self) -> list[ServiceStatus]:
        return [service.status() for service in self.services]

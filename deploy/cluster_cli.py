"""``prognos cluster up|status|down|env|setup`` and ``prognos submit``.

Only ``argparse`` is imported at module level (see :mod:`deploy.cli`).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    cluster = subparsers.add_parser(
        "cluster",
        help="a local multi-process cluster: 3 Kafka brokers, HDFS, Spark master + 2 workers",
        description="Start, stop and inspect the local cluster: three Kafka brokers (KRaft, "
        "three-voter quorum, topics at replication factor 3, min.insync.replicas=2), an HDFS "
        "NameNode and DataNode, a Spark standalone master and two workers, and a redis-server; "
        "state and logs in .prognos/cluster, ports from PROGNOS_CLUSTER_PORT_BASE (19000).",
    )
    actions = cluster.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text, handler in (
        ("setup", "resolve the Kafka, Hadoop and connector jars (no process started)", _setup),
        ("up", "start every service that is not running and wait until it answers", _up),
        ("status", "show each service's state; exit 1 unless all are healthy", _status),
        ("down", "stop what `up` started (by PID files), leaving no process or port", _down),
        ("env", 'print the settings that point prognos at the cluster: eval "$(...)"', _env),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        action.set_defaults(handler=handler)

    features = subparsers.add_parser(
        "features",
        help="window features of a (large) recording, computed by Spark, as a Parquet table",
        description="Read RECORDING (a file, or a URI such as hdfs://nn:8020/fleet/train.csv) "
        "with Spark, cut each device's readings into windows and compute their features with "
        "the code `prognos train` runs, and write them as Parquet to --out with "
        "_prognos.json (spec, source, failure times). `prognos train --features TABLE` "
        "trains from it. Runs on PROGNOS_SPARK_MASTER (local[2]); on a cluster: "
        "`prognos submit features RECORDING --out hdfs://...`. Reads C-MAPSS text files, and "
        "CSV or Parquet with device_id, event_time and sensor columns.",
    )
    features.add_argument("recording", help="the recording: a path or a Hadoop URI")
    features.add_argument("--out", required=True, help="the table to write (path or URI)")
    features.add_argument(
        "--model",
        help="the model whose feature spec to use (PROGNOS_MODEL, the default model)",
    )
    features.add_argument(
        "--cycle-seconds",
        type=float,
        default=600.0,
        help="event time of one C-MAPSS cycle (default 600, as the replay)",
    )
    features.set_defaults(handler=_features)

    submit = subparsers.add_parser(
        "submit",
        help="run the stream job on a Spark cluster with spark-submit",
        description="Run `prognos stream` (or `prognos features`) on a Spark cluster: builds "
        "the project's wheel, its Python environment as an archive and the model as an "
        "archive, prints the spark-submit command and runs it (the driver here, in client "
        "mode). Arguments after the options go to `prognos stream` (for example -- "
        "--checkpoint hdfs://.../cp --available-now), or name the command first: "
        "`prognos submit features hdfs://.../train.csv --out hdfs://.../features.parquet`.",
    )
    submit.add_argument(
        "--master", help="Spark master URL (PROGNOS_SPARK_MASTER; the local cluster's)"
    )
    submit.add_argument("--model", help="model folder to ship (PROGNOS_MODEL, the default)")
    submit.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a further Spark setting (repeatable), e.g. spark.cores.max=2",
    )
    submit.add_argument(
        "--dry-run", action="store_true", help="build the artefacts, print the command, stop"
    )
    submit.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments of prognos stream")
    submit.set_defaults(handler=_submit)


def _cluster() -> Any:
    from deploy.cluster import Cluster

    return Cluster()


def _print_status(statuses: Any) -> None:
    for s in statuses:
        pid = f"pid {s.pid}" if s.pid else ""
        print(f"{s.name:<15} {s.state:<12} {s.address:<22} {pid} {s.detail}".rstrip())


def _setup(args: argparse.Namespace) -> int:
    _cluster().setup()
    print("cluster set up: Kafka, Hadoop and connector jars resolved, redis-server present")
    return 0


def _up(args: argparse.Namespace) -> int:
    cluster = _cluster()
    statuses = cluster.up()
    _print_status(statuses)
    config = cluster.config
    print(
        f"kafka: {config.kafka_bootstrap}\nhdfs: {config.hdfs}\nspark: {config.spark_master} "
        f"(UI http://127.0.0.1:{config.port('spark_master_ui')})\nredis: {config.redis_url}\n"
        'point prognos at it:  eval "$(prognos cluster env)"'
    )
    return 0 if all(s.healthy for s in statuses) else 1


def _status(args: argparse.Namespace) -> int:
    statuses = _cluster().status()
    _print_status(statuses)
    return 0 if all(s.healthy for s in statuses) else 1


def _down(args: argparse.Namespace) -> int:
    print("stopped: " + ", ".join(_cluster().down()))
    return 0


def _env(args: argparse.Namespace) -> int:
    import shlex

    from deploy.cluster import ClusterConfig

    for name, value in ClusterConfig.from_env().client_env().items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from deploy import submit
    from deploy.cluster import ClusterConfig
    from stream.config import DEFAULT_MODEL

    master = args.master or os.environ.get("PROGNOS_SPARK_MASTER")
    if master and master.startswith("local"):
        if args.master:
            raise submit.SubmitError(
                f"--master {master}: prognos submit is for a cluster; run `prognos stream` "
                "for Spark's local mode"
            )
        master = None  # the local stack's default, not a choice for submit
    if not master:
        # The local cluster: its brokers, Redis and HDFS checkpoint too, unless set.
        cluster = ClusterConfig.from_env()
        master = cluster.spark_master
        for name, value in cluster.client_env().items():
            os.environ.setdefault(name, value)
    submit.check_master(master)
    model = Path(args.model or os.environ.get("PROGNOS_MODEL") or DEFAULT_MODEL).resolve()
    job_args = list(args.job_args)
    if job_args and job_args[0] == "--":
        job_args = job_args[1:]
    command = "stream"
    if job_args and job_args[0] in ("stream", "features"):
        command, job_args = job_args[0], job_args[1:]
    submission = submit.prepare(master, model, job_args, args.conf, command=command)
    return submit.run(submission, dry_run=args.dry_run)


def _features(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from deploy.features import compute
    from deploy.spark import spark_session
    from models.errors import DataError
    from models.scorer import Scorer
    from stream.config import DEFAULT_MODEL

    model = Path(args.model or os.environ.get("PROGNOS_MODEL") or DEFAULT_MODEL)
    meta = Scorer.load(model).metadata  # verified, as the stream job would
    if meta.norm.regimes is not None:
        raise DataError(
            f"{model} normalises readings per operating regime; prognos features computes "
            "windows without that: train such a model from the recording itself"
        )
    spec = meta.spec
    spark = spark_session()
    metadata = compute(spark, args.recording, args.out, spec, cycle_seconds=args.cycle_seconds)
    print(
        f"features of {metadata['devices']:,} devices ({metadata['windows']:,} windows, spec "
        f"{spec.name}) written to {args.out}; train from them with "
        f"`prognos train --features {args.out} --out MODEL_DIR`"
    )
    return 0

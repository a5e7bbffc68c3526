"""The whole-system commands: ``stack``, ``stream``, ``smoke``, ``demo``, ``status``,
``dashboard``, and
those of a user's own fleet (:mod:`deploy.fleet_cli`: ``train``, ``evaluate``, ``backtest``).

Only ``argparse`` (and the standard library) is imported at module level, as the
dispatcher (:mod:`deploy.cli`) expects.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``stack``, ``stream``, ``demo``, ``smoke``, ``status``, and (``deploy.fleet_cli``)
    ``train``, ``evaluate`` and ``backtest``."""
    from deploy import cluster_cli, fleet_cli, status

    _register_stack(subparsers)
    cluster_cli.register(subparsers)
    _register_stream(subparsers)
    _register_demo(subparsers)
    _register_smoke(subparsers)
    status.register(subparsers)
    _register_dashboard(subparsers)
    fleet_cli.register(subparsers)


def _register_stack(subparsers: Any) -> None:
    stack = subparsers.add_parser(
        "stack",
        help="the local Kafka broker and Redis server",
        description="Start, stop and inspect the local stack: an Apache Kafka broker (KRaft) "
        "and a redis-server, with state and logs in .prognos/state. Services named by "
        "PROGNOS_KAFKA_BOOTSTRAP or PROGNOS_REDIS_URL are used instead and not started.",
    )
    actions = stack.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kafka-port", type=int, help="broker port (PROGNOS_KAFKA_PORT, 9092)")
    common.add_argument("--redis-port", type=int, help="redis port (PROGNOS_REDIS_PORT, 6379)")
    common.add_argument("--state-dir", help="state folder (PROGNOS_STATE_DIR, .prognos/state)")
    common.add_argument(
        "--secure",
        action="store_true",
        default=None,
        help="the secure profile: Kafka over SASL_SSL (SCRAM-SHA-512), Redis over TLS with an "
        "ACL user (PROGNOS_STACK_SECURE=1); `prognos stack env --secure` prints the client "
        "settings",
    )
    common.add_argument(
        "--redis-fsync",
        choices=["everysec", "always"],
        help="redis-server's appendfsync (PROGNOS_REDIS_FSYNC, everysec); always: the durable "
        "profile, no acknowledged write lost in a machine crash, at a cost per write",
    )

    setup = actions.add_parser(
        "setup",
        parents=[common],
        help="resolve the jars and install redis-server (no process started)",
        description="Check Java, resolve the Kafka broker's and Spark's Kafka connector jars "
        "into the cache, and install redis-server when missing.",
    )
    setup.set_defaults(handler=_setup)
    up = actions.add_parser(
        "up",
        parents=[common],
        help="start the broker and redis-server",
        description="Start the services that are not running and wait until they answer.",
    )
    up.set_defaults(handler=_up)
    down = actions.add_parser(
        "down",
        parents=[common],
        help="stop what `up` started",
        description="Stop the processes the stack started (by their PID files).",
    )
    down.set_defaults(handler=_down)
    status = actions.add_parser(
        "status",
        parents=[common],
        help="show what runs and answers",
        description="Show each service's state; exit 1 unless all are healthy.",
    )
    status.set_defaults(handler=_status)
    env = actions.add_parser(
        "env",
        parents=[common],
        help="print the PROGNOS_* settings that point clients at this stack",
        description="Print `export` lines for the shell: the broker and Redis addresses and, "
        "with --secure, the SASL_SSL settings (the Kafka password as a file) and the rediss:// "
        'URL. Use: eval "$(prognos stack env --secure)".',
    )
    env.set_defaults(handler=_env)


def _config(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from deploy.config import StackConfig

    return StackConfig.from_env(
        kafka_port=args.kafka_port,
        redis_port=args.redis_port,
        state_dir=Path(args.state_dir).resolve() if args.state_dir else None,
        secure=args.secure,
        redis_fsync=args.redis_fsync,
    )


def _print_status(statuses: Any) -> None:
    for s in statuses:
        pid = f"pid {s.pid}" if s.pid else ""
        print(f"{s.name:<6} {s.state:<12} {s.address:<24} {pid} {s.detail}".rstrip())


def _setup(args: argparse.Namespace) -> int:
    from deploy.stack import Stack

    Stack(_config(args)).setup()
    print("stack set up: jars resolved, redis-server present")
    return 0


def _up(args: argparse.Namespace) -> int:
    from deploy.stack import Stack

    stack = Stack(_config(args))
    statuses = stack.up()
    _print_status(statuses)
    from stream.redis_config import redact_url

    print(
        f"bootstrap servers: {stack.config.kafka_bootstrap}    "
        f"redis: {redact_url(stack.config.redis_url)}"
    )
    if stack.config.secure:
        print('secure profile: point clients at it with  eval "$(prognos stack env --secure)"')
    return 0 if all(s.healthy for s in statuses) else 1


def _env(args: argparse.Namespace) -> int:
    import shlex

    config = _config(args)
    if config.secure:
        from deploy.errors import DeployError
        from deploy.secure import SecureFiles

        if not SecureFiles(config.secure_dir).kafka_app_password.is_file():
            raise DeployError(
                f"no secure profile in {config.state_dir}: start it first with "
                "`prognos stack up --secure`"
            )
    for name, value in config.client_env().items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from deploy.stack import Stack

    stopped = Stack(_config(args)).down()
    print("stopped: " + ", ".join(stopped))
    return 0


def _status(args: argparse.Namespace) -> int:
    from deploy.stack import Stack

    statuses = Stack(_config(args)).status()
    _print_status(statuses)
    return 0 if all(s.healthy for s in statuses) else 1


# -- prognos stream ------------------------------------------------------------------------


def _register_stream(subparsers: Any) -> None:
    from stream.cli import add_job_arguments

    job = subparsers.add_parser(
        "stream",
        help="run the stream job: Kafka -> Spark -> ONNX Runtime -> Redis alerts",
        description="Read readings from Kafka, build each device's window features, score "
        "failure risk with the ONNX model, and write alerts to Redis. Runs until Ctrl-C or "
        "SIGTERM (the batch in flight finishes first), or with --available-now until the "
        "topic is read. Kafka and Redis come from the local stack or PROGNOS_KAFKA_BOOTSTRAP "
        "/ PROGNOS_REDIS_URL; see README, 'The stream job', for every setting.",
    )
    add_job_arguments(job)
    job.set_defaults(handler=_stream)


def _stream(args: argparse.Namespace) -> int:
    from deploy.spark import spark_session
    from stream.cli import job_config
    from stream.job import StreamJob
    from stream.session import SparkConfig

    config = job_config(args)
    spark = spark_session(SparkConfig.from_env(app_name="prognos-stream"))
    try:
        job = StreamJob(spark, config)
        job.start()
        job.run()
    finally:
        spark.stop()
    m = job.metrics
    print(
        f"stream job stopped after batch {m.batch_id}: {m.windows_scored_total} windows scored, "
        f"{m.alerts_total} alert events, {m.dead_letters_total} dead letters, "
        f"{m.dropped_by_watermark_total} late readings dropped"
    )
    return 0


# -- prognos smoke -------------------------------------------------------------------------


def _register_smoke(subparsers: Any) -> None:
    smoke = subparsers.add_parser(
        "smoke",
        help="send readings through Kafka -> Spark -> Redis and count what arrives",
        description="The smoke pipeline: send readings with kafka-python, read them with a "
        "Spark Structured Streaming query through format('kafka'), write them to Redis "
        "through foreachBatch, and check every one arrived exactly once. Uses the local "
        "stack (prognos stack up) or PROGNOS_KAFKA_BOOTSTRAP / PROGNOS_REDIS_URL.",
    )
    smoke.add_argument("--count", type=int, default=1000, help="readings to send (default 1000)")
    smoke.add_argument("--topic", help="topic to use (default: a new prognos.smoke.<id> topic)")
    smoke.set_defaults(handler=_smoke)


def _smoke(args: argparse.Namespace) -> int:
    import tempfile
    import uuid
    from pathlib import Path

    from deploy.errors import DeployError
    from deploy.smoke import run_smoke
    from deploy.spark import spark_session
    from ingest.admin import kafka_answers
    from ingest.config import KafkaConfig
    from stream.redis_config import RedisConfig, redact_url, redis_problem
    from stream.session import SparkConfig

    kafka = KafkaConfig.from_env()
    redis = RedisConfig.from_env()
    if kafka.security_protocol != "PLAINTEXT":
        raise DeployError(
            "prognos smoke checks a PLAINTEXT broker (the local stack without --secure); the "
            "secure profile is checked by `prognos stream` itself, which refuses to start when "
            "the broker does not answer with the configured security settings"
        )
    if not kafka_answers(kafka.bootstrap_servers):
        raise DeployError(
            f"no Kafka broker answers at {kafka.bootstrap_servers}: run `prognos stack up`, "
            "or set PROGNOS_KAFKA_BOOTSTRAP to your cluster"
        )
    problem = redis_problem(redis.url)
    if problem is not None:
        raise DeployError(f"Redis at {redact_url(redis.url)}: {problem}")
    run_id = uuid.uuid4().hex[:8]
    topic = args.topic or f"prognos.smoke.{run_id}"
    spark = spark_session(SparkConfig.from_env(app_name="prognos-smoke", ui=False))
    try:
        with tempfile.TemporaryDirectory(prefix="prognos-smoke-") as tmp:
            result = run_smoke(
                spark,
                kafka.bootstrap_servers,
                topic,
                redis.url,
                redis.key_prefix,
                run_id,
                Path(tmp) / "checkpoint",
                args.count,
            )
    finally:
        spark.stop()
    print(
        f"smoke pipeline: sent {result.sent} readings to {topic} on {kafka.bootstrap_servers}; "
        f"Spark delivered {result.delivered} to Redis ({result.duplicated} duplicated, "
        f"{result.missing} missing) in {result.seconds:.1f}s -> {'OK' if result.ok else 'FAILED'}"
    )
    return 0 if result.ok else 1


# -- prognos demo --------------------------------------------------------------------------


def _register_demo(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the whole system: stack, stream job, a degrading fleet, live alerts",
        description="Bring the local stack up, start the stream job with the default model, "
        "start a simulated fleet of turbofans in which a few degrade fast (or replay NASA "
        "C-MAPSS with --cmapss), and show alerts as they arrive. Ctrl-C stops everything "
        "the demo started.",
    )
    demo.add_argument("--machines", type=int, default=12, help="turbofans in the fleet (12)")
    demo.add_argument("--fast-fail", type=int, default=3, help="how many degrade fast (3)")
    demo.add_argument(
        "--rate", type=int, default=600, help="simulated seconds per second (600: a cycle a second)"
    )
    demo.add_argument("--seed", type=int, default=7, help="the fleet's seed (7)")
    demo.add_argument(
        "--cmapss",
        nargs="?",
        const="",
        metavar="PATH",
        help="replay C-MAPSS instead (default ../shared/data/cmapss/train_FD001.txt)",
    )
    demo.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: Ctrl-C)"
    )
    demo.add_argument("--key-prefix", help="Redis key prefix (PROGNOS_KEY_PREFIX, prognos)")
    demo.add_argument(
        "--metrics-port",
        type=int,
        default=9464,
        help="the stream job's Prometheus metrics port (9464; another free one if busy; 0: off)",
    )
    demo.add_argument(
        "--dashboard-port",
        type=int,
        default=8080,
        help="the live dashboard's port (8080; another free one if busy; 0: off)",
    )
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deploy.demo import DemoConfig, default_cmapss, run_demo

    cmapss = (
        None if args.cmapss is None else (Path(args.cmapss) if args.cmapss else default_cmapss())
    )
    return run_demo(
        DemoConfig(
            machines=args.machines,
            fast_fail=args.fast_fail,
            rate=args.rate,
            seed=args.seed,
            cmapss=cmapss,
            duration_s=args.duration,
            key_prefix=args.key_prefix,
            metrics_port=args.metrics_port or None,
            dashboard_port=args.dashboard_port or None,
        )
    )


# -- prognos dashboard ---------------------------------------------------------------------


def _register_dashboard(subparsers: Any) -> None:
    dash = subparsers.add_parser(
        "dashboard",
        help="a live web page: fleet, riskiest devices, open alerts, device views, job health",
        description="Serve a web page over what the stream job writes to Redis: the fleet "
        "summary, the riskiest devices, open alerts with the features behind them, a "
        "device's risk over time and alert lifecycle, and the job's health. It updates "
        "live (server-sent events). Redis is the local stack's or PROGNOS_REDIS_URL.",
    )
    dash.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    dash.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (127.0.0.1; 0.0.0.0: all)"
    )
    dash.add_argument("--key-prefix", help="the job's Redis key prefix (PROGNOS_KEY_PREFIX)")
    dash.add_argument("--redis-url", help="the job's Redis (PROGNOS_REDIS_URL, local stack)")
    dash.set_defaults(handler=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    from deploy.dashboard import DashboardConfig, open_socket, run_dashboard_on
    from stream.redis_config import RedisConfig

    redis = RedisConfig.from_env(key_prefix=args.key_prefix)
    config = DashboardConfig(
        redis_url=args.redis_url or redis.url,
        key_prefix=redis.key_prefix,
        host=args.host,
        port=args.port,
    )
    sock = open_socket(config.host, config.port)  # a port in use: a message, not a traceback
    print(f"prognos dashboard: http://{config.host}:{config.port}/ (Ctrl-C stops it)", flush=True)
    run_dashboard_on(config, sock)
    return 0


# -- prognos model promote | rollback | history ---------------------------------------------


def register_late(subparsers: Any) -> None:
    """Add what extends other packages' commands (``model promote|rollback|history``,
    which need the Redis contract); called once every package has registered."""
    _register_model_registry(subparsers)


def _model_actions(subparsers: Any) -> Any:
    """The ``model`` command's own subcommands (``models.cli`` registers ``model``)."""
    model = subparsers.choices["model"]
    for action in model._actions:  # argparse keeps its subparsers among the actions
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the model command has no subcommands")


def _register_model_registry(subparsers: Any) -> None:
    actions = _model_actions(subparsers)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--key-prefix", help="the job's Redis key prefix (PROGNOS_KEY_PREFIX)")
    common.add_argument("--redis-url", help="the job's Redis (PROGNOS_REDIS_URL, local stack)")
    promote = actions.add_parser(
        "promote",
        parents=[common],
        help="check a model and switch the running stream job to it (no restart)",
        description="Check MODEL_DIR (checksum, parity fixture, input contract against the "
        "running model, shadow scoring of recent windows beside it) and make it the model "
        "the stream job scores with from its next batch. Refused candidates change nothing.",
    )
    promote.add_argument("model_dir", metavar="MODEL_DIR", help="the candidate model folder")
    promote.add_argument(
        "--force", action="store_true", help="accept a missing parity fixture or an alert-rate jump"
    )
    promote.add_argument(
        "--max-rate-change",
        type=float,
        default=0.2,
        help="largest change of alert rate on recent windows accepted (0.2)",
    )
    promote.set_defaults(handler=_promote)
    back = actions.add_parser(
        "rollback",
        parents=[common],
        help="switch the running stream job back to the model before the last promotion",
    )
    back.set_defaults(handler=_rollback)
    hist = actions.add_parser(
        "history", parents=[common], help="promotions, refusals, switches and rollbacks"
    )
    hist.add_argument("--count", type=int, default=20, help="entries to show (20)")
    hist.set_defaults(handler=_history)


def _registry_target(args: argparse.Namespace) -> tuple[str, str]:
    from stream.redis_config import RedisConfig

    redis = RedisConfig.from_env(key_prefix=args.key_prefix)
    return args.redis_url or redis.url, redis.key_prefix


def _promote(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deploy.promote import promote

    url, prefix = _registry_target(args)
    outcome = promote(
        Path(args.model_dir), url, prefix, force=args.force, max_rate_change=args.max_rate_change
    )
    shadow = outcome.shadow
    checked = (
        f"shadow scoring of {shadow.windows} recent windows: alert rate "
        f"{shadow.active_rate:.1%} -> {shadow.candidate_rate:.1%}"
        if shadow is not None and shadow.windows
        else "no recent windows to shadow-score (the job has not run under this prefix yet)"
    )
    print(
        f"promoted {outcome.version} (generation {outcome.generation}) over "
        f"{outcome.previous or 'no registered model'}; {checked}. The stream job switches at "
        "its next batch (or at its start)."
    )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from deploy.promote import rollback

    url, prefix = _registry_target(args)
    outcome = rollback(url, prefix)
    print(
        f"rolled back to {outcome.version} (generation {outcome.generation}), replacing "
        f"{outcome.previous}; the stream job switches at its next batch."
    )
    return 0


def _history(args: argparse.Namespace) -> int:
    import json
    import time

    from deploy.promote import model_history

    url, prefix = _registry_target(args)
    lines = model_history(url, prefix, args.count)
    if not lines:
        print(f"no model history under key prefix {prefix}")
    for line in lines:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(line.pop("at_ms", 0) / 1000))
        action, version = line.pop("action", "?"), line.pop("version", "")
        rest = {k: v for k, v in line.items() if k not in ("path", "sha256") and v is not None}
        print(f"{when}  {action:<18} {version}  {json.dumps(rest, sort_keys=True)}")
    return 0

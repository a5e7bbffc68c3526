"""``prognos stack``: set up, start, stop and inspect the local stack."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
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
    from deploy.redact import redact_url

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

"""The ``prognos`` command. It only dispatches: each subcommand lives in its package.

A package contributes subcommands through a ``cli`` module with a
``register(subparsers)`` function that adds its parsers and sets ``handler`` on each;
a handler takes the parsed arguments and returns an exit code. ``cli`` modules import
only ``argparse`` at module level, so ``prognos --help`` stays fast and a subcommand
never pays for another's imports (pyspark, onnxruntime, torch). ``deploy`` registers the
whole-system commands (``stack``, ``stream``, ``smoke``, ``demo``, ``status``).

Before a handler runs, the local stack's client settings
(:meth:`deploy.config.StackConfig.client_env`: its ports, state folder and, with the
secure profile, the clients' security settings) become defaults of the environment, so
every package's configuration (``KafkaConfig``, ``RedisConfig``, ``StreamConfig``) finds
the stack from its own ``PROGNOS_*`` variables; a variable the user set wins.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# The packages whose errors are user-facing: their messages say what and how to fix.
PACKAGES = ("deploy", "ingest", "simulator", "models", "stream")
_COMMAND_MODULES = tuple(
    f"{package}.cli_commands" if package == "deploy" else f"{package}.cli" for package in PACKAGES
)
# Third-party loggers that report our normal operation as warnings (kafka-python's
# producer and admin client while topics are created, py4j's gateway at shutdown): shown
# from ERROR only, unless --log-level DEBUG asks for everything.
_QUIET_LOGGERS = ("kafka", "py4j")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every package's subcommands registered."""
    parser = argparse.ArgumentParser(
        prog="prognos",
        description="Real-time predictive maintenance: Kafka -> Spark -> ONNX Runtime -> Redis.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging verbosity (default: INFO)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that package has no subcommands yet
            raise
        module.register(subparsers)
    from deploy.cli_commands import register_late

    register_late(subparsers)
    return parser


def _stack_defaults() -> None:
    """The local stack's client settings as defaults of ``os.environ`` (see above)."""
    import os

    from deploy.config import StackConfig

    for name, value in StackConfig.from_env().client_env().items():
        os.environ.setdefault(name, value)


def _is_user_facing(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in PACKAGES


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prognos`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.log_level != "DEBUG":
        for noisy in _QUIET_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        _stack_defaults()
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("prognos: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not _is_user_facing(exc):
            raise
        print(f"prognos {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

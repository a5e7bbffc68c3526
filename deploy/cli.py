"""The ``prognos`` command. It only dispatches: each subcommand lives in its package.

A package contributes subcommands through a ``cli`` module with a
``register(subparsers)`` function that adds its parsers and sets ``handler`` on each;
a handler takes the parsed arguments and returns an exit code. ``cli`` modules import
only ``argparse`` at module level, so ``prognos --help`` stays fast and a subcommand
never pays for another's imports (pyspark, onnxruntime, torch).
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
    return parser


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
    for noisy in ("kafka", "py4j"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
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

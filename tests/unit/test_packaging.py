"""The distribution's packages come from this tree, and every CLI level has --help."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["ingest", "stream", "models", "simulator", "deploy"]


def test_pyproject_lists_the_packages_explicitly() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"] == PACKAGES
    assert config["project"]["scripts"]["prognos"] == "deploy.cli:main"


@pytest.mark.parametrize("name", PACKAGES)
def test_package_imports_from_this_tree(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == ROOT / name


def _help_paths() -> list[list[str]]:
    """Every subcommand path of the parser, found by walking it."""
    import argparse

    from deploy.cli import build_parser

    paths: list[list[str]] = [[]]

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    paths.append([*prefix, name])
                    walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return paths


@pytest.mark.parametrize("path", _help_paths(), ids=lambda p: " ".join(p) or "prognos")
def test_help_on_every_level(path: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", *path, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: prognos" in result.stdout


def test_stack_commands_are_registered() -> None:
    paths = {" ".join(p) for p in _help_paths()}
    assert {"stack", "stack up", "stack down", "stack status", "stack setup", "smoke"} <= paths

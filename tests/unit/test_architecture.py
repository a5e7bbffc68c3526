"""The house's shape, checked from the source: import direction, one owner of Redis keys,
explicit public APIs, and docstring examples that run.

Dependencies run one way, ``deploy`` on top::

    simulator -> ingest <- stream -> models        (deploy imports any of them)

An import inside a function, or under ``TYPE_CHECKING``, is still an import: every
``import`` and ``from ... import`` statement anywhere in a module counts.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ingest", "models", "stream", "simulator", "deploy")

#: What each package may import (besides itself and third-party code).
ALLOWED: Mapping[str, frozenset[str]] = {
    "ingest": frozenset(),
    "models": frozenset(),
    "simulator": frozenset({"ingest"}),
    "stream": frozenset({"ingest", "models"}),
    "deploy": frozenset({"ingest", "models", "stream", "simulator"}),
}


# -- import direction ---------------------------------------------------------------------


def imported_packages(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every import in ``source``, at any depth.

    ``module`` (dotted) resolves relative imports.
    """
    package_parts = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                yield node.lineno, (base or [node.module or ""])[0]
            elif node.module:
                yield node.lineno, node.module.split(".")[0]


def violations(sources: Mapping[str, str]) -> list[str]:
    """Arrows against the direction, as ``module:line imports package``.

    ``sources`` maps a module's dotted name to its source text.
    """
    found = []
    for module, source in sorted(sources.items()):
        owner = module.split(".")[0]
        for line, package in imported_packages(source, module):
            if package in PACKAGES and package != owner and package not in ALLOWED[owner]:
                found.append(f"{module}:{line} imports {package}")
    return found


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def test_the_checker_finds_an_import_against_the_direction_even_inside_a_function() -> None:
    planted = {
        "stream.fine": "from ingest.schema import Reading\nimport models.scorer\n",
        "stream.bad": "def f():\n    if True:\n        from deploy.stack import Stack\n",
        "ingest.bad": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import stream.job\n",
        "models.bad": "import numpy\nfrom models import features\nimport ingest\n",
        "simulator.bad": "from . import fleet\nfrom stream.sink import RedisAlertSink\n",
        "deploy.fine": "import stream.job, simulator.run, ingest, models\n",
    }
    assert violations(planted) == [
        "ingest.bad:3 imports stream",
        "models.bad:3 imports ingest",
        "simulator.bad:2 imports stream",
        "stream.bad:3 imports deploy",
    ]


def test_dependencies_run_one_way_with_deploy_on_top() -> None:
    sources = {name: path.read_text() for name, path in _modules().items()}
    assert len(sources) > 50
    assert violations(sources) == []


# -- one owner of the Redis keys ------------------------------------------------------------

#: A key or channel segment after the prefix: ``P:alerts``, ``P:device:ID``, ...
_KEY = re.compile(r":(alerts|risk|rank|device|open|fleet|metrics|deadletters|smoke)\b")
#: The contract, its test (which pins the names) and this file (whose examples spell keys).
_EXEMPT = {
    ROOT / "stream" / "contract.py",
    ROOT / "tests" / "unit" / "stream" / "test_contract.py",
    Path(__file__).resolve(),
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def key_spellings(source: str) -> list[tuple[int, str]]:
    """(line, text) of string constants, f-string parts included, that spell a key."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docs
        and _KEY.search(node.value)
    ]


def test_the_key_checker_finds_a_key_in_an_f_string_and_skips_docstrings() -> None:
    source = '"""Writes ``P:alerts``."""\nKEY = f"{prefix}:metrics"\nNAME = "alerts"\n'
    assert key_spellings(source) == [(2, ":metrics")]


def test_no_module_but_the_contract_spells_a_redis_key() -> None:
    files = [p for p in _modules().values() if p not in _EXEMPT]
    files += [p for p in sorted((ROOT / "tests").rglob("*.py")) if p not in _EXEMPT]
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path in files
        for line, text in key_spellings(path.read_text())
    ]
    assert found == [], "use stream.contract.Keys instead:\n" + "\n".join(found)


# -- public API and doctests -------------------------------------------------------------------


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_exports_its_public_names(name: str) -> None:
    package = importlib.import_module(name)
    exported = package.__all__
    assert exported and len(set(exported)) == len(exported)
    for attribute in exported:
        assert getattr(package, attribute) is not None, f"{name}.{attribute}"
    assert set(exported) <= set(dir(package))


def _importable_modules() -> Iterator[str]:
    for package in PACKAGES:
        module = importlib.import_module(package)
        yield package
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            yield info.name


def test_docstring_examples_run() -> None:
    attempted = 0
    failures: list[str] = []
    needs_torch: list[str] = []
    for name in _importable_modules():
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == "torch":  # the `train` extra's modules
                needs_torch.append(name)
                continue
            raise
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        attempted += result.attempted
        if result.failed:
            failures.append(f"{name}: {result.failed} of {result.attempted} failed")
    assert failures == []
    assert attempted >= 20, f"only {attempted} docstring examples ran"
    assert set(needs_torch) <= {"models.network", "models.training", "models.study"}

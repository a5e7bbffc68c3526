"""The CLI registration and the package's public API."""

from __future__ import annotations

import builtins
import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from deploy.cli import build_parser, main

DEFAULT = Path(__file__).resolve().parents[3] / "models" / "default"


def test_subcommands_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "--out", "x", "--arch", "cnn", "--folds", "3"])
    # train and evaluate read recordings (ingest) and apply the alert policy (stream): deploy.
    assert args.handler.__module__ == "deploy.fleet_cli" and args.arch == "cnn" and args.folds == 3
    assert args.regimes == "auto" and args.data == "cmapss:../shared/data/cmapss"
    assert parser.parse_args(["evaluate"]).model == "models/default"
    info = parser.parse_args(["model", "info"])
    assert info.path == "models/default" and info.handler.__module__ == "models.cli"


def test_cli_module_imports_only_argparse() -> None:
    source = (Path(__file__).resolve().parents[3] / "models" / "cli.py").read_text()
    top = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert top == ["from __future__ import annotations", "import argparse",
                   "from typing import Any"]  # fmt: skip


def test_model_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "info", str(DEFAULT), "--providers", "cpu"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["active_provider"] == "CPUExecutionProvider" and len(info["sha256"]) == 64


def test_model_info_on_tampered_model_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model.onnx").write_bytes((DEFAULT / "model.onnx").read_bytes() + b"x")
    (tmp_path / "manifest.json").write_text((DEFAULT / "manifest.json").read_text())
    assert main(["model", "info", str(tmp_path)]) == 1
    assert "SHA-256" in capsys.readouterr().err


def test_train_without_torch_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    assert main(["train", "--out", "unused"]) == 1
    assert ".[train]" in capsys.readouterr().err


@pytest.mark.parametrize(
    "module",
    ["models.errors", "models.features", "models.metadata", "models.scorer", "models.data",
     "models.evaluation", "models.durations", "models.labels", "models.events", "models.fleet",
     "models.fleet_report"],
)  # fmt: skip
def test_public_api_names_exist(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ lists missing {name}"


def test_scorer_imports_no_training_packages() -> None:
    import subprocess
    import sys

    code = ("import sys, models.scorer, models.features, models.metadata; "
            "print(sorted(m for m in ('torch', 'pandas', 'sklearn', 'matplotlib', 'onnx') "
            "if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

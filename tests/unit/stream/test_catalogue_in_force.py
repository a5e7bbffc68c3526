"""The stream job's catalogue: --catalogue / PROGNOS_CATALOGUE, else the model's, else the default."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ingest.catalogue import Catalogue, CatalogueError, SensorRule, default_catalogue
from stream.cli import add_job_arguments, job_config
from stream.config import MODEL_CATALOGUE, StreamConfig

DISKS = Catalogue(
    sensors=(SensorRule("smart_5_raw", "sectors", 0, 70_000),),
    unknown="dead-letter",
)


def _config(tmp_path: Path, env: dict[str, str] | None = None, **kw: object) -> StreamConfig:
    return StreamConfig.from_env(env or {}, checkpoint=tmp_path / "cp", **kw)


def test_the_default_catalogue_without_a_model_catalogue(tmp_path: Path) -> None:
    config = _config(tmp_path, model_path=tmp_path)
    assert config.catalogue is None
    assert config.load_catalogue() is default_catalogue()


def test_the_model_folder_records_its_catalogue(tmp_path: Path) -> None:
    DISKS.save(tmp_path / MODEL_CATALOGUE)
    loaded = _config(tmp_path, model_path=tmp_path).load_catalogue()
    assert loaded == DISKS and loaded.origin == str(tmp_path / MODEL_CATALOGUE)


def test_an_explicit_catalogue_wins_over_the_models(tmp_path: Path) -> None:
    DISKS.save(tmp_path / MODEL_CATALOGUE)
    env = {"PROGNOS_CATALOGUE": "cmapss"}
    config = _config(tmp_path, env, model_path=tmp_path)
    assert config.catalogue == Path("cmapss")
    assert config.load_catalogue().origin == "shipped:cmapss"


def test_the_flag_overrides_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = argparse.ArgumentParser()
    add_job_arguments(parser)
    DISKS.save(tmp_path / "disks.toml")
    args = parser.parse_args(["--catalogue", str(tmp_path / "disks.toml")])
    monkeypatch.setenv("PROGNOS_CATALOGUE", "simulator")
    config = job_config(args)
    assert config.catalogue == tmp_path / "disks.toml"
    assert config.load_catalogue() == DISKS


def test_a_bad_catalogue_is_refused_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sensor]]\nname = "p"\nunit = "bar"\nlow = 5\nhigh = 1\n')
    with pytest.raises(
        CatalogueError, match=r"bad.toml:1: \[\[sensor\]\] 'p': low 5 is above high 1"
    ):
        _config(tmp_path, catalogue=bad).load_catalogue()
    with pytest.raises(CatalogueError, match="no such file"):
        _config(tmp_path, catalogue=tmp_path / "missing.toml").load_catalogue()

"""The container image's build context, staged by ``make image``: ``python -m deploy.image DIR``.

The context holds only what the image needs, so the build reaches no package index:

- ``Dockerfile`` and ``kafka-broker.sh`` (from ``deploy/``);
- ``wheels/``: the project's wheel and every wheel its core requirements need at the
  versions ``constraints.txt`` pins, built on this machine with ``pip wheel`` (kept in
  ``~/.cache/prognos/wheels/image`` and reused);
- ``cache/``: the Kafka broker's and Spark's Kafka connector jars as ``prognos stack setup``
  resolved them (the image's ``PROGNOS_CACHE_DIR``);
- ``model/``: the default model.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from deploy.config import StackConfig
from deploy.errors import DeployError

logger = logging.getLogger(__name__)

__all__ = ["stage"]


def stage(out: Path, config: StackConfig | None = None) -> Path:
    """Write the build context into ``out`` (replaced); returns it."""
    from deploy.jars import connector_coordinate, connector_jars, kafka_jars, spark_build
    from deploy.submit import project_wheel
    from stream.config import DEFAULT_MODEL

    config = config or StackConfig.from_env()
    home = config.home
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(home / "deploy" / "Dockerfile", out / "Dockerfile")
    shutil.copy2(home / "deploy" / "docker" / "kafka-broker.sh", out / "kafka-broker.sh")
    shutil.copy2(home / "constraints.txt", out / "constraints.txt")
    shutil.copytree(DEFAULT_MODEL, out / "model")

    wheel = project_wheel(home, out / "build")
    wheels = out / "wheels"
    wheels.mkdir()
    shutil.copy2(wheel, wheels / wheel.name)
    cache = config.cache_dir / "wheels" / "image"
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--find-links",
        str(cache),
        "-c",
        str(home / "constraints.txt"),
        "-w",
        str(cache),
        str(wheel),
    ]
    logger.info("building the image's wheels into %s", cache)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DeployError(f"pip wheel failed:\n{(result.stdout + result.stderr)[-2000:]}")
    needed = _needed_wheels(cache, wheel, home / "constraints.txt")
    for path in needed:
        if path.name != wheel.name:
            shutil.copy2(path, wheels / path.name)
    shutil.rmtree(out / "build", ignore_errors=True)

    # The jars as the image's PROGNOS_CACHE_DIR holds them (resolved markers included).
    kafka = kafka_jars(config)
    connector_jars(config)
    build = spark_build()
    for folder in (
        kafka[0].parent,
        config.cache_dir / f"spark-kafka-{build.spark_version}_{build.scala_binary}",
    ):
        shutil.copytree(folder, out / "cache" / folder.name)
    logger.info("image context staged in %s (%s)", out, connector_coordinate(build))
    return out


#: The image's Python and platform: Debian bookworm's 3.11.2 or a newer 3.11.
_TARGET = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
#: Requirements whose markers name a 3.11 patch release: pip evaluates
#: ``python_full_version`` for this interpreter whatever --python-version says, so they are
#: named here (redis needs async-timeout below 3.11.3; Debian bookworm has 3.11.2).
_PATCH_LEVEL = ["async-timeout>=4.0.3"]
_PLATFORMS = [
    f"manylinux_2_{minor}_x86_64" for minor in (36, 35, 34, 31, 28, 27, 26, 24, 17, 12, 5)
] + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def _needed_wheels(cache: Path, wheel: Path, constraints: Path) -> list[Path]:
    """The wheels installing ``wheel`` needs on the image's Python 3.11 (markers evaluated
    for it, not for this interpreter): from ``cache``, else downloaded and kept there."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="prognos-image-wheels-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            *_TARGET,
            *[arg for p in _PLATFORMS for arg in ("--platform", p)],
            "--find-links",
            str(cache),
            "-c",
            str(constraints),
            "--dest",
            tmp,
            str(wheel),
            *_PATCH_LEVEL,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DeployError(f"resolving the image's wheels failed:\n{result.stderr[-2000:]}")
        for path in Path(tmp).glob("*.whl"):
            if not (cache / path.name).exists():
                shutil.copy2(path, cache / path.name)
        return sorted(cache / path.name for path in Path(tmp).glob("*.whl"))


if __name__ == "__main__":  # pragma: no cover (make image)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".prognos/image")
    print(stage(target.resolve()))

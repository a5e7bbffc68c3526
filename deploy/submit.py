"""``prognos submit``: the stream job on a Spark cluster, with everything its executors need.

A thin wrapper over ``spark-submit`` (client mode: the driver runs here, where
``prognos`` runs) that prints the command it runs. It ships, so that no path of the
submitting machine is assumed on a worker:

- the project as a wheel (``--py-files``), built from this checkout;
- its Python environment as an archive Spark unpacks in each executor's folder
  (``--archives ...#prognos-env``; ``spark.pyspark.python=./prognos-env/bin/python``):
  the installed distributions the core package needs, without pyspark (each worker's own
  Spark puts its pyspark on the executors' path, matching its JVM);
- the model folder as an archive (``#prognos-model``); each executor verifies its
  checksum before scoring with it;
- Spark's Kafka connector and what it needs (``--jars``).

Artefacts are built into ``.prognos/submit`` and reused while their inputs are unchanged.
The environment archive's Python links to the interpreter path the workers have
(``PROGNOS_EXECUTOR_PYTHON``, default this one's): a worker needs that Python (the same
minor version), as with venv-pack.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

from deploy.errors import DeployError
from stream.scoring import SHIPPED_MODEL_CONF
from stream.session import HDFS_CLIENT

logger = logging.getLogger(__name__)

__all__ = ["ENV_ALIAS", "MODEL_ALIAS", "Submission", "build_command", "environment_archive"]

#: Where an executor finds the unpacked environment and model (archive fragments).
ENV_ALIAS = "prognos-env"
MODEL_ALIAS = "prognos-model"
#: Distributions the executors take from their worker's Spark, not from the archive.
_FROM_SPARK = {"pyspark", "py4j"}


class SubmitError(DeployError):
    """The job cannot be submitted; the message names the problem and the fix."""


@dataclass(frozen=True)
class Submission:
    """What ``spark-submit`` is given."""

    master: str
    wheel: Path
    environment: Path
    model_archive: Path
    model_dir: Path
    jars: tuple[Path, ...]
    job_args: tuple[str, ...]
    conf: Mapping[str, str]
    executor_python: str
    #: The ``prognos`` command the driver runs: ``stream`` or ``features``.
    command: str = "stream"


def _requirement_names(dist: metadata.Distribution) -> Iterable[str]:
    from packaging.requirements import Requirement

    for text in dist.requires or []:
        requirement = Requirement(text)
        # The core requirements and their own defaults; extras are named explicitly.
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        yield requirement.name
        for extra in requirement.extras:
            try:
                extra_requires = metadata.distribution(requirement.name).requires or []
            except metadata.PackageNotFoundError:
                continue  # reported below, as the requirement itself is missing
            for sub in extra_requires:
                sub_req = Requirement(sub)
                if sub_req.marker is not None and sub_req.marker.evaluate({"extra": extra}):
                    yield sub_req.name


def runtime_distributions(root: str = "prognos") -> list[metadata.Distribution]:
    """The installed distributions ``root``'s core requirements need, transitively.

    ``root`` itself and pyspark/py4j (the worker's Spark provides them) are left out.

    Raises:
        SubmitError: a requirement is not installed here.
    """
    from packaging.utils import canonicalize_name

    seen: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen or name in _FROM_SPARK:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SubmitError(
                f"{name} is required by the stream job but not installed in {sys.prefix}; "
                "run `make setup` (or `pip install -e .`) first"
            ) from None
        seen[name] = dist
        todo.extend(_requirement_names(dist))
    seen.pop(canonicalize_name(root), None)
    return sorted(seen.values(), key=lambda d: d.metadata["Name"].lower())


def _digest(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def environment_archive(out_dir: Path, executor_python: str) -> Path:
    """A ``.tar.gz`` virtual environment with the job's runtime distributions.

    Its ``bin/python`` links to ``executor_python``; ``pyvenv.cfg`` makes that interpreter
    use the archive's ``site-packages`` once unpacked anywhere. Reused while the installed
    versions and the interpreter are unchanged.
    """
    dists = runtime_distributions()
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    key = _digest(
        [executor_python, version, *(f"{d.metadata['Name']}=={d.version}" for d in dists)]
    )
    archive = out_dir / f"pyenv-{key}.tar.gz"
    if archive.is_file():
        return archive
    out_dir.mkdir(parents=True, exist_ok=True)
    site = f"lib/{version}/site-packages"
    started = time.monotonic()
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
        _add_text(tar, "pyvenv.cfg", _pyvenv_cfg(executor_python))
        _add_link(tar, "bin/python", executor_python)
        _add_link(tar, "bin/python3", "python")
        for dist in dists:
            base = Path(str(dist.locate_file("")))
            for file in dist.files or []:
                source = base / file
                name = os.path.normpath(str(file))
                if name.startswith("..") or "__pycache__" in name or not source.is_file():
                    continue  # console scripts in bin/, caches: not needed by executors
                tar.add(source, arcname=f"{site}/{name}", recursive=False)
    partial.replace(archive)
    # Older archives are kept: a job submitted with one still serves it to new executors.
    logger.info(
        "packed the executors' Python environment (%d distributions, %.0f MB) in %.0fs: %s",
        len(dists),
        archive.stat().st_size / 1e6,
        time.monotonic() - started,
        archive,
    )
    return archive


def _pyvenv_cfg(executor_python: str) -> str:
    v = sys.version_info
    return (
        f"home = {os.path.dirname(executor_python)}\n"
        "include-system-site-packages = false\n"
        f"version = {v.major}.{v.minor}.{v.micro}\n"
    )


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mode = 0o777
    tar.addfile(info)


def model_archive(model_dir: Path, out_dir: Path) -> Path:
    """The model folder as a ``.tar.gz`` named by its files' checksum."""
    if not (model_dir / "model.onnx").is_file():
        raise SubmitError(
            f"{model_dir} is not a model folder (no model.onnx): pass --model with a folder "
            "`prognos train` or `prognos model import` wrote"
        )
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    key = _digest([f"{p.relative_to(model_dir)}:{_sha256(p)}" for p in files])
    archive = out_dir / f"model-{key}.tar.gz"
    if not archive.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        with tarfile.open(partial, "w:gz") as tar:
            for p in files:
                tar.add(p, arcname=str(p.relative_to(model_dir)), recursive=False)
        partial.replace(archive)
    return archive


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def project_wheel(home: Path, out_dir: Path) -> Path:
    """This checkout as a wheel (``pip wheel --no-deps``), rebuilt on every submit."""
    if not (home / "pyproject.toml").is_file():
        raise SubmitError(
            f"{home} has no pyproject.toml: run `prognos submit` from a Prognos checkout "
            "(or set PROGNOS_HOME to one)"
        )
    import tempfile

    with tempfile.TemporaryDirectory(prefix="prognos-wheel-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp,
            str(home),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=home)
        built = sorted(Path(tmp).glob("prognos-*.whl"))
        if result.returncode != 0 or not built:
            raise SubmitError(
                f"building the project's wheel failed:\n{(result.stdout + result.stderr)[-1500:]}"
            )
        # A folder per content: a running job keeps serving the wheel it was submitted with.
        target = out_dir / "wheel" / _sha256(built[-1])[:12] / built[-1].name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built[-1], target)
    return target


def check_master(master: str, timeout_s: float = 5.0) -> None:
    """Fail fast, naming the fix, when a ``spark://`` master does not answer."""
    if not master.startswith("spark://"):
        return
    for address in master[len("spark://") :].split(","):
        parsed = urlparse(f"spark://{address}")
        try:
            host, port = parsed.hostname or "", parsed.port or 7077
        except ValueError:
            raise SubmitError(
                f"the Spark master {master} has no valid port; write it as spark://HOST:7077"
            ) from None
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return
        except OSError as exc:
            reason = exc
    raise SubmitError(
        f"the Spark master {master} does not answer ({reason}). Start it (the local cluster: "
        "`prognos cluster up`), or pass the right URL with --master or PROGNOS_SPARK_MASTER"
    )


def build_command(submission: Submission) -> list[str]:
    """The ``spark-submit`` command line for ``submission``."""
    from deploy.jars import spark_build

    spark_home = spark_build().jars_dir.parent
    conf = {
        "spark.pyspark.python": f"./{ENV_ALIAS}/bin/python",
        "spark.pyspark.driver.python": sys.executable,
        SHIPPED_MODEL_CONF: MODEL_ALIAS,
        # pyspark puts only .zip/.egg/.jar files of --py-files on the workers' path; the
        # wheel lands in each executor's folder, where this relative entry finds it.
        "spark.executorEnv.PYTHONPATH": submission.wheel.name,
        **submission.conf,
    }
    cmd = [
        str(spark_home / "bin" / "spark-submit"),
        "--master",
        submission.master,
        "--deploy-mode",
        "client",
        "--name",
        "prognos",
        "--jars",
        ",".join(str(j) for j in submission.jars),
        "--py-files",
        str(submission.wheel),
        "--archives",
        f"{submission.environment}#{ENV_ALIAS},{submission.model_archive}#{MODEL_ALIAS}",
    ]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    import deploy.cli

    cmd += [
        str(Path(deploy.cli.__file__).resolve()),
        submission.command,
        "--model",
        str(submission.model_dir),
    ]
    return [*cmd, *submission.job_args]


#: Settings every submission gets (each may be overridden with --conf).
DEFAULT_CONF = {
    # SPARK-58241: a Python UDF over a Parquet scan hangs in Spark 4.2.0 without this.
    "spark.sql.execution.arrow.pythonUDF.columnarInput.enabled": "false",
    "spark.executor.memory": "1g",
    "spark.ui.showConsoleProgress": "false",
    # An unreachable NameNode fails the job in seconds rather than after minutes of retries.
    "spark.hadoop.ipc.client.connect.max.retries": "3",
    "spark.hadoop.ipc.client.connect.retry.interval": "1000",
    # A file closed on HDFS is complete in tens of ms, not the client's default 400 ms wait.
    **HDFS_CLIENT,
}


def _parse_conf(pairs: Sequence[str]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SubmitError(f"--conf {pair!r} is not KEY=VALUE (for example spark.cores.max=2)")
        conf[key.strip()] = value
    return conf


def prepare(
    master: str,
    model_dir: Path,
    job_args: Sequence[str],
    conf: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    command: str = "stream",
) -> Submission:
    """Build (or reuse) what the executors need and return the submission."""
    from deploy.config import StackConfig
    from deploy.jars import connector_jars

    env = os.environ if env is None else env
    stack = StackConfig.from_env(env)
    out = stack.home / ".prognos" / "submit"
    executor_python = env.get("PROGNOS_EXECUTOR_PYTHON") or _base_python()
    from deploy.spark import spark_log_config
    from stream.session import DRIVER_STACK

    settings = {
        **DEFAULT_CONF,
        # The driver logs as `prognos stream` does locally (Spark's WARN lines, no noise).
        "spark.driver.extraJavaOptions": f"{DRIVER_STACK} "
        f"-Dlog4j2.configurationFile={spark_log_config()}",
    }
    if (env.get("PROGNOS_SPARK_UI") or "1").lower() in ("0", "false", "no", "off"):
        settings["spark.ui.enabled"] = "false"
    partitions = env.get("PROGNOS_SHUFFLE_PARTITIONS")
    if partitions:
        settings["spark.sql.shuffle.partitions"] = partitions
    if re.match(r"spark://(127\.0\.0\.1|localhost)[:/]", master):
        # A cluster on this machine: the executors reach the driver on the loopback.
        settings["spark.driver.host"] = "127.0.0.1"
    settings.update(_parse_conf(conf))
    return Submission(
        master=master,
        wheel=_prebuilt_wheel(env) or project_wheel(stack.home, out),
        environment=environment_archive(out, executor_python),
        model_archive=model_archive(model_dir, out),
        model_dir=model_dir,
        jars=tuple(connector_jars(stack)),
        job_args=tuple(job_args),
        conf=settings,
        executor_python=executor_python,
        command=command,
    )


def _prebuilt_wheel(env: Mapping[str, str]) -> Path | None:
    """``PROGNOS_WHEEL_DIR``'s prognos wheel (the container image keeps the one it installed)."""
    folder = env.get("PROGNOS_WHEEL_DIR")
    if not folder:
        return None
    wheels = sorted(Path(folder).glob("prognos-*.whl"))
    if not wheels:
        raise SubmitError(f"PROGNOS_WHEEL_DIR={folder} holds no prognos-*.whl; unset it")
    return wheels[-1]


def _base_python() -> str:
    """The interpreter this virtual environment was made from (what the archive links to)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    real = os.path.realpath(base)
    return real if os.path.isfile(real) else sysconfig.get_config_var("BINDIR") + "/python3"


def driver_environment_link(cwd: Path, out_dir: Path) -> Path:
    """Make ``./prognos-env/bin/python`` in the driver's folder run this Python.

    The window operator's ``transformWithStateInPandas`` starts one Python worker in the
    driver when its query starts (to read the processor's state schemas), with the Python
    the executors are given, ``./prognos-env/bin/python``, relative to the driver's folder:
    so the folder ``spark-submit`` runs in (this one) gets a link ``prognos-env`` to this
    Python environment (``sys.prefix``: the worker must import the job's modules), or,
    where that has no ``bin/python``, to a folder under ``out_dir`` whose ``bin/python`` is
    this interpreter. The link is kept (a running job still needs it) and reused.

    Raises:
        SubmitError: ``./prognos-env`` exists and is not such a link.
    """
    # This environment itself (a virtual environment's or an installation's prefix, with
    # its site-packages: the worker imports the job's modules); else a folder of its own.
    env_dir = Path(sys.prefix)
    if not (env_dir / "bin" / "python").exists():
        env_dir = out_dir / "driver-env"
        python = env_dir / "bin" / "python"
        python.parent.mkdir(parents=True, exist_ok=True)
        if not python.is_symlink() or os.readlink(python) != sys.executable:
            python.unlink(missing_ok=True)
            python.symlink_to(sys.executable)
    link = cwd / ENV_ALIAS
    if link.is_symlink():
        if link.resolve() == env_dir.resolve():
            return link
        link.unlink()
    elif link.exists():
        raise SubmitError(
            f"{link} exists and is not Prognos's link to the driver's Python: the driver "
            f"runs ./{ENV_ALIAS}/bin/python when the job starts. Move it away, or run "
            "`prognos submit` from another folder"
        )
    try:
        link.symlink_to(env_dir.resolve(), target_is_directory=True)
    except OSError as exc:
        raise SubmitError(
            f"cannot create {link} ({exc.strerror}): the driver runs ./{ENV_ALIAS}/bin/python "
            "when the job starts. Run `prognos submit` from a folder you can write to"
        ) from exc
    return link


def run(submission: Submission, *, dry_run: bool = False) -> int:
    """Print the command, then run it in the foreground; returns its exit code."""
    from deploy.jars import spark_build

    cmd = build_command(submission)
    print("running: " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    if dry_run:
        return 0
    driver_environment_link(Path.cwd(), submission.environment.parent)
    spark_home = spark_build().jars_dir.parent
    child_env = {**os.environ, "SPARK_HOME": str(spark_home)}
    if submission.conf.get("spark.driver.host") == "127.0.0.1":
        child_env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    process = subprocess.Popen(cmd, env=child_env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        # spark-submit's driver stops the query at its own SIGINT; wait for it.
        return process.wait()

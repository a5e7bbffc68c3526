"""Recordings on HDFS or any Hadoop-compatible file system (``hdfs://``, ``s3a://`` ...).

``prognos replay`` and ``prognos train`` read local files. A recording given as a URI is
first copied to a local temporary folder with Hadoop's own file-system shell
(``org.apache.hadoop.fs.FsShell -copyToLocal``) run from the Hadoop client jars pyspark
ships, so whatever file system Spark reads works the same, with ``HADOOP_CONF_DIR`` for its
settings. The copy needs local disk for the file; ``prognos features`` computes window
features of recordings too large for that on the cluster instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ingest.errors import InputFileError

__all__ = ["fetch", "fs_shell", "is_remote", "local_copy"]

_TIMEOUT_S = 3600


def is_remote(path: str | Path) -> bool:
    """True for a URI of a Hadoop file system (not ``file:``).

    >>> is_remote("hdfs://nn:8020/recordings/fleet.csv"), is_remote("data/fleet.csv")
    (True, False)
    """
    text = str(path)
    scheme, sep, _ = text.partition("://")
    return isinstance(path, str) and bool(sep) and scheme.isidentifier() and scheme != "file"


def _classpath(conf_dir: Path) -> str:
    import pyspark

    jars = Path(pyspark.__file__).resolve().parent / "jars"
    return os.pathsep.join([os.environ.get("HADOOP_CONF_DIR") or str(conf_dir), str(jars / "*")])


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise InputFileError(
            "reading a recording from a Hadoop file system needs Java 17+ (no JAVA_HOME, no "
            "java on PATH): install it (apt-get install openjdk-17-jre-headless)"
        )
    return java


def fs_shell(*args: str, timeout_s: float = _TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run Hadoop's file-system shell (what ``hdfs dfs ARGS`` runs) with pyspark's jars.

    ``HADOOP_CONF_DIR`` supplies the file systems' settings; without it an empty
    configuration is used (a URI with the NameNode's address needs nothing more).
    """
    with tempfile.TemporaryDirectory(prefix="prognos-hadoop-conf-") as conf:
        (Path(conf) / "core-site.xml").write_text("<configuration/>\n")
        cmd = [
            _java(),
            "-Xmx512m",
            "-cp",
            _classpath(Path(conf)),
            "org.apache.hadoop.fs.FsShell",
            # An unreachable NameNode fails in seconds, not after minutes of retries.
            "-Dipc.client.connect.max.retries=3",
            "-Dipc.client.connect.retry.interval=1000",
            *args,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)


def fetch(uri: str, folder: Path) -> Path:
    """Copy the file at ``uri`` into ``folder``; returns the local copy.

    Raises:
        InputFileError: the file cannot be read (no such file, file system unreachable);
            the message names the URI, the file system's own reason and the fix.
    """
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "recording"
    target = folder / name
    try:
        result = fs_shell("-copyToLocal", uri, str(target))
    except subprocess.TimeoutExpired:
        raise InputFileError(
            f"copying {uri} took over {_TIMEOUT_S}s; copy it locally first"
        ) from None
    if result.returncode != 0 or not target.is_file():
        lines = [
            line.strip()
            for line in result.stderr.splitlines()
            if line.strip() and not line.startswith(("WARNING", "SLF4J", "\tat ", "at "))
        ]
        reason = next((x for x in lines if "copyToLocal" in x or "Exception" in x), None)
        reason = reason or (lines[-1] if lines else f"exit code {result.returncode}")
        raise InputFileError(
            f"cannot read {uri}: {reason[:300]}. Check the path (`hdfs dfs -ls` it), that the "
            "file system answers (the NameNode's address and port in the URI; for the local "
            "cluster `prognos cluster status`), and for other file systems HADOOP_CONF_DIR."
        )
    return target


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[Path]:
    """``path`` itself, or for a URI a local copy removed afterwards."""
    if not is_remote(path):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="prognos-fetch-") as tmp:
        yield fetch(path, Path(tmp))

"""Checkpoint folders on a local path or on any Hadoop-compatible file system.

A local checkpoint is a :class:`~pathlib.Path`; one on HDFS (``hdfs://namenode:8020/...``),
S3 (``s3a://``) or another file system Spark reads is kept as its URI string, which Spark
itself is given. The driver reads and writes the few small files Prognos keeps beside
Spark's own (``job.json``) through :class:`HadoopFiles`: Hadoop's ``FileSystem`` in the
driver's JVM, so whatever file system Spark is configured for works alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream.errors import PreflightError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

__all__ = ["HadoopFiles", "Location", "is_uri", "join", "location"]

#: A checkpoint folder: a local path, or the URI of a folder on a Hadoop file system.
Location = Path | str


def is_uri(place: Location) -> bool:
    """True for a URI on a Hadoop file system (``hdfs://``, ``s3a://``; not ``file:``).

    >>> is_uri("hdfs://127.0.0.1:19820/prognos/checkpoints"), is_uri(Path("/tmp/x"))
    (True, False)
    >>> is_uri("file:///tmp/x"), is_uri("relative/folder")
    (False, False)
    """
    if isinstance(place, Path):
        return False
    scheme, sep, _ = place.partition("://")
    return bool(sep) and scheme.lower() != "file" and scheme.isidentifier()


def location(text: str) -> Location:
    """A ``--checkpoint`` value as a location: URIs kept, everything else a path.

    >>> location("hdfs://nn:8020/cp/")
    'hdfs://nn:8020/cp'
    >>> location("file:///tmp/cp")
    PosixPath('/tmp/cp')
    """
    if is_uri(text):
        return text.rstrip("/")
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    return Path(text)


def join(place: Location, *names: str) -> str:
    """A file or folder inside ``place``, as the string Spark is given.

    >>> join("hdfs://nn:8020/cp", "main")
    'hdfs://nn:8020/cp/main'
    """
    if isinstance(place, Path):
        return str(place.joinpath(*names))
    return "/".join([place.rstrip("/"), *names])


class HadoopFiles:
    """Small text files on a Hadoop file system, through the driver's JVM.

    Every failure (NameNode down, no permission, unknown scheme) becomes a
    :class:`~stream.errors.PreflightError` naming the path and the fix.
    """

    def __init__(self, spark: SparkSession) -> None:
        self._jvm: Any = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, uri: str) -> tuple[Any, Any]:
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path.getFileSystem(self._conf), path

    def read_text(self, uri: str) -> str | None:
        """The file's text, or None when it does not exist."""
        try:
            fs, path = self._fs(uri)
            if not fs.exists(path):
                return None
            stream = fs.open(path)
            try:
                return str(self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
            finally:
                stream.close()
        except Exception as exc:  # py4j wraps the JVM's exception
            raise _unusable(uri, exc, "read") from None

    def write_text(self, uri: str, text: str) -> None:
        """Write ``text`` (replacing the file), creating the folders above it."""
        try:
            fs, path = self._fs(uri)
            out = fs.create(path, True)
            try:
                out.write(bytearray(text.encode("utf-8")))
            finally:
                out.close()
        except Exception as exc:
            raise _unusable(uri, exc, "write") from None


def _unusable(uri: str, exc: BaseException, what: str) -> PreflightError:
    lines = str(getattr(exc, "java_exception", None) or exc).strip().splitlines()
    cause = lines[0][:300] if lines else type(exc).__name__
    return PreflightError(
        f"cannot {what} {uri}: {cause}. Check that the file system answers (for the local "
        "cluster: `prognos cluster status`; HDFS: the NameNode's address in the URI) and that "
        "this user may write under the checkpoint folder, or pass another --checkpoint."
    )

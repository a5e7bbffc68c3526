"""Checkpoint locations: local paths and Hadoop URIs, and job.json on either."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.checkpoint import check_checkpoint, fingerprint
from stream.errors import CheckpointMismatchError
from stream.storage import is_uri, join, location


class _Files:
    """An in-memory Hadoop file system (what HadoopFiles does through the JVM)."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def read_text(self, uri: str) -> str | None:
        return self.files.get(uri)

    def write_text(self, uri: str, text: str) -> None:
        self.files[uri] = text


def _print(**kw: object) -> dict[str, object]:
    base = dict(
        window_ms=600_000,
        sequence_length=30,
        features=["s2__mean"],
        shuffle_partitions=2,
        topic="t",
        state_layout="v3",
    )
    return fingerprint(**{**base, **kw})  # type: ignore[arg-type]


def test_uris_stay_strings_and_paths_become_paths() -> None:
    assert location("hdfs://nn:8020/a/b/") == "hdfs://nn:8020/a/b"
    assert location("s3a://bucket/cp") == "s3a://bucket/cp"
    assert location("/tmp/cp") == Path("/tmp/cp")
    assert location("file:///tmp/cp") == Path("/tmp/cp")
    assert is_uri("hdfs://x/y") and not is_uri("c:/x") and not is_uri(Path("hdfs:/x"))
    assert join("hdfs://nn:8020/cp", "main") == "hdfs://nn:8020/cp/main"
    assert join(Path("/tmp/cp"), "main") == "/tmp/cp/main"


def test_job_json_on_a_hadoop_file_system_is_written_once_and_checked() -> None:
    files = _Files()
    check_checkpoint("hdfs://nn:8020/cp", _print(deployment="cluster"), files)
    assert json.loads(files.files["hdfs://nn:8020/cp/job.json"])["deployment"] == "cluster"
    check_checkpoint("hdfs://nn:8020/cp", _print(deployment="cluster"), files)
    with pytest.raises(CheckpointMismatchError, match="window_ms: checkpoint has 600000"):
        check_checkpoint("hdfs://nn:8020/cp", _print(deployment="cluster", window_ms=1), files)
    with pytest.raises(ValueError, match="is a URI"):
        check_checkpoint("hdfs://nn:8020/cp", _print())


def test_a_checkpoint_with_a_querys_progress_and_no_job_json_is_refused() -> None:
    """job.json is written before the query first starts: a checkpoint holding Spark's
    progress without it was not this job's, or lost it, and is not taken as new."""
    files = _Files()
    files.write_text("hdfs://nn:8020/cp/main/metadata", '{"id":"x"}')
    with pytest.raises(CheckpointMismatchError, match=r"progress \(main/\) but no job\.json"):
        check_checkpoint("hdfs://nn:8020/cp", _print(deployment="cluster"), files)
    assert "hdfs://nn:8020/cp/job.json" not in files.files  # not written over
    files.write_text("hdfs://nn:8020/other/elsewhere/metadata", "{}")
    check_checkpoint("hdfs://nn:8020/other", _print(deployment="cluster"), files)  # new: fine

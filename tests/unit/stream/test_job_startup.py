"""The stream job refuses bad models and incompatible checkpoints before reading anything;
its metrics count every batch."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from models.errors import ChecksumMismatchError, CorruptModelError
from stream.config import DEFAULT_MODEL, StreamConfig
from stream.errors import CheckpointMismatchError, ConfigError
from stream.job import StreamJob


class _Conf:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


class _Context:
    def __init__(self, master: str) -> None:
        self.master = master

    def getConf(self) -> _Conf:
        return _Conf({})


class _Spark:
    """Only what StreamJob touches before start(): the SQL conf, the master."""

    def __init__(self, partitions: int = 2, master: str = "local[2]") -> None:
        self.conf = _Conf({"spark.sql.shuffle.partitions": str(partitions)})
        self.sparkContext = _Context(master)


def _config(tmp_path: Path, **kw: Any) -> StreamConfig:
    base = StreamConfig.from_env(
        {}, redis_url="redis://127.0.0.1:1/0", checkpoint=tmp_path / "ckpt"
    )
    return replace(base, **kw)


def test_a_flipped_byte_in_the_model_is_refused_at_start_up(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    data = bytearray((model / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (model / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match=r"model\.onnx"):
        StreamJob(_Spark(), _config(tmp_path, model_path=model))  # type: ignore[arg-type]


def test_a_model_whose_network_reads_other_inputs_than_its_metadata_is_refused(
    tmp_path: Path,
) -> None:
    """Metadata saying K = 7 over a network that reads 10 windows: refused at start-up,
    naming both shapes, not at the first window scored."""
    from dataclasses import replace as with_fields

    import onnx

    from models.metadata import MODEL_NAME, write_manifest
    from models.scorer import Scorer

    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    meta = Scorer.load(DEFAULT_MODEL).metadata
    meta = with_fields(meta, spec=with_fields(meta.spec, sequence_length=7))
    network = onnx.load(str(model / MODEL_NAME))
    props = meta.to_props()
    for prop in network.metadata_props:
        if prop.key in props:
            prop.value = props[prop.key]
    onnx.save(network, str(model / MODEL_NAME))
    write_manifest(model, meta, created="2026-12-06T00:00:00+00:00")
    with pytest.raises(CorruptModelError, match=r"needs \[batch, 7, 90\]"):
        StreamJob(_Spark(), _config(tmp_path, model_path=model))  # type: ignore[arg-type]


def test_a_model_file_that_is_not_onnx_with_a_matching_checksum_is_refused(
    tmp_path: Path,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    (model / "model.onnx").write_bytes(b"not an onnx file at all")
    import hashlib
    import json

    manifest = json.loads((model / "manifest.json").read_text())
    manifest["sha256"] = hashlib.sha256(b"not an onnx file at all").hexdigest()
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptModelError):
        StreamJob(_Spark(), _config(tmp_path, model_path=model))  # type: ignore[arg-type]


def test_a_checkpoint_of_an_incompatible_job_is_refused_with_the_reason(tmp_path: Path) -> None:
    first = StreamJob(_Spark(partitions=2), _config(tmp_path))  # type: ignore[arg-type]
    first.check_checkpoint()
    first.check_checkpoint()  # the same job again: accepted
    changed = StreamJob(_Spark(partitions=8), _config(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(
        CheckpointMismatchError,
        match=r"shuffle_partitions: checkpoint has 2, this job has 8.*new --checkpoint",
    ):
        changed.check_checkpoint()
    older = json.loads((tmp_path / "ckpt" / "job.json").read_text())
    del older["state_layout"]  # written before the one-operator state layout
    (tmp_path / "ckpt" / "job.json").write_text(json.dumps(older))
    with pytest.raises(CheckpointMismatchError, match="state_layout: checkpoint has None"):
        first.check_checkpoint()


def test_a_local_mode_checkpoint_is_refused_on_a_cluster_and_the_other_way(
    tmp_path: Path,
) -> None:
    local = StreamJob(_Spark(), _config(tmp_path))  # type: ignore[arg-type]
    local.check_checkpoint()
    cluster = StreamJob(_Spark(master="spark://127.0.0.1:19077"), _config(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(
        CheckpointMismatchError,
        match=r"in local mode and this job runs in cluster mode.*own --checkpoint",
    ):
        cluster.check_checkpoint()
    # A checkpoint from before the deployment was recorded counts as local mode's.
    older = json.loads((tmp_path / "ckpt" / "job.json").read_text())
    del older["deployment"]
    (tmp_path / "ckpt" / "job.json").write_text(json.dumps(older))
    local.check_checkpoint()
    with pytest.raises(CheckpointMismatchError, match="in local mode"):
        cluster.check_checkpoint()
    other = tmp_path / "cluster"
    first = StreamJob(_Spark(master="spark://m:7077"), _config(other))  # type: ignore[arg-type]
    first.check_checkpoint()
    with pytest.raises(CheckpointMismatchError, match="in cluster mode and this job runs in local"):
        StreamJob(_Spark(), _config(other)).check_checkpoint()  # type: ignore[arg-type]


def test_an_impossible_alert_policy_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="alert policy"):
        StreamJob(_Spark(), _config(tmp_path, threshold=1.5))  # type: ignore[arg-type]


class _Query:
    """A streaming query's progress reports, as ``recentProgress`` returns them."""

    def __init__(self) -> None:
        self.recentProgress: list[dict[str, Any]] = []

    def report(self, batch_id: int, rows: int, late: int) -> None:
        self.recentProgress.append(
            {
                "batchId": batch_id,
                "numInputRows": rows,
                "stateOperators": [{"numRowsDroppedByWatermark": late}],
            }
        )


def test_late_readings_of_every_batch_are_counted_even_between_polls(tmp_path: Path) -> None:
    # The job polls progress once a second; a batch with late readings followed quickly by
    # a no-data batch must not be lost because only the last report was read.
    job = StreamJob(_Spark(), _config(tmp_path))  # type: ignore[arg-type]
    query = _Query()
    job.queries = [query]  # type: ignore[list-item]
    query.report(0, 800, late=0)
    job.record_progress()
    query.report(1, 800, late=3)
    query.report(2, 600, late=4)
    query.report(3, 0, late=0)
    job.record_progress()
    assert job.metrics.batch_id == 3
    assert job.metrics.input_rows == 0
    assert job.metrics.dropped_by_watermark_total == 7
    job.record_progress()  # nothing new: nothing counted twice
    assert job.metrics.dropped_by_watermark_total == 7


def test_only_a_batch_interrupted_by_our_own_stop_is_kept_out_of_the_error_log() -> None:
    import logging
    import threading

    from stream.runner import _InterruptedByStop

    stopping = threading.Event()
    quiet = _InterruptedByStop(stopping)

    def record(error: Exception) -> logging.LogRecord:
        return logging.LogRecord(
            "py4j.clientserver", logging.ERROR, __file__, 1, "proxy failed", None,
            (type(error), error, None),
        )  # fmt: skip

    interrupted = record(
        RuntimeError("calling o1.collectToPython.\n: java.lang.InterruptedException")
    )
    real = record(RuntimeError("stream.errors.SinkError: Redis at redis://h:1/0 failed 5 times"))
    assert quiet.filter(interrupted) and quiet.filter(real)  # running: every error is shown
    stopping.set()
    assert not quiet.filter(interrupted) and quiet.filter(real)


def test_the_state_time_to_live_defaults_to_three_sequences_and_zero_keeps_state() -> None:
    from models.scorer import Scorer
    from stream.job import _state_ttl_ms

    scorer = Scorer.load(DEFAULT_MODEL, providers="cpu")
    spec = scorer.metadata.spec
    config = StreamConfig.from_env({}, redis_url="redis://x", checkpoint=Path("c"))
    assert config.state_ttl_seconds is None
    assert _state_ttl_ms(config, scorer) == 3 * spec.sequence_length * spec.window_seconds * 1000
    env = {"PROGNOS_STATE_TTL": "86400"}
    config = StreamConfig.from_env(env, redis_url="redis://x", checkpoint=Path("c"))
    assert _state_ttl_ms(config, scorer) == 86_400_000
    config = StreamConfig.from_env({"PROGNOS_STATE_TTL": "0"}, redis_url="redis://x")
    assert _state_ttl_ms(config, scorer) is None


@pytest.mark.parametrize("raw", ["a day", "-5", "inf"])
def test_a_bad_state_time_to_live_names_the_setting(raw: str) -> None:
    with pytest.raises(ConfigError, match="PROGNOS_STATE_TTL"):
        StreamConfig.from_env({"PROGNOS_STATE_TTL": raw}, redis_url="redis://x")


def test_the_drift_values_of_a_batch_become_one_row_a_window() -> None:
    """Full lists in one copy; a null list or value is NaN (missing) either way."""
    import numpy as np
    import pyarrow as pa

    from stream.job import _rows_of

    full = pa.chunked_array([[[1.0, 2.0], [3.0, None]], [[5.0, 6.0]]])
    np.testing.assert_array_equal(_rows_of(full, 2), [[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
    holes = pa.chunked_array([[[1.0, 2.0], None, []]])
    np.testing.assert_array_equal(
        _rows_of(holes, 2), [[1.0, 2.0], [np.nan, np.nan], [np.nan, np.nan]]
    )
    sliced = pa.chunked_array([pa.array([[0.0, 0.0], [7.0, 8.0], [9.0, 1.0]]).slice(1)])
    np.testing.assert_array_equal(_rows_of(sliced, 2), [[7.0, 8.0], [9.0, 1.0]])


def test_a_state_store_the_operator_cannot_run_on_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    # A user's PROGNOS_SPARK_CONF reaches the local session as is; the job's start checks
    # it first (its Redis, at port 1, would otherwise be named unreachable).
    hdfs = "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider"
    spark = _Spark()
    spark.conf.set("spark.sql.streaming.stateStore.providerClass", hdfs)
    job = StreamJob(spark, _config(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="runs only on RocksDB"):
        job.start()
    assert job.queries == []
    assert not (tmp_path / "ckpt").exists()


def test_a_start_that_fails_closes_what_the_job_opened(tmp_path: Path) -> None:
    closed: list[str] = []

    class _Closing:
        def __init__(self, name: str) -> None:
            self.name = name

        def close(self) -> None:
            closed.append(self.name)

    spark = _Spark()
    spark.conf.set("spark.sql.streaming.stateStore.providerClass", "some.OtherProvider")
    job = StreamJob(spark, _config(tmp_path))  # type: ignore[arg-type]
    job.sink = _Closing("sink")  # type: ignore[assignment]
    job.dead_letters = _Closing("dead letters")  # type: ignore[assignment]
    with pytest.raises(ConfigError):
        job.start()
    assert closed == ["sink", "dead letters"]

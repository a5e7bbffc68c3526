"""Model hot swap against the real pipeline: a model promoted mid-replay takes over at one
batch boundary with nothing lost or duplicated against a run without the swap; a tampered
candidate is refused while the old model keeps scoring; rollback restores it; a promotion
made while no job runs is applied when the job starts."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import redis
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from deploy.promote import PromotionRefused, promote, rollback
from ingest.config import KafkaConfig
from ingest.producer import ReadingProducer
from ingest.replay import ReplayOptions, replay_file
from models.metadata import DEFAULT_MODEL, MODEL_NAME, write_manifest
from models.scorer import Scorer
from stream.config import StreamConfig
from stream.contract import Keys, ModelEntry
from stream.job import StreamJob
from stream.registry import history

ENGINES = 20
NEW_VERSION = "swap-test-2"


def _candidate(folder: Path, version: str, **spec: Any) -> Path:
    """The default model re-versioned: the same network, so the same risks, another name
    (and, with ``spec``, metadata saying it reads other inputs)."""
    shutil.copytree(DEFAULT_MODEL, folder)
    meta = replace(Scorer.load(DEFAULT_MODEL).metadata, model_version=version)
    if spec:
        meta = replace(meta, spec=replace(meta.spec, **spec))
    model = onnx.load(str(folder / MODEL_NAME))
    props = meta.to_props()
    for prop in model.metadata_props:
        if prop.key in props:
            prop.value = props[prop.key]
    onnx.save(model, str(folder / MODEL_NAME))
    write_manifest(folder, meta, created="2026-12-03T00:00:00+00:00")
    return folder


@pytest.fixture(scope="module")
def recording(cmapss_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    table = np.loadtxt(cmapss_dir / "train_FD001.txt")
    path = tmp_path_factory.mktemp("swap") / "train_FD001.txt"
    np.savetxt(path, table[table[:, 0] <= ENGINES], fmt="%g")
    return path


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[list[str]]:
    names = [f"test-swap-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="prognos-tests")
    admin.create_topics([NewTopic(n, 1, 1) for n in names])
    try:
        yield names
    finally:
        try:
            existing = set(admin.list_topics())
            admin.delete_topics([n for t in names for n in (t, f"{t}.dlq") if n in existing])
        finally:
            admin.close()


def _config(
    bootstrap: str, topic: str, redis_url: str, prefix: str, ckpt: Path, **kw: Any
) -> StreamConfig:
    kafka = KafkaConfig.from_env({"PROGNOS_KAFKA_BOOTSTRAP": bootstrap, "PROGNOS_TOPIC": topic})
    base = StreamConfig.from_env(
        {}, redis_url=redis_url, key_prefix=prefix, checkpoint=ckpt, max_offsets_per_trigger=800,
        trigger_seconds=0.5, **kw,
    )  # fmt: skip
    return replace(base, kafka=kafka)


def _replay(kafka: KafkaConfig, path: Path) -> int:
    with ReadingProducer(kafka) as producer:
        return replay_file(path, producer, ReplayOptions(progress=False, sort_by_time=True)).sent


def _events(client: Any, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(f[b"event"]) for _, f in client.xrange(Keys(prefix).alerts)]


def _identity(e: dict[str, Any]) -> tuple[Any, ...]:
    """An event without its ids: an alert's id names the model that opened it."""
    return (e["kind"], e["device_id"], e["window_end_ms"], e["severity"], e["risk"])


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_model_promoted_mid_replay_takes_over_at_one_batch_with_nothing_lost(
    spark: Any,
    kafka_bootstrap: str,
    redis_url: str,
    topics: list[str],
    recording: Path,
    tmp_path: Path,
) -> None:
    candidate = _candidate(tmp_path / "candidate", NEW_VERSION)
    old = Scorer.load(DEFAULT_MODEL).metadata.model_version
    golden_prefix, swap_prefix = (
        f"test:golden:{uuid.uuid4().hex[:6]}",
        f"test:swap:{uuid.uuid4().hex[:6]}",
    )
    client = redis.Redis.from_url(redis_url)
    try:
        # The golden run: the default model throughout.
        golden = _config(
            kafka_bootstrap, topics[0], redis_url, golden_prefix, tmp_path / "g", available_now=True
        )
        sent = _replay(golden.kafka, recording)
        job = StreamJob(spark, golden)
        job.start()
        job.run(install_signals=False)
        expected = _events(client, golden_prefix)
        assert expected and {e["model_version"] for e in expected} == {old}

        # The same readings, the candidate promoted once the job is a few batches in.
        config = _config(kafka_bootstrap, topics[1], redis_url, swap_prefix, tmp_path / "s")
        assert _replay(config.kafka, recording) == sent
        job = StreamJob(spark, config)
        job.start()
        runner = threading.Thread(target=job.run, kwargs={"install_signals": False}, daemon=True)
        runner.start()
        try:
            # A few batches in, with alerts of the old model already out (the boundary
            # below needs some on each side).
            _wait(lambda: job.metrics.batch_id >= 2 and client.llen(Keys(swap_prefix).model_recent) > 0
                  and client.xlen(Keys(swap_prefix).alerts) > 0, 120, "three batches")  # fmt: skip
            outcome = promote(candidate, redis_url, swap_prefix)
            assert outcome.version == NEW_VERSION and outcome.previous == old
            assert outcome.shadow is not None and outcome.shadow.windows > 0
            assert outcome.shadow.rate_change == 0.0  # the same network
            # A tampered candidate is refused; the promoted model stays active.
            tampered = _candidate(tmp_path / "tampered", "swap-test-3")
            data = bytearray((tampered / MODEL_NAME).read_bytes())
            data[len(data) // 2] ^= 0xFF
            (tampered / MODEL_NAME).write_bytes(bytes(data))
            with pytest.raises(PromotionRefused, match=r"SHA-256 .* does not match"):
                promote(tampered, redis_url, swap_prefix)
            _wait(lambda: job.metrics.input_rows_total >= sent, 240, "every reading")
            time.sleep(4)  # the no-data batches that close the last windows
        finally:
            job.request_stop()
            runner.join(timeout=120)
        assert not runner.is_alive()
        got = _events(client, swap_prefix)
        active = ModelEntry.from_hash(client.hgetall(Keys(swap_prefix).model))
        steps = history(client, Keys(swap_prefix), 50)

        # Rollback: the job, restarted on its checkpoint, scores new readings with the old
        # model again.
        back = rollback(redis_url, swap_prefix)
        assert (back.version, back.previous) == (old, NEW_VERSION)
        _send_later_engine(config.kafka, recording)
        again = StreamJob(spark, replace(config, available_now=True))
        again.start()
        again.run(install_signals=False)
        later = client.hget(Keys(swap_prefix).device("late-engine"), "model_version")
        assert later is not None and later.decode() == old
    finally:
        client.close()

    # 0 lost, 0 duplicated, 0 differing against the golden run (the same network).
    assert sorted(map(_identity, got)) == sorted(map(_identity, expected))
    assert len({e["event_id"] for e in got}) == len(got)
    # One batch boundary: every event the old model scored comes before every new one.
    versions = [e["model_version"] for e in got]
    switch = versions.index(NEW_VERSION)
    assert set(versions[:switch]) == {old} and set(versions[switch:]) == {NEW_VERSION}
    assert active is not None and active.version == NEW_VERSION
    actions = [s["action"] for s in reversed(steps)]
    assert actions[:2] == ["started", "promoted"] and "applied" in actions
    refused = [s for s in steps if s["action"] == "refused"]
    assert len(refused) == 1, refused  # the tampered candidate, with its folder and reason
    assert refused[0]["candidate"].endswith("tampered") and "SHA-256" in refused[0]["reason"]
    applied = next(s for s in steps if s["action"] == "applied")
    assert applied["version"] == NEW_VERSION and applied["batch"] >= 3


def _send_later_engine(kafka: KafkaConfig, recording: Path) -> None:
    """Engine 1's readings again as a new device, after the recording's last reading."""
    from datetime import UTC, datetime, timedelta

    from ingest.schema import Reading

    table = np.loadtxt(recording)
    rows = table[table[:, 0] == 1]
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
        seconds=600 * (int(table[:, 1].max()) + 10)
    )
    readings = [
        Reading(
            "late-engine",
            start + timedelta(seconds=600 * i),
            i,
            {**{f"s{j}": float(row[4 + j]) for j in range(1, 22)}, "cycle": float(i + 1)},
            {f"setting{j}": float(row[1 + j]) for j in range(1, 4)},
        )
        for i, row in enumerate(rows)
    ]
    with ReadingProducer(kafka) as producer:
        producer.send_many(readings)


def test_a_promotion_made_while_no_job_runs_is_applied_when_it_starts(
    spark: Any, kafka_bootstrap: str, redis_url: str, topics: list[str], tmp_path: Path
) -> None:
    candidate = _candidate(tmp_path / "candidate", NEW_VERSION)
    prefix = f"test:pending:{uuid.uuid4().hex[:6]}"
    outcome = promote(candidate, redis_url, prefix)
    assert outcome.previous is None and outcome.shadow is None
    config = _config(
        kafka_bootstrap, topics[0], redis_url, prefix, tmp_path / "c", available_now=True
    )
    job = StreamJob(spark, config)
    assert job.scorer.metadata.model_version != NEW_VERSION  # --model: the default
    job.start()
    try:
        assert job.scorer.metadata.model_version == NEW_VERSION
        pointer = json.loads((tmp_path / "c" / "active-model.json").read_text())
        assert pointer["version"] == NEW_VERSION
    finally:
        job.stop()
    client = redis.Redis.from_url(redis_url)
    try:
        steps = [s["action"] for s in history(client, Keys(prefix))]
    finally:
        client.close()
    assert steps[0] == "applied at start" and "promoted" in steps
    with pytest.raises(PromotionRefused, match="nothing to roll back to"):
        rollback(redis_url, f"test:none:{uuid.uuid4().hex[:6]}")


def test_an_imported_scikit_learn_model_is_promoted_and_its_alerts_carry_its_version(
    spark: Any,
    kafka_bootstrap: str,
    redis_url: str,
    topics: list[str],
    recording: Path,
    cmapss_dir: Path,
    tmp_path: Path,
) -> None:
    from models.importer import import_onnx
    from tests.sklearn_model import logistic_onnx

    logistic_onnx(cmapss_dir, tmp_path / "lr.onnx")
    import_onnx(tmp_path / "lr.onnx", DEFAULT_MODEL, tmp_path / "lr", "sklearn-lr-1")
    prefix = f"test:imported:{uuid.uuid4().hex[:6]}"
    promote(tmp_path / "lr", redis_url, prefix)
    config = _config(
        kafka_bootstrap, topics[0], redis_url, prefix, tmp_path / "c", available_now=True
    )
    _replay(config.kafka, recording)
    job = StreamJob(spark, config)
    job.start()
    job.run(install_signals=False)
    client = redis.Redis.from_url(redis_url)
    try:
        events = _events(client, prefix)
    finally:
        client.close()
    opened = {e["device_id"] for e in events if e["kind"] == "opened"}
    assert len(opened) >= ENGINES // 2, f"only {len(opened)} engines alerted"
    assert {e["model_version"] for e in events} == {"sklearn-lr-1"}


def test_a_candidate_reading_other_inputs_or_missing_is_refused_and_changes_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    from stream.registry import entry_of

    prefix = f"test:contract:{uuid.uuid4().hex[:6]}"
    running = Scorer.load(DEFAULT_MODEL)
    client = redis.Redis.from_url(redis_url)
    try:
        client.hset(Keys(prefix).model, mapping=entry_of(running, generation=1).to_hash())
        # The same network, but metadata saying it reads 30-minute windows.
        other = _candidate(tmp_path / "other", "w30", window_seconds=1800.0)
        with pytest.raises(PromotionRefused) as info:
            promote(other, redis_url, prefix)
        message = str(info.value)
        assert "window 1800 s, the running model's 3000 s" in message
        assert "--checkpoint NEW_FOLDER" in message  # the way forward
        with pytest.raises(PromotionRefused, match="is not a model folder"):
            promote(tmp_path / "nowhere", redis_url, prefix)
        active = ModelEntry.from_hash(client.hgetall(Keys(prefix).model))
        assert active is not None and active.sha256 == running.metadata.sha256  # unchanged
        refused = [s for s in history(client, Keys(prefix)) if s["action"] == "refused"]
        assert len(refused) == 2 and "window 1800 s" in refused[1]["reason"]
    finally:
        client.close()

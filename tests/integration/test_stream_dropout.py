"""A sensor that drops out for whole windows is scored, not a crash.

Regression test: a window in which one of the model's sensors sent no value has a NaN
statistic; pandas -> Arrow turns NaN into null, and the sequence arrays were once declared
non-nullable, so the query failed with "Value at index is null" (seen in the demo). Here
one engine's ``s2`` (a model sensor) is null (a dropout) for 15 cycles, three whole
windows; the job must score exactly the windows a clean run scores, and every risk must
be a finite number.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import redis

from ingest.config import KafkaConfig
from ingest.producer import ReadingProducer
from ingest.schema import Reading
from stream.config import StreamConfig
from stream.contract import Keys
from stream.job import StreamJob

BASE = datetime(2026, 1, 1, tzinfo=UTC)
UNITS = 3
DROPOUT_ENGINE = "FD001-002"
DROPOUT_CYCLES = range(60, 75)  # 15 cycles of 600 s: three whole 3000 s windows


def _readings(cmapss_dir: Path, dropout: bool) -> list[Reading]:
    table = np.loadtxt(cmapss_dir / "train_FD001.txt")
    table = table[table[:, 0] <= UNITS]
    table = table[np.lexsort((table[:, 0], table[:, 1]))]
    out = []
    for row in table:
        device, cycle = f"FD001-{int(row[0]):03d}", int(row[1])
        sensors: dict[str, float | None] = {f"s{i}": float(row[4 + i]) for i in range(1, 22)}
        if dropout and device == DROPOUT_ENGINE and cycle in DROPOUT_CYCLES:
            sensors["s2"] = None
        out.append(
            Reading(
                device_id=device,
                event_time=BASE + timedelta(minutes=10 * cycle),
                seq=cycle,
                sensors=sensors,
                settings={f"setting{i}": float(row[1 + i]) for i in range(1, 4)},
            )
        )
    return out


def _run(spark: Any, bootstrap: str, redis_url: str, prefix: str, ckpt: Path, rows: list) -> Any:
    topic = f"test-dropout-{uuid.uuid4().hex[:8]}"
    kafka = KafkaConfig.from_env({"PROGNOS_KAFKA_BOOTSTRAP": bootstrap, "PROGNOS_TOPIC": topic})
    with ReadingProducer(kafka, source="test") as producer:
        producer.send_many(rows)
    config = StreamConfig.from_env(
        {},
        redis_url=redis_url,
        key_prefix=prefix,
        checkpoint=ckpt,
        available_now=True,
        max_offsets_per_trigger=400,
    )
    job = StreamJob(spark, replace(config, kafka=kafka))
    job.start()
    job.run(install_signals=False)  # raises StreamError if a query failed
    return job


def test_a_sensor_dropout_is_scored_not_a_crash(
    spark: Any,
    kafka_bootstrap: str,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
    cmapss_dir: Path,
) -> None:
    readings = _readings(cmapss_dir, dropout=True)
    assert sum(r.sensors["s2"] is None for r in readings) == len(DROPOUT_CYCLES)

    clean = _run(
        spark,
        kafka_bootstrap,
        redis_url,
        f"{key_prefix}:c",
        tmp_path / "c",
        _readings(cmapss_dir, dropout=False),
    )
    dropped = _run(spark, kafka_bootstrap, redis_url, f"{key_prefix}:d", tmp_path / "d", readings)

    assert dropped.metrics.windows_scored_total == clean.metrics.windows_scored_total > 0
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        risk = client.hgetall(Keys(f"{key_prefix}:d").risk)
    finally:
        client.close()
    assert sorted(risk) == [f"FD001-{u:03d}" for u in range(1, UNITS + 1)]
    assert all(math.isfinite(float(v)) and 0.0 <= float(v) <= 1.0 for v in risk.values())

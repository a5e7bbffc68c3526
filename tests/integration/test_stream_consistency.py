"""The stream job's Spark SQL agrees with the Python definitions it reuses.

Validation rules come from :mod:`ingest.validation` and window features from
:mod:`models.features`; Spark evaluates both in the JVM. These tests run the same inputs
through both and compare.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.codec import decode
from ingest.errors import IngestError
from ingest.validation import validate
from models.features import FeatureSpec, compute_window_features
from stream.features import window_features
from stream.parse import parse

T = "2026-01-01T00:00:00.000Z"
PAYLOADS = [
    b'{"v":1,"d":"pump-0001","t":"'
    + T.encode()
    + b'","s":12,"x":{"vibration":2.31,"bearing_temp":61.4,"pressure":null},"o":{"load":0.8},"m":{"type":"pump"}}',
    b'{"v":1,"d":"FD001-001","t":"'
    + T.encode()
    + b'","s":1,"x":{"s2":642.1,"s3":1589.7},"o":{"setting1":0.0}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","s":12,"x":{"vibration":250.0}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","s":12,"x":{"vibration":NaN}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","s":12,"x":{"vibration":-Infinity}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","x":{"vibration":1.0}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","s":1,"x":{"vibration":1.0},"zz":1}',
    b"not json at all",
    b"[1, 2, 3]",
    b'{"v":2,"d":"pump-0001","t":"' + T.encode() + b'","s":1,"x":{"vibration":1.0}}',
    b'{"v":1,"d":"pump-0001","t":"' + T.encode() + b'","s":1,"x":{"vibration":"high"}}',
    b'{"v":1,"d":"pump-0001","t":"'
    + T.encode()
    + b'","s":1,"x":{"vibration":1.0},"o":{"load":null}}',
    b'{"v":1,"d":"","t":"' + T.encode() + b'","s":1,"x":{"vibration":1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"new_sensor":5e10}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"new_sensor":12.5}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":-4,"x":{"s2":600.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"bad name!":1.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":600.0},"o":{"setting3":500.0}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":600.0},"m":{"site":"north"}}',
    b'{"v":1,"d":"e1","t":"' + T.encode() + b'","s":1,"x":{"s2":' + b"1" * 70000 + b"}}",
]


def _python_verdict(payload: bytes) -> tuple[str, str] | None:
    try:
        reading = decode(payload)
    except IngestError as exc:
        return (getattr(exc, "field", "payload"), getattr(exc, "rule", "?"))
    violations = validate(reading)
    return (violations[0].field, violations[0].rule) if violations else None


def test_spark_and_python_agree_on_valid_and_invalid(spark: Any) -> None:
    rows = [(b"k", p, "t", 0, i) for i, p in enumerate(PAYLOADS)]
    df = spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long"
    )
    spark_verdicts = {r.offset: r.error for r in parse(df).select("offset", "error").collect()}
    disagreements = []
    for i, payload in enumerate(PAYLOADS):
        expected = _python_verdict(payload)
        got = spark_verdicts[i]
        if (expected is None) != (got is None):
            disagreements.append((payload[:80], expected, got))
        elif (
            expected is not None
            and got is not None
            and expected[0].split(".")[0] != got.field.split(".")[0]
        ):
            disagreements.append((payload[:80], expected, (got.field, got.rule)))
    assert not disagreements, disagreements
    valid = [i for i, p in enumerate(PAYLOADS) if _python_verdict(p) is None]
    assert len(valid) >= 4  # the corpus has valid readings, not only broken ones


def test_clock_skew_rule(spark: Any) -> None:
    future = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    payload = b'{"v":1,"d":"e1","t":"' + future.encode() + b'","s":1,"x":{"s2":600.0}}'
    df = spark.createDataFrame(
        [(b"k", payload, "t", 0, 0)],
        "key binary, value binary, topic string, partition int, offset long",
    )
    error = parse(df, max_future_skew_s=3600).collect()[0].error
    assert (error.field, error.rule) == ("t", "clock-skew")


def _cmapss_rows(
    cmapss_dir: Path, units: int
) -> list[tuple[str, datetime, int, dict[str, float | None]]]:
    table = np.loadtxt(cmapss_dir / "train_FD001.txt")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    rng = np.random.default_rng(7)
    for row in table[table[:, 0] <= units]:
        sensors: dict[str, float | None] = {f"s{i}": float(row[4 + i]) for i in range(1, 22)}
        if rng.random() < 0.05:
            sensors["s2"] = None  # dropouts: statistics must skip them the same way
        rows.append(
            (
                f"FD001-{int(row[0]):03d}",
                base + timedelta(minutes=10 * int(row[1])),
                int(row[1]),
                sensors,
            )
        )
    return rows


def test_window_features_match_the_numpy_definition(spark: Any, cmapss_dir: Path) -> None:
    spec = FeatureSpec(
        sensors=("s2", "s3", "s4", "s7", "s11", "s21"),
        window_seconds=3000.0,
        sequence_length=3,
        horizon_windows=6,
    )
    rows = _cmapss_rows(cmapss_dir, units=3)
    df = spark.createDataFrame(
        rows, "device_id string, event_time timestamp, seq long, sensors map<string,double>"
    )
    got = {
        (r.device_id, int(r.window_start.replace(tzinfo=UTC).timestamp())): np.asarray(r.features)
        for r in window_features(df, spec).collect()
    }
    groups: dict[tuple[str, int], list[Any]] = {}
    for device, t, _seq, sensors in rows:
        start = int(spec.window_index([t.timestamp()])[0] * spec.window_seconds)
        groups.setdefault((device, start), []).append(
            (t.timestamp(), [np.nan if sensors[s] is None else sensors[s] for s in spec.sensors])
        )
    assert set(got) == set(groups)
    worst = 0.0
    for key, items in groups.items():
        times = [t for t, _ in items]
        values = [v for _, v in items]
        expected = compute_window_features(spec, times, values)
        actual = got[key]
        assert np.array_equal(np.isnan(expected), np.isnan(actual)), key
        mask = ~np.isnan(expected)
        scale = np.maximum(1.0, np.abs(expected[mask]))
        worst = max(worst, float(np.max(np.abs(expected[mask] - actual[mask]) / scale)))
    assert worst < 1e-9, f"largest relative difference {worst:g}"
    assert not math.isnan(worst)


@pytest.mark.parametrize("stat", ["slope", "last"])
def test_single_reading_windows(spark: Any, stat: str) -> None:
    spec = FeatureSpec(
        sensors=("s2",),
        window_seconds=60.0,
        sequence_length=1,
        horizon_windows=1,
        statistics=(stat,),
    )
    t = datetime(2026, 1, 1, tzinfo=UTC)
    df = spark.createDataFrame(
        [("d", t, 1, {"s2": 641.5})],
        "device_id string, event_time timestamp, seq long, sensors map<string,double>",
    )
    value = window_features(df, spec).collect()[0].features[0]
    assert value == pytest.approx(compute_window_features(spec, [t.timestamp()], [[641.5]])[0])

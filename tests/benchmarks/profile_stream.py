"""Where the stream job's batch time goes: its plan cut after each stage, run as batch queries.

Run::

    .venv/bin/python tests/benchmarks/profile_stream.py [--copies 1]

Pre-loads the C-MAPSS workload (see :mod:`tests.benchmarks.common`) and times, over the
same records with the same Spark session (each stage run twice, the second time
reported, so code generation and worker start-up are out of it):

1. read the topic (``format("kafka")``),
2. + parse and validate (:func:`stream.parse.parse`),
3. + window features (84 aggregates per device and window, in the JVM),
4. + the sequences (``transformWithStateInPandas``, Python workers and the state server),
5. + scoring (``mapInArrow``, ONNX Runtime).

Stages 4 and 5 need Spark's state store coordinator, which batch queries on some Spark
versions do not start; they are then reported as not measured (``bench_stream.py``'s
``scoring`` part measures stage 5 alone).

The difference between consecutive stages is that stage's cost. Saves
``bench-results/profile.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.bench_stream import spark_session, stream_config
from tests.benchmarks.common import new_topic, publish, save, stack, workload


def timed(df: Any, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        df.write.format("noop").mode("overwrite").save()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import tempfile

    from pyspark.sql import functions as F

    from stream import features, scoring, sequence
    from stream.job import StreamJob
    from stream.parse import parse

    work = workload(args.copies)
    rows: list[dict[str, Any]] = []
    with stack() as (bootstrap, redis_url):
        topic = new_topic(bootstrap, "profile")
        publish(bootstrap, topic, work)
        spark = spark_session()
        try:
            with tempfile.TemporaryDirectory() as ckpt:
                job = StreamJob(spark, stream_config(bootstrap, redis_url, topic, "p", Path(ckpt)))
                spec = job.spec
                raw = (
                    spark.read.format("kafka")
                    .option("kafka.bootstrap.servers", bootstrap)
                    .option("subscribe", topic)
                    .option("startingOffsets", "earliest")
                    .load()
                )
                parsed = parse(raw).where(F.col("error").isNull())
                windows = features.window_features(
                    parsed.select("device_id", "event_time", "seq", "sensors", "settings"), spec
                ).select(
                    "device_id",
                    F.unix_millis("window_start").alias("window_start_ms"),
                    F.unix_millis("window_end").alias("window_end_ms"),
                    "n_readings",
                    "features",
                )
                k, f = job.scorer.input_shape
                stages: list[tuple[str, Any]] = [
                    ("read the topic", raw),
                    ("+ parse and validate", parsed),
                    ("+ window features (JVM)", windows),
                ]
                try:
                    seqs = windows.groupBy("device_id").transformWithStateInPandas(
                        statefulProcessor=sequence.SequenceProcessor(k, f),
                        outputStructType=sequence.output_schema(),
                        outputMode="Append",
                        timeMode="None",
                    )
                    spec_ = scoring.ScoringSpec(
                        str(job.scorer.path), job.scorer.metadata.sha256, "cpu"
                    )
                    stages.append(("+ sequences (transformWithStateInPandas)", seqs))
                    stages.append(
                        (
                            "+ scoring (mapInArrow)",
                            seqs.mapInArrow(
                                scoring.score_partitions(spec_), scoring.output_schema()
                            ),
                        )
                    )
                except Exception as exc:  # not every Spark runs this stateful API in batch
                    print(f"sequences in batch mode: {exc}", file=sys.stderr)
                previous = 0.0
                for name, df in stages:
                    try:
                        seconds = timed(df)
                    except Exception as exc:  # e.g. stateful operators need a streaming query
                        print(f"{name}: not measured in batch mode ({exc!s:.200})", file=sys.stderr)
                        break
                    rows.append(
                        {
                            "stage": name,
                            "seconds": round(seconds, 2),
                            "stage_seconds": round(seconds - previous, 2),
                            "readings_per_s": round(len(work) / seconds, 1),
                        }
                    )
                    previous = seconds
        finally:
            spark.stop()
    print(f"\n{len(work):,} readings, batch queries, best of 2\n")
    print("| plan up to | seconds | this stage | readings/s |\n| --- | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['stage']} | {r['seconds']:.2f} | {r['stage_seconds']:.2f} | {r['readings_per_s']:,.0f} |"
        )
    save("profile", {"readings": len(work), "rows": rows}, Path(args.out) if args.out else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

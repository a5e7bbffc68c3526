"""Where the stream job's time goes: its streaming plan cut after each stage.

Run::

    .venv/bin/python tests/benchmarks/profile_stream.py [--copies 2]

Pre-loads the C-MAPSS workload (see :mod:`tests.benchmarks.common`) into a topic and
drains it with streaming queries (``availableNow``, a fresh checkpoint each, the job's
``maxOffsetsPerTrigger``, output to the ``noop`` sink), each cut after one more stage of
the job's plan:

1. read the topic (``format("kafka")``),
2. + parse and validate (:func:`stream.parse.parse`),
3. + watermark, windows and sequences (the window operator over buckets of devices,
   ``transformWithStateInPandas``, :mod:`stream.sequence`),
4. + scoring (``mapInArrow``, ONNX Runtime).

Each cut runs twice in the same Spark session and the second run is reported, so code
generation and Python worker start-up are out of it. The difference between consecutive
stages is that stage's cost. Saves ``bench-results/profile.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.bench_stream import spark_session, stream_config
from tests.benchmarks.common import new_topic, publish, save, stack, workload


def drained(job: Any, cut: str, checkpoint: Path) -> tuple[float, int]:
    """Seconds to drain the topic through the plan cut after ``cut``; batches run."""
    from pyspark.sql import functions as F

    from stream.job import kafka_source, scoring_spec, window_sequences
    from stream.parse import parse

    df = kafka_source(job.spark, job.config)
    if cut != "read":
        df = parse(df, job.config.max_future_skew_s)
    if cut == "parse":
        df = df.where(F.col("error").isNull()).select(
            "device_id", "event_time", "seq", "sensors", "settings"
        )
    elif cut in ("sequences", "scoring"):
        watermark_ms = int((job.config.watermark_seconds or job.spec.window_seconds) * 1000)
        # the job's operator, scoring the windows it closes (or not: the step before)
        spec = scoring_spec(job.scorer, job.config) if cut == "scoring" else None
        df = window_sequences(df, job.scorer, watermark_ms, scoring=spec)
    started = time.perf_counter()
    query = (
        df.writeStream.format("noop")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    seconds = time.perf_counter() - started
    if query.exception() is not None:
        raise RuntimeError(str(query.exception()))
    return seconds, len(query.recentProgress)


CUTS = [
    ("read", "read the topic"),
    ("parse", "+ parse and validate"),
    ("sequences", "+ watermark, windows and sequences (transformWithStateInPandas)"),
    ("scoring", "+ scoring in the window operator"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from stream.job import StreamJob

    work = workload(args.copies)
    rows: list[dict[str, Any]] = []
    with stack() as (bootstrap, redis_url), tempfile.TemporaryDirectory() as tmp:
        topic = new_topic(bootstrap, "profile")
        publish(bootstrap, topic, work)
        spark = spark_session()
        try:
            job = StreamJob(spark, stream_config(bootstrap, redis_url, topic, "p", Path(tmp)))
            previous = 0.0
            for cut, name in CUTS:
                drained(job, cut, Path(tmp) / f"{cut}-warm-up")
                seconds, batches = drained(job, cut, Path(tmp) / cut)
                rows.append(
                    {
                        "stage": name,
                        "seconds": round(seconds, 2),
                        "stage_seconds": round(seconds - previous, 2),
                        "batches": batches,
                        "readings_per_s": round(len(work) / seconds, 1),
                    }
                )
                previous = seconds
                print(f"{name}: {seconds:.2f} s, {batches} batches", file=sys.stderr)
        finally:
            spark.stop()
    print(f"\n{len(work):,} readings, streaming availableNow drains into noop, second of 2 runs\n")
    print("| plan up to | seconds | this stage | batches | readings/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['stage']} | {r['seconds']:.2f} | {r['stage_seconds']:.2f} | {r['batches']} "
            f"| {r['readings_per_s']:,.0f} |"
        )
    save("profile", {"readings": len(work), "rows": rows}, Path(args.out) if args.out else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Wide fleets: the stream job's cost per reading against the number of devices.

Run::

    .venv/bin/python tests/benchmarks/bench_fleet.py [--fleets 400,20000,100000]

Uses the broker and Redis named by ``PROGNOS_KAFKA_BOOTSTRAP``/``PROGNOS_REDIS_URL``, else
starts private ones. Saves ``bench-results/fleet.json``.

Each fleet is C-MAPSS FD001's 100 engines replicated (``devices / 100`` copies), every
engine reporting in every cycle, in event-time order, pre-loaded into a 2-partition topic;
the job reads it in micro-batches of 50,000 readings (its default), so a batch holds 125
readings per device at 400 devices, 2.5 at 20,000 and 0.5 at 100,000:

* ``400`` devices: every cycle of the engines (the narrow shape of ``make bench``);
* ``20000`` devices: the first ``--cycles`` cycles of each engine (24), a cycle 1,500 s of
  event time, so the model's 3,000 s windows hold two readings and each device scores its
  first K-window sequences at the end (every reading of the window and sequence logic runs);
* ``100000`` devices: the first ``--wide-cycles`` cycles (8): windows close, but no device
  reaches K windows in the run (scoring 100,000 devices' sequences would take longer than a
  benchmark may), so the runs are checked to have read every reading, none dropped as
  late.

Each Prognos run is a fresh process (``spark-submit``-free, the job as shipped: local mode,
1 s trigger) timed from its first trigger, as ``bench_stream`` does; ``rate`` counts every
batch, ``steady_rate`` the batches after the first (the first holds code generation and
the Python workers' start). At the fleet of ``--scale-fleet`` devices the job also runs at
``local[1]`` (one core) for the scale-out figure. The hand-batched process and (at
``--naive-fleet`` only: it reads 3,000 records a second) the naive consumer drain the same
topic; at fleets that score windows, the program fails unless every run scored the same
windows and raised the same alert events.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks import baselines
from tests.benchmarks.bench_stream import (
    _baseline_run,
    check_same_work,
    run_prognos,
    spark_session,
)
from tests.benchmarks.common import (
    BATCHED,
    NAIVE,
    RESULTS,
    ROOT,
    expected_scored,
    machine,
    new_topic,
    publish,
    save,
    stack,
    workload,
)

JOB = "prognos stream job"


def _shape(devices: int, args: argparse.Namespace) -> tuple[int | None, float]:
    """(cycles per engine, event seconds per cycle) of a fleet's workload."""
    if devices <= 400:
        return None, 600.0
    if devices <= args.scoring_limit:
        return args.cycles, 1500.0
    return args.wide_cycles, 1500.0


def prognos_child(args: argparse.Namespace) -> int:
    """One drain by the job in this process (started by :func:`run_job`): a JSON row."""
    spark = spark_session()
    try:
        row = run_prognos(
            spark, args.bootstrap, args.redis_url, args.topic, args.expected, args.total, args.name
        )
        row["scored"] = sorted(row["scored"])
        row["master"] = spark.sparkContext.master
        Path(args.child_out).write_text(json.dumps(row, default=str))
    finally:
        spark.stop()
    return 0


def run_job(
    bootstrap: str,
    redis_url: str,
    topic: str,
    expected: int,
    total: int,
    name: str,
    master: str,
) -> dict[str, Any]:
    """The job's drain in a fresh process at ``master``; its row, ``scored`` a set again."""
    print(f"running the {name} ({master}) ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="prognos-bench-fleet-") as tmp:
        out = Path(tmp) / "row.json"
        env = {**os.environ, "PROGNOS_SPARK_MASTER": master, "PROGNOS_SPARK_UI": "0"}
        command = [
            sys.executable,
            __file__,
            "--child",
            "--bootstrap",
            bootstrap,
            "--redis-url",
            redis_url,
            "--topic",
            topic,
            "--expected",
            str(expected),
            "--total",
            str(total),
            "--name",
            name,
            "--child-out",
            str(out),
        ]
        subprocess.run(command, env=env, check=True, cwd=ROOT)
        row: dict[str, Any] = json.loads(out.read_text())
    row["scored"] = {tuple(w) for w in row["scored"]}
    return row


def fleet(which: str, args: argparse.Namespace, bootstrap: str, redis_url: str) -> dict[str, Any]:
    from models.scorer import Scorer

    spec = Scorer.load(ROOT / "models" / "default", providers="cpu").metadata.spec
    k = spec.sequence_length
    watermark = spec.window_seconds
    print(f"building the workload ({which}) ...", file=sys.stderr)
    cycles, cycle_s = _shape(int(which), args)
    work = workload(int(which) // 100, max_cycle=cycles, cycle_s=cycle_s)
    devices = len(work.device_names)
    topic = new_topic(bootstrap, f"fleet-{which}")
    pub = publish(bootstrap, topic, work)
    expected = expected_scored(work, spec.window_seconds, k, watermark)
    print(
        f"{len(work):,} readings of {len(work.device_names):,} devices in {topic} "
        f"({pub:.1f}s); {expected:,} windows can close and be scored",
        file=sys.stderr,
    )
    total = len(work)
    rows = [run_job(bootstrap, redis_url, topic, expected, total, JOB, "local[2]")]
    if which == str(args.scale_fleet):
        rows.append(
            run_job(bootstrap, redis_url, topic, expected, total, f"{JOB}, local[1]", "local[1]")
        )
    rows.append(
        _baseline_run(baselines.batched, BATCHED, 1, bootstrap, topic, redis_url, total, watermark)
    )
    if which == str(args.naive_fleet):
        rows.append(
            _baseline_run(baselines.naive, NAIVE, 1, bootstrap, topic, redis_url, total, watermark)
        )
    for row in rows:
        read = row["read"] if "read" in row else row["readings"]
        if read != total:
            raise SystemExit(f"{row['name']} read {read} readings of {total:,}")
        if row.get("dropped_by_watermark"):
            raise SystemExit(f"{row['name']} dropped {row['dropped_by_watermark']} as late")
    same = check_same_work(rows, redis_url) if expected else None
    if not expected:
        for row in rows:
            del row["scored"], row["prefix"]
    return {
        "fleet": which,
        "devices": devices,
        "readings": total,
        "readings_per_device_per_batch": round(50_000 / len(work.device_names), 2),
        "cycle_s": cycle_s,
        "expected_windows": expected,
        "same_work": same,
        "rows": rows,
    }


def fleet_latency(args: argparse.Namespace, bootstrap: str, redis_url: str) -> dict[str, Any]:
    """p99 event-to-alert latency at ``--latency-devices`` devices and ``--latency-rate``
    readings/s offered, beside the engine floor, as ``bench_stream``'s latency part: each
    device first gets ``--latency-preload`` cycles of history (so it has K windows), a
    cycle 1,500 s of event time; only windows closed by the offered load count."""
    from tests.benchmarks.bench_stream import latency_floor, latency_prognos

    lat = argparse.Namespace(
        latency_devices=args.latency_devices,
        latency_rate=args.latency_rate,
        latency_seconds=args.latency_seconds,
        latency_warmup=10.0,
        latency_cycle_s=1500.0,
        latency_preload_cycles=args.latency_preload,
    )
    spark = spark_session()
    try:
        print("latency: the engine floor ...", file=sys.stderr)
        floor = latency_floor(spark, bootstrap, redis_url, lat)
        print("latency: the job ...", file=sys.stderr)
        job = latency_prognos(spark, bootstrap, redis_url, lat)
    finally:
        spark.stop()
    return {
        "devices": args.latency_devices,
        "rate": args.latency_rate,
        "seconds": args.latency_seconds,
        "floor": floor,
        "job": job,
        "p99_ratio": round(job["p99_ms"] / floor["p99_ms"], 2) if floor.get("p99_ms") else None,
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        "\n| fleet | devices | run | readings | readings/s | steady readings/s | windows | peak GiB |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for f in result["fleets"]:
        for r in f["rows"]:
            peak = (r.get("memory") or {}).get("peak_total_gib")
            print(
                f"| {f['fleet']} | {f['devices']:,} | {r['name']} | {f['readings']:,} | {r['rate']:,.0f} | "
                f"{r.get('steady_rate') or '-'} | {r.get('windows_scored', '-')} | "
                f"{peak if peak is not None else '-'} |"
            )


def plot(result: dict[str, Any], path: Path) -> None:
    """Cost per reading (core-microseconds: 2 cores x wall time / readings, the steady
    batches) against the number of devices, the job beside the hand-batched process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = {}
    for f in result["fleets"]:
        for r in f["rows"]:
            cores = 1 if r["name"].endswith("local[1]") or r["name"] != JOB else 2
            rate = r.get("steady_rate") or r["rate"]
            series.setdefault(r["name"], []).append((f["devices"], cores * 1e6 / rate))
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    for name, points in series.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("devices in the fleet (one topic, batches of 50,000 readings)")
    ax.set_ylabel("core-µs per reading")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Cost per reading against fleet size (2 cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fleets", default="400,20000,100000")
    ap.add_argument("--cycles", type=int, default=24, help="cycles per engine, scoring fleets")
    ap.add_argument("--wide-cycles", type=int, default=8, help="cycles per engine, widest")
    ap.add_argument("--scoring-limit", type=int, default=20_000)
    ap.add_argument("--scale-fleet", type=int, default=20_000)
    ap.add_argument("--naive-fleet", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=RESULTS / "fleet.json")
    ap.add_argument("--latency-devices", type=int, default=20_000)
    ap.add_argument("--latency-rate", type=float, default=2_000.0)
    ap.add_argument("--latency-seconds", type=float, default=60.0)
    ap.add_argument("--latency-preload", type=int, default=24, help="cycles of history")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("bootstrap", "redis-url", "topic", "name", "child-out"):
        ap.add_argument(f"--{name}", help=argparse.SUPPRESS)
    ap.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--total", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return prognos_child(args)
    fleets = [f for f in args.fleets.split(",") if f]
    with stack() as (bootstrap, redis_url):
        result = {
            "machine": machine(),
            "fleets": [],
        }
        for n in fleets:  # saved after each fleet: a later failure keeps the earlier ones
            result["fleets"].append(fleet(n, args, bootstrap, redis_url))
            save("fleet", result, args.out)
        if not args.no_latency:
            result["latency"] = fleet_latency(args, bootstrap, redis_url)
            lat = result["latency"]
            print(
                f"latency at {lat['devices']:,} devices, {lat['rate']:,.0f} readings/s: job p99 "
                f"{lat['job'].get('p99_ms')} ms, floor p99 {lat['floor'].get('p99_ms')} ms "
                f"(ratio {lat['p99_ratio']}; kept up: {lat['job'].get('kept_up')})"
            )
    print_table(result)
    save("fleet", result, args.out)
    plot(result, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

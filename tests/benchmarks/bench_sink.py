"""The Redis sink alone: batched (pipelined) writes next to one write per window.

Run::

    .venv/bin/python tests/benchmarks/bench_sink.py [--devices 500] [--windows 20]

Uses ``PROGNOS_REDIS_URL``, else a private redis-server. The same scored windows
(``--devices`` devices, ``--windows`` consecutive windows each, risk rising through the
model's threshold and back, so alerts open, update and resolve) are written three times,
each into a fresh key prefix, and compared in windows/s (every row writes the same windows
and must raise the same alert events, which is checked):

* ``pipelined``: :class:`stream.sink.RedisAlertSink` as the job calls it, one ``write``
  per micro-batch of ``--batch`` windows (one read pipeline, one pipeline of Lua calls,
  one fleet update per batch), with redis-server's default ``appendfsync everysec``.
* ``pipelined, durable``: the same with ``appendfsync always`` (the durable profile,
  ``PROGNOS_REDIS_FSYNC=always``): the cost of an fsync before each reply.
* ``unpipelined``: the same sink called once per window, so every window pays its own
  round trips (read, Lua call, fleet summary): what a per-record writer does.

The share of the job's batch time spent in Redis is measured by ``bench_stream.py``
(``sink_ms`` against ``triggerExecution``); this program isolates the sink's own rate.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.common import ROOT, save


def windows(devices: int, per_device: int, threshold: float, window_ms: int) -> list[Any]:
    from stream.alerts import ScoredWindow
    from stream.contract import TopFeature

    out = []
    for j in range(per_device):
        # up through the threshold and back down: open, maybe update, resolve
        phase = j / max(1, per_device - 1)
        base = threshold * (0.5 + 1.2 * (1 - abs(2 * phase - 1)))
        for d in range(devices):
            risk = min(0.999, base * (0.9 + 0.2 * ((d * 7919) % 100) / 100))
            out.append(
                ScoredWindow(
                    device_id=f"SINK-{d:05d}",
                    window_start_ms=j * window_ms,
                    window_end_ms=(j + 1) * window_ms,
                    risk=risk,
                    model_version="bench",
                    provider="CPUExecutionProvider",
                    top_features=(TopFeature("s2__mean", 1.0, 0.0, 0.0, 2.0),),
                )
            )
    return out


def _fsync(redis_url: str, mode: str) -> str | None:
    """Set redis-server's appendfsync; returns the previous mode (None: not allowed)."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        previous = str(client.config_get("appendfsync")["appendfsync"])
        client.config_set("appendfsync", mode)
        return previous
    except redis.ResponseError:
        return None
    finally:
        client.close()


def run(redis_url: str, items: list[Any], batch: int | None) -> dict[str, Any]:
    from models.scorer import Scorer
    from stream.config import StreamConfig
    from stream.sink import RedisAlertSink

    meta = Scorer.load(ROOT / "models" / "default", providers="cpu").metadata
    policy = StreamConfig.from_env({}, redis_url=redis_url).policy(meta.threshold)
    window_ms = int(meta.spec.window_seconds * 1000)
    sink = RedisAlertSink(redis_url, policy, window_ms, prefix=f"bench-sink-{uuid.uuid4().hex[:6]}")
    sink.client.ping()
    events = 0
    started = time.perf_counter()
    if batch is None:
        for w in items:
            events += sink.write([w]).events
    else:
        for i in range(0, len(items), batch):
            events += sink.write(items[i : i + batch]).events
    seconds = time.perf_counter() - started
    sink.close()
    return {
        "windows": len(items),
        "alert_events": events,
        "seconds": round(seconds, 3),
        "windows_per_s": round(len(items) / seconds, 1),
        "alerts_per_s": round(events / seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2000, help="windows per micro-batch")
    args = parser.parse_args(argv)

    from models.scorer import Scorer
    from tests.benchmarks.common import stack

    meta = Scorer.load(ROOT / "models" / "default", providers="cpu").metadata
    items = windows(
        args.devices, args.windows, meta.threshold, int(meta.spec.window_seconds * 1000)
    )
    with stack() as (_, redis_url):
        piped = {
            "name": f"pipelined (write per {args.batch} windows)",
            **run(redis_url, items, args.batch),
        }
        previous = _fsync(redis_url, "always")
        if previous is None:
            durable = {"name": "pipelined, durable: not measured (CONFIG SET refused)"}
        else:
            durable = {
                "name": "pipelined, durable (appendfsync always)",
                **run(redis_url, items, args.batch),
            }
            _fsync(redis_url, previous)
        single = {"name": "unpipelined (write per window)", **run(redis_url, items, None)}
    rows = [r for r in (piped, durable, single) if "windows" in r]
    events = {r["alert_events"] for r in rows}
    if len(events) != 1 or any(r["windows"] != len(items) for r in rows):
        raise SystemExit(f"the sink runs did different work: {rows}")
    ratio = piped["windows_per_s"] / max(single["windows_per_s"], 1e-9)
    cost = piped["windows_per_s"] / durable["windows_per_s"] if "windows" in durable else None
    print("\n| sink | windows | alert events | windows/s | alerts/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['name']} | {r['windows']:,} | {r['alert_events']:,} | "
            f"{r['windows_per_s']:,.0f} | {r['alerts_per_s']:,.0f} |"
        )
    print(f"\npipelined / unpipelined windows/s (same windows): {ratio:.1f}x")
    if cost is not None:
        print(f"everysec / always (the durable profile's cost): {cost:.2f}x")
    save(
        "sink",
        {
            "rows": rows,
            "ratio": round(ratio, 2),
            "durable_cost": None if cost is None else round(cost, 2),
        },
        Path(args.out) if args.out else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

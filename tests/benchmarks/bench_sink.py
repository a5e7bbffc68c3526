"""The Redis sink alone: batched (pipelined) writes next to one write per window.

Run::

    .venv/bin/python tests/benchmarks/bench_sink.py [--devices 500] [--windows 20]

Uses ``PROGNOS_REDIS_URL``, else a private redis-server. Scored windows for ``--devices``
devices, ``--windows`` consecutive windows each, risk rising through the model's threshold
and back (so alerts open, update and resolve), are written twice, each into a fresh key
prefix:

* ``pipelined``: :class:`stream.sink.RedisAlertSink` as the job calls it, one ``write``
  per micro-batch of ``--batch`` windows (one read pipeline, one pipeline of Lua calls,
  one fleet update per batch).
* ``unpipelined``: the same sink called once per window, so every window pays its own
  round trips (read, Lua call, fleet summary): what a per-record writer does. Run over
  the first ``--single`` devices' windows only (it is slow).

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
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2000, help="windows per micro-batch")
    parser.add_argument(
        "--single", type=int, default=50, help="devices written one window at a time"
    )
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
        # the same windows' first --single devices: a per-window writer is slow enough
        subset = [w for w in items if int(w.device_id[5:]) < args.single]
        single = {"name": "unpipelined (write per window)", **run(redis_url, subset, None)}
    ratio = piped["alerts_per_s"] / max(single["alerts_per_s"], 1e-9)
    print("\n| sink | windows | alert events | windows/s | alerts/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in (piped, single):
        print(
            f"| {r['name']} | {r['windows']:,} | {r['alert_events']:,} | "
            f"{r['windows_per_s']:,.0f} | {r['alerts_per_s']:,.0f} |"
        )
    print(f"\npipelined / unpipelined alerts/s: {ratio:.1f}x")
    save(
        "sink",
        {"rows": [piped, single], "ratio": round(ratio, 2)},
        Path(args.out) if args.out else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

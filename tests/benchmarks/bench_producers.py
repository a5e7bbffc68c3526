"""Publish rate of ``prognos simulate`` and ``prognos replay`` next to naive kafka-python loops.

Run::

    .venv/bin/python tests/benchmarks/bench_producers.py [--out bench-results/producers.json]

Uses the broker named by ``PROGNOS_KAFKA_BOOTSTRAP``, else starts its own (free ports,
temporary state) through :mod:`deploy.stack` and stops it afterwards. The benchmark
process is pinned to one CPU core (``--core``), so the client's I/O thread shares that
core with the loop; the broker runs outside the pin.

Rows, all publishing the same kind of readings to a fresh 2-partition topic:

* ``naive loop (send+get)``: kafka-python with its defaults, one reading per call, waiting
  for each acknowledgement (``producer.send(...).get()``): the naive loop of issue 3.
* ``naive loop (fire and forget)``: kafka-python defaults, one ``send`` per reading, one
  ``flush`` at the end: a stronger reference, also printed.
* ``prognos simulate``: what ``prognos simulate --rate max`` runs (fleet + validation +
  :class:`~ingest.producer.ReadingProducer`, idempotent, ``acks=all``, gzip).
* ``prognos replay``: what ``prognos replay train_FD001.txt --as-fast-as-possible`` runs.

Rates include generating or parsing the readings, and end when every record is
acknowledged.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CMAPSS = ROOT.parent / "shared" / "data" / "cmapss" / "train_FD001.txt"


@contextmanager
def broker() -> Iterator[str]:
    """Bootstrap servers: PROGNOS_KAFKA_BOOTSTRAP, else a broker of our own."""
    given = os.environ.get("PROGNOS_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    from deploy.config import StackConfig
    from deploy.stack import KafkaBroker, free_port

    with tempfile.TemporaryDirectory(prefix="prognos-bench-") as state:
        config = StackConfig.from_env(
            state_dir=Path(state), kafka_port=free_port(), kafka_controller_port=free_port()
        )
        kafka = KafkaBroker(config)
        print(f"starting a broker on {config.kafka_bootstrap} ...", file=sys.stderr)
        kafka.start()
        try:
            yield config.kafka_bootstrap
        finally:
            kafka.stop()


def new_topic(bootstrap: str, label: str) -> str:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    name = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="prognos-bench")
    try:
        admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    return name


def as_dict(reading: Any) -> dict[str, Any]:
    return {
        "device_id": reading.device_id,
        "event_time": reading.event_time.isoformat(),
        "seq": reading.seq,
        "sensors": reading.sensors,
        "settings": reading.settings,
        "metadata": reading.metadata,
    }


def fleet_readings(count: int) -> Iterator[Any]:
    from simulator.config import FleetConfig
    from simulator.fleet import Fleet

    machines = 100
    yield from Fleet(FleetConfig(machines=machines, seed=1)).steps(-(-count // machines))


def naive(bootstrap: str, count: int, wait_each: bool) -> tuple[int, float]:
    import itertools

    from kafka import KafkaProducer

    topic = new_topic(bootstrap, "naive")
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.partitions_for(topic)  # metadata first, like the others
    started = time.perf_counter()
    sent = 0
    for reading in itertools.islice(fleet_readings(count), count):
        future = producer.send(
            topic, key=reading.device_id.encode(), value=json.dumps(as_dict(reading)).encode()
        )
        if wait_each:
            future.get(timeout=30)
        sent += 1
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return sent, elapsed


def prognos_simulate(bootstrap: str, count: int) -> tuple[int, float]:
    from ingest.config import KafkaConfig
    from ingest.producer import ReadingProducer
    from simulator.config import FleetConfig
    from simulator.fleet import Fleet
    from simulator.run import Pace, run_fleet

    topic = new_topic(bootstrap, "simulate")
    with ReadingProducer(KafkaConfig(bootstrap_servers=bootstrap, topic=topic)) as producer:
        producer._producer.partitions_for(topic)
        started = time.perf_counter()
        report = run_fleet(
            Fleet(FleetConfig(machines=100, seed=1)),
            steps=count // 100,
            pace=Pace(None),
            producer=producer,
        )
        producer.flush()
        elapsed = time.perf_counter() - started
    return report.readings, elapsed


def prognos_replay(bootstrap: str) -> tuple[int, float]:
    from ingest.config import KafkaConfig
    from ingest.producer import ReadingProducer
    from ingest.replay import ReplayOptions, replay_file

    topic = new_topic(bootstrap, "replay")
    with ReadingProducer(KafkaConfig(bootstrap_servers=bootstrap, topic=topic)) as producer:
        producer._producer.partitions_for(topic)
        started = time.perf_counter()
        report = replay_file(CMAPSS, producer, ReplayOptions(progress=False))
        producer.flush()
        elapsed = time.perf_counter() - started
    return report.sent, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", default="bench-results/producers.json", help="where to save the figures"
    )
    parser.add_argument(
        "--count", type=int, default=30_000, help="readings per fast run (default 30000)"
    )
    parser.add_argument(
        "--sync-count", type=int, default=1_500, help="readings for the send+get loop"
    )
    parser.add_argument(
        "--core", type=int, default=None, help="CPU core to pin to (default: the first allowed)"
    )
    args = parser.parse_args()

    allowed = sorted(os.sched_getaffinity(0))
    core = args.core if args.core is not None else allowed[0]
    rows: list[dict[str, Any]] = []
    with broker() as bootstrap:
        os.sched_setaffinity(0, {core})  # after the broker started: it keeps every core
        runs: list[tuple[str, Callable[[], tuple[int, float]]]] = [
            ("naive loop (send+get)", lambda: naive(bootstrap, args.sync_count, wait_each=True)),
            ("naive loop (fire and forget)", lambda: naive(bootstrap, args.count, wait_each=False)),
            ("prognos simulate", lambda: prognos_simulate(bootstrap, args.count)),
            ("prognos replay (C-MAPSS FD001)", lambda: prognos_replay(bootstrap)),
        ]
        for name, fn in runs:
            print(f"running {name} ...", file=sys.stderr)
            readings, seconds = fn()
            rows.append(
                {
                    "name": name,
                    "readings": readings,
                    "seconds": round(seconds, 3),
                    "rate": round(readings / seconds, 1),
                }
            )
        os.sched_setaffinity(0, set(allowed))
    naive_rate = rows[0]["rate"]
    async_rate = rows[1]["rate"]
    for row in rows:
        row["x_naive"] = round(row["rate"] / naive_rate, 2)
        row["x_fire_and_forget"] = round(row["rate"] / async_rate, 2)

    print(f"\npublish rate, one core (core {core}), idempotent acks=all for prognos rows\n")
    print(
        f"{'run':<32} {'readings':>9} {'seconds':>8} {'readings/s':>11} {'x naive':>8} {'x f&f':>7}"
    )
    for row in rows:
        print(
            f"{row['name']:<32} {row['readings']:>9,} {row['seconds']:>8.2f} {row['rate']:>11,.0f} "
            f"{row['x_naive']:>8.1f} {row['x_fire_and_forget']:>7.2f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "producers",
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {
                    "python": platform.python_version(),
                    "cpus_allowed": len(allowed),
                    "pinned_core": core,
                    "load_average": os.getloadavg(),
                },
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``prognos simulate``: run a simulated fleet and publish and/or record its readings."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    sim = subparsers.add_parser(
        "simulate",
        help="simulate a fleet of machines that wear out and fail; publish and/or record",
        description="Run a deterministic fleet simulation (pumps, motors, fans with hidden health, "
        "changing regimes and failure modes; turbofans that read like NASA C-MAPSS FD001, one "
        "reading per operating cycle) and publish its readings to Kafka "
        "(PROGNOS_KAFKA_BOOTSTRAP, default 127.0.0.1:9092). With --record, write readings.parquet "
        "and ground_truth.parquet into a folder; with --no-publish, only record.",
    )
    sim.add_argument("--machines", type=int, default=10, help="fleet size (default 10)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument(
        "--types",
        default="pump,motor,fan",
        help="machine types, round-robin: pump, motor, fan, turbofan (default pump,motor,fan)",
    )
    sim.add_argument(
        "--rate", default="realtime", help="realtime, xN (N simulated seconds per second) or max"
    )
    sim.add_argument(
        "--step",
        type=float,
        help="simulated seconds between steps (default 1; --cycle when all machines are turbofans)",
    )
    sim.add_argument(
        "--cycle",
        type=float,
        default=600.0,
        help="turbofans: simulated seconds per operating cycle, one reading each (default 600, "
        "as a C-MAPSS replay; --rate x600 then runs one cycle per second)",
    )
    span = sim.add_mutually_exclusive_group()
    span.add_argument("--steps", type=int, help="number of steps (default: until Ctrl-C)")
    span.add_argument("--duration", type=float, help="simulated seconds to run")
    sim.add_argument(
        "--start",
        default="2026-01-01T00:00:00Z",
        help="simulated start time, ISO-8601 UTC, or 'now' (default 2026-01-01T00:00:00Z)",
    )
    sim.add_argument(
        "--mean-life",
        type=float,
        default=3 * 86400.0,
        help="mean simulated seconds from new to failure (default 259200 = 3 days)",
    )
    sim.add_argument(
        "--fast-fail",
        type=int,
        default=0,
        help="the first N machines fail within --fast-fail-seconds (turbofans: "
        "--fast-fail-cycles) (demos)",
    )
    sim.add_argument("--fast-fail-seconds", type=float, default=300.0, help="default 300")
    sim.add_argument(
        "--fast-fail-cycles",
        type=int,
        default=90,
        help="turbofans: a fast-failing one fails within 2/3 to all of this many cycles "
        "(default 90)",
    )
    sim.add_argument(
        "--repair", type=float, default=3600.0, help="downtime after a failure, seconds"
    )
    sim.add_argument(
        "--maintenance-interval",
        type=float,
        help="preventive maintenance period per machine, seconds (default: none)",
    )
    sim.add_argument(
        "--failure-modes",
        help="comma-separated modes to draw from "
        "(bearing_wear, overheating, imbalance, seal_leak, hpc_degradation; default all)",
    )
    sim.add_argument("--noise", type=float, default=1.0, help="sensor noise multiplier (default 1)")
    sim.add_argument(
        "--drift-rate", type=float, default=1e-5, help="per sensor-step chance to start drifting"
    )
    sim.add_argument(
        "--drift-sensors",
        help="comma-separated sensors that may drift (default: any); with --drift-rate 1 "
        "they all drift from the start: a known input drift",
    )
    sim.add_argument(
        "--dropout-rate", type=float, default=1e-3, help="per sensor-step chance of no value"
    )
    sim.add_argument(
        "--stuck-rate", type=float, default=1e-4, help="per sensor-step chance to freeze"
    )
    sim.add_argument(
        "--record", metavar="PATH", help="folder for readings.parquet and ground_truth.parquet"
    )
    sim.add_argument(
        "--no-publish", action="store_true", help="do not publish to Kafka (with --record)"
    )
    sim.add_argument("--topic", help="readings topic (PROGNOS_TOPIC, prognos.readings)")
    sim.add_argument(
        "--catalogue",
        help="sensor catalogue to validate with: a TOML file or a shipped name "
        "(PROGNOS_CATALOGUE; default: the simulator's and C-MAPSS's together)",
    )
    sim.set_defaults(handler=_simulate)


def _start(text: str) -> Any:
    from datetime import UTC, datetime

    from simulator.errors import ConfigError

    if text.strip().lower() == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--start {text!r}: use an ISO-8601 time such as 2026-01-01T00:00:00Z, or now"
        ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _simulate(args: argparse.Namespace) -> int:
    import contextlib
    from pathlib import Path

    from simulator.config import FaultRates, FleetConfig
    from simulator.errors import ConfigError
    from simulator.fleet import Fleet
    from simulator.run import Pace, run_fleet

    if args.no_publish and not args.record:
        raise ConfigError("--no-publish without --record would do nothing; add --record PATH")
    if args.steps is None and args.duration is None and args.rate == "max":
        raise ConfigError("--rate max without --steps or --duration never ends; give one of them")
    types = tuple(t.strip() for t in args.types.split(",") if t.strip())
    step = args.step
    if step is None:  # turbofans only: one step per cycle, no empty steps between
        step = args.cycle if types and set(types) == {"turbofan"} else 1.0
    config = FleetConfig(
        machines=args.machines,
        seed=args.seed,
        types=types,
        step_s=step,
        start=_start(args.start),
        mean_life_s=args.mean_life,
        fast_fail=args.fast_fail,
        fast_fail_s=args.fast_fail_seconds,
        cycle_s=args.cycle,
        fast_fail_cycles=args.fast_fail_cycles,
        repair_s=args.repair,
        maintenance_interval_s=args.maintenance_interval,
        failure_modes=tuple(m.strip() for m in args.failure_modes.split(","))
        if args.failure_modes
        else None,
        faults=FaultRates(
            noise=args.noise,
            drift=args.drift_rate,
            dropout=args.dropout_rate,
            stuck=args.stuck_rate,
            drift_sensors=tuple(
                s.strip() for s in (args.drift_sensors or "").split(",") if s.strip()
            ),
        ),
    )
    pace = Pace.parse(args.rate)
    fleet = Fleet(config)
    record = Path(args.record) if args.record else None
    with contextlib.ExitStack() as stack:
        producer = None
        topic = ""
        if not args.no_publish:
            from ingest.config import KafkaConfig
            from ingest.producer import ReadingProducer

            kafka = KafkaConfig.from_env().with_topic(args.topic)
            topic = kafka.topic
            import os

            from ingest.catalogue import load_catalogue

            catalogue = load_catalogue(args.catalogue or os.environ.get("PROGNOS_CATALOGUE"))
            producer = stack.enter_context(
                ReadingProducer(kafka, source="simulator", catalogue=catalogue)
            )
        report = run_fleet(
            fleet,
            steps=args.steps,
            duration_s=args.duration,
            pace=pace,
            producer=producer,
            record=record,
        )
    failures = sum(1 for life in fleet.ground_truth() if life.end_reason == "failure")
    where = f" to {topic}" if producer is not None else ""
    print(
        f"simulated {config.machines} machines for {report.steps:,} steps: {report.readings:,} readings{where} "
        f"in {report.seconds:.1f}s ({report.rate:,.0f}/s), {report.dead_letters:,} dead letters, "
        f"{failures} failures"
    )
    if record is not None:
        print(f"recorded {record / 'readings.parquet'} and {record / 'ground_truth.parquet'}")
    return 130 if report.interrupted else 0

"""The demo: the whole system from one command.

``prognos demo`` brings the local stack up (unless it runs already), starts the stream job
with the committed default model, starts a simulated fleet of turbofan engines in which a
few degrade quickly (or, with ``--cmapss``, replays NASA C-MAPSS FD001), and shows alerts
as they arrive. Ctrl-C (or ``--duration``) stops everything it started: the fleet, the
stream job (after its batch in flight), and the stack if the demo started it.

The child processes are ordinary ``prognos`` commands; their output goes to log files in
the stack's log folder, named in the demo's output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from deploy.errors import DeployError

if TYPE_CHECKING:
    from stream.contract import AlertEvent
    from stream.redis_config import RedisConfig

logger = logging.getLogger(__name__)

CMAPSS_TRAIN = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "cmapss" / "train_FD001.txt"
)
# Simulated event time runs ahead of the wall clock (x600); the demo's job accepts it.
_DEMO_SKEW_S = 30 * 86_400


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs.

    Attributes:
        machines: turbofans in the simulated fleet.
        fast_fail: how many of them degrade quickly (alerts within about a minute).
        rate: simulated seconds per wall second (600: one 10-minute cycle per second).
        seed: the fleet's seed.
        cmapss: replay this C-MAPSS file instead of simulating.
        duration_s: stop by itself after this many seconds (None: until Ctrl-C).
        show: alerts to print at most (None: all).
        key_prefix: the Redis key prefix the demo's job writes under and the demo reads
            (None: ``PROGNOS_KEY_PREFIX``, else ``prognos``).
        metrics_port: the stream job serves Prometheus metrics here (a free port instead
            when it is taken; None: off).
        dashboard_port: ``prognos dashboard`` serves the live page here (a free port
            instead when it is taken; None: off).
    """

    machines: int = 12
    fast_fail: int = 3
    rate: int = 600
    seed: int = 7
    cmapss: Path | None = None
    duration_s: float | None = None
    show: int | None = None
    key_prefix: str | None = None
    metrics_port: int | None = 9464
    dashboard_port: int | None = 8080


class _Child:
    """A ``prognos`` subcommand run as a child process, its output in a log file."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # our Ctrl-C handling decides when it stops
            env=env,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int, timeout_s: float) -> int | None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %.0fs; killing it", self.name, timeout_s)
                self.process.kill()
                self.process.wait(10)
        self._out.close()
        return self.process.returncode


def _line(alert: AlertEvent) -> str:
    top = alert.top_features[0] if alert.top_features else None
    feature = (
        f"{top.name}={top.value:.6g} (normal {top.normal_low:.6g}..{top.normal_high:.6g})"
        if top is not None and top.value is not None
        else ""
    )
    when = datetime.fromtimestamp(alert.window_end_ms / 1000, UTC).strftime("%m-%d %H:%M")
    now = datetime.now().strftime("%H:%M:%S")
    return (
        f"{now} ALERT {alert.kind:<8} {alert.device_id:<15} {alert.severity:<8} risk {alert.risk:.2f}  "
        f"window to {when}  {feature}"
    )


def _say(out: TextIO, text: str) -> None:
    """Print a line; a closed stdout (Ctrl-C killed ``| tee``) must not stop the clean-up."""
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        print(text, file=out, flush=True)


def _progress(redis: RedisConfig) -> str:
    """One line on the stream job's progress, from the hashes it keeps in Redis."""
    import redis as redis_client

    from stream.contract import FleetSummary, JobMetrics

    client = redis.client(decode_responses=True, socket_timeout=5)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(redis.keys.metrics)
        pipe.hgetall(redis.keys.fleet)
        raw_metrics, raw_fleet = pipe.execute()
    except redis_client.RedisError as exc:
        return f"{datetime.now():%H:%M:%S} status: Redis did not answer ({exc})"
    finally:
        client.close()
    metrics, fleet = JobMetrics.from_hash(raw_metrics), FleetSummary.from_hash(raw_fleet)
    if metrics is None:
        return (
            f"{datetime.now():%H:%M:%S} status: the stream job is starting (Spark, the model) ..."
        )
    line = (
        f"{datetime.now():%H:%M:%S} status: batch {metrics.batch_id}, "
        f"{metrics.windows_scored_total} windows scored, {metrics.alerts_total} alert events"
    )
    if fleet is not None:
        line += f"; {fleet.devices} devices, {fleet.open_alerts} with an open alert"
    return line


def _free(port: int) -> int:
    """``port`` if nothing listens there, else a free one."""
    from deploy.stack import free_port, port_is_free

    return port if port_is_free(port) else free_port()


def run_demo(config: DemoConfig, out: TextIO = sys.stdout) -> int:
    """Run the demo; returns the exit code. See the module docstring."""
    from deploy.config import StackConfig
    from deploy.stack import Stack
    from ingest.admin import ensure_topics
    from ingest.config import KafkaConfig
    from stream.redis_config import RedisConfig
    from stream.subscribe import PubSubSubscriber, TailConfig

    if config.cmapss is not None and not config.cmapss.is_file():
        raise DeployError(
            f"C-MAPSS file {config.cmapss} not found; pass --cmapss PATH to train_FD001.txt"
        )
    stack_config = StackConfig.from_env()
    stack = Stack(stack_config)
    # The children talk to exactly the services this demo checked, whatever else is set.
    child_env = {
        **os.environ,
        **stack_config.client_env(),
        "PROGNOS_KAFKA_BOOTSTRAP": stack_config.kafka_bootstrap,
    }
    if stack_config.external_redis:
        child_env["PROGNOS_REDIS_URL"] = stack_config.external_redis
    redis = RedisConfig.from_env(child_env, key_prefix=config.key_prefix)
    was_running = {s.name for s in stack.services if s.running_pid() is not None}
    _say(out, "prognos demo: starting the local stack (Kafka, Redis) ...")
    stack.up()
    started_stack = [s for s in stack.services if s.name not in was_running]

    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    topic = f"prognos.demo.{run_id}"
    logs = stack_config.logs_dir
    logs.mkdir(parents=True, exist_ok=True)
    checkpoint = stack_config.home / ".prognos" / "checkpoints" / f"demo-{run_id}"
    children: list[_Child] = []
    stop = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(*_: object) -> None:
        stop.set()

    for s in previous:
        signal.signal(s, request_stop)
    ensure_topics(KafkaConfig.from_env(child_env, topic=topic))
    metrics = []
    if config.metrics_port is not None:
        metrics = ["--metrics-port", str(_free(config.metrics_port))]
    dashboard = None if config.dashboard_port is None else _free(config.dashboard_port)
    code = 0
    alerts = 0
    # Subscribed before anything starts, so no alert is published before we listen.
    subscriber = PubSubSubscriber(TailConfig(redis.url, redis.key_prefix))
    subscriber.open()
    try:
        _say(
            out,
            f"prognos demo: starting the stream job on topic {topic} (log: {logs / 'demo-stream.log'})",
        )
        children.append(
            _Child(
                "stream job",
                ["stream", "--topic", topic, "--checkpoint", str(checkpoint), "--starting-offsets", "earliest",
                 "--trigger", "1", "--max-future-skew", str(_DEMO_SKEW_S), "--key-prefix", redis.key_prefix,
                 *metrics],
                logs / "demo-stream.log",
                child_env,
            )
        )  # fmt: skip
        if config.cmapss is not None:
            source = [
                "replay",
                str(config.cmapss),
                "--topic",
                topic,
                "--speed",
                str(config.rate),
                "--shift-to-now",
            ]
            what = f"replaying {config.cmapss.name} at {config.rate}x"
        else:
            start = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            source = [
                "simulate", "--types", "turbofan", "--machines", str(config.machines), "--fast-fail", str(config.fast_fail),
                "--rate", f"x{config.rate}", "--seed", str(config.seed), "--start", start, "--topic", topic,
            ]  # fmt: skip
            what = (
                f"simulating {config.machines} turbofans, {config.fast_fail} degrading fast, "
                f"one 10-minute cycle per {600 / config.rate:g}s"
            )
        if metrics:
            _say(
                out,
                f"prognos demo: the stream job's Prometheus metrics: http://127.0.0.1:{metrics[1]}/metrics",
            )
        if dashboard is not None:
            children.append(
                _Child(
                    "dashboard",
                    ["dashboard", "--port", str(dashboard), "--key-prefix", redis.key_prefix],
                    logs / "demo-dashboard.log",
                    child_env,
                )
            )
            _say(out, f"prognos demo: the live dashboard: http://127.0.0.1:{dashboard}/")
        _say(out, f"prognos demo: {what} (log: {logs / 'demo-source.log'})")
        children.append(_Child("fleet", source, logs / "demo-source.log", child_env))
        _say(
            out,
            "prognos demo: alerts appear below as the stream job raises them (Ctrl-C stops the demo)\n"
            "              in another terminal: `.venv/bin/prognos status` or `.venv/bin/prognos alerts tail`",
        )
        deadline = time.monotonic() + config.duration_s if config.duration_s else None

        def watch() -> None:
            next_status = time.monotonic() + 15
            while not stop.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    stop.set()
                if not children[0].alive():
                    stop.set()
                if time.monotonic() >= next_status:
                    next_status += 15
                    _say(out, _progress(redis))
                stop.wait(0.5)
            subscriber.close()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for delivery in subscriber:
            alerts += 1
            if config.show is None or alerts <= config.show:
                _say(out, _line(delivery.alert))
        if not children[0].alive() and children[0].process.returncode not in (0, None):
            from deploy.stack import tail as log_tail

            _say(
                out,
                f"prognos demo: the stream job exited; last lines of {children[0].log}:\n{log_tail(children[0].log)}",
            )
            code = 1
    finally:
        # Every step runs whatever the one before it did: nothing the demo started may outlive it.
        stop.set()
        subscriber.close()
        _say(out, "prognos demo: stopping ...")
        for child in reversed(children):
            try:
                child.stop(signal.SIGINT if child.name == "fleet" else signal.SIGTERM, 90)
            except Exception:  # go on stopping the others
                logger.exception("could not stop the %s", child.name)
        for service in reversed(started_stack):
            try:
                service.stop()
            except Exception:
                logger.exception("could not stop %s", service.name)
        for s, handler in previous.items():
            signal.signal(s, handler)
    stopped_stack = " and the local stack" if started_stack else ""
    _say(
        out,
        f"prognos demo: {alerts} alert events shown; stopped the fleet, the stream job{stopped_stack}.",
    )
    if alerts == 0 and code == 0:
        _say(out, "prognos demo: no alert arrived; see the logs above, or let it run longer")
    return code


def default_cmapss() -> Path:
    """The C-MAPSS training file beside the checkout (``../shared/data/cmapss``)."""
    return Path(os.environ.get("PROGNOS_CMAPSS", str(CMAPSS_TRAIN)))

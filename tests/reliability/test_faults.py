"""Faults against real processes, each judged against the golden run (RELIABILITY.md).

Each test replays the golden run's recording into a fresh topic, runs ``prognos stream``
as a process with its own checkpoint and key prefix, injects its fault at seeded random
points, lets the job finish, and compares what reached Redis with the golden run. It adds
a row to the session's report first (so a failing run still shows its figures), then
asserts 0 lost, 0 duplicated, 0 differing and the same latest state per device.

Faults already covered elsewhere and not repeated here: a crash part-way through a sink
batch (tests/integration/test_redis_sink.py), a consumer crash before its ack
(tests/integration/test_alerts_subscribe.py), a restart with a forbidden checkpoint change
and a tampered model (tests/unit/stream/test_job_startup.py, tests/unit/models).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from stream.contract import Keys
from tests.benchmarks.common import MemorySampler
from tests.reliability.conftest import Golden
from tests.reliability.harness import (
    REPORT,
    ChaosSettings,
    Comparison,
    FaultRow,
    JobProcess,
    Run,
    batch_sizes,
    compare,
    create_topic,
    kill_service,
    last_commit,
    make_recording,
    private_services,
    produce,
    recovery_s,
    run_in_process,
    snapshot,
    topic_readings,
    wait_for_commit,
)

pytestmark = pytest.mark.timeout(REPORT.settings.test_timeout_s)


def _judge(
    golden: Golden, run: Run, fault: str, readings_sent: int, notes: str = "", **details: Any
) -> Comparison:
    """Compare the run with the golden run and add its row to the report.

    ``details`` are the row's fields the fault test knows (recovery, injections, seconds,
    extra); the comparison fills in the outcome.
    """
    comparison = compare(
        golden.snapshot, snapshot(run.redis_url, run.prefix, run.bootstrap, run.topic)
    )
    row = FaultRow.from_comparison(
        fault,
        readings_sent,
        comparison,
        job_starts=len(run.segments),
        notes="; ".join([notes, *run.notes]).strip("; "),
        **details,
    )
    row.passed = comparison.ok
    REPORT.add(row)
    return comparison


def _assert_equal(comparison: Comparison, fault: str) -> None:
    assert comparison.ok, f"{fault}: {comparison.describe()}"


#: What the restarted job logs when it replays a batch whose writes were already done.
REPLAYED = {
    "alert write": "already had this batch applied (a replayed batch",
    "dead-letter write": "were published before (a replayed batch)",
}
#: How many times a write kill is tried before the suite gives up on landing one before
#: Spark's commit (each try costs a restart).
WRITE_KILL_TRIES = 4


def _marker(client: Any, run: Run, mode: str) -> int:
    """What grows as batches write: alert events, or the batches whose dead letters counted."""
    keys = Keys(run.prefix)
    if mode == "alert write":
        return int(client.xlen(keys.alerts))
    return sum(int(v) + 1 for v in client.hvals(keys.deadletters_counted))


def _kill_job_at_random_batches(
    run: Run, rng: Any, kills: int, timeout_s: float
) -> tuple[list[dict[str, Any]], JobProcess]:
    """Start segments and SIGKILL them, cycling through three kill points:

    ``mid-batch``: 0-4 s after the segment's first or second commit (random), anywhere in
    the next batch; ``alert write``: the moment the sink's writes of a batch with alert
    events show up in Redis; ``dead-letter write``: the moment a batch's dead letters are
    published and counted. The two write kills aim before Spark commits the batch, so the
    restarted job replays a batch whose writes are already, fully or partly, done: the case
    the sink's and the dead-letter publisher's idempotence is for. A write kill that lands
    after the commit (the restarted job then logs no replay) is tried again on a later
    batch, up to :data:`WRITE_KILL_TRIES` times; the test fails if none replays.

    Returns the kills and the segment running after the last one (to be finished).
    """
    import redis

    client = redis.Redis.from_url(run.redis_url, decode_responses=True)
    done: list[dict[str, Any]] = []
    job = run.start()
    try:
        for i in range(kills):
            mode = ("mid-batch", "alert write", "dead-letter write")[i % 3]
            for attempt in range(1, WRITE_KILL_TRIES + 1):
                committed = last_commit(run.checkpoint)
                delay = 0.0
                if mode == "mid-batch":
                    after = committed + rng.randint(1, 2)
                    delay = round(rng.uniform(0.0, 4.0), 2)
                    if wait_for_commit(job, run.checkpoint, after - 1, timeout_s) is None:
                        raise AssertionError(
                            f"the job finished (exit {job.poll()}) before batch {after}: the "
                            f"recording is too short for {kills} kills; log:\n{job.log_tail()}"
                        )
                    time.sleep(delay)
                else:
                    before = _marker(client, run, mode)
                    deadline = time.monotonic() + timeout_s
                    while _marker(client, run, mode) == before and job.poll() is None:
                        if time.monotonic() > deadline:
                            raise AssertionError(f"no {mode} within {timeout_s:.0f}s")
                        time.sleep(0.005)
                if job.poll() is not None:
                    raise AssertionError(
                        f"the job finished before its {mode} kill: the recording is too short"
                    )
                committed = last_commit(run.checkpoint)
                at = job.kill()
                job = run.start()
                kill: dict[str, Any] = {
                    "mode": mode,
                    "last_commit": committed,
                    "delay_s": delay,
                    "at": at,
                    "attempt": attempt,
                    "alerts_in_redis": int(client.xlen(Keys(run.prefix).alerts)),
                    "replayed": None,
                }
                done.append(kill)
                if mode == "mid-batch":
                    break
                # The restarted segment's first batch is the killed one, replayed or not.
                if wait_for_commit(job, run.checkpoint, committed, timeout_s) is None:
                    job.wait(timeout_s)  # it finished: its log is complete
                kill["replayed"] = REPLAYED[mode] in job.log_text()
                if kill["replayed"]:
                    break
            else:
                raise AssertionError(
                    f"none of {WRITE_KILL_TRIES} {mode} kills landed before Spark's commit: "
                    "the replay of a written batch was never tested"
                )
    finally:
        client.close()
    return done, job


def test_stream_job_sigkilled_at_random_batches(
    chaos: ChaosSettings,
    golden: Golden,
    kafka_bootstrap: str,
    redis_url: str,
    unique_topic: str,
    dlq_topic: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    """SIGKILL the job and every process it started (driver, JVM, Python workers) at seeded
    random batches, restart it on the same checkpoint each time; alerts equal the golden
    run."""
    started = time.monotonic()
    produced = produce(golden.recording, kafka_bootstrap, unique_topic)
    run = Run("job-kill", unique_topic, kafka_bootstrap, redis_url, key_prefix, tmp_path, chaos)
    kills, job = _kill_job_at_random_batches(
        run, chaos.rng("job-kill"), chaos.kills, chaos.job_timeout_s
    )
    run.finish(job)
    run.check_consumed()

    def describe(k: dict[str, Any]) -> str:
        if k["mode"] == "mid-batch":
            return f"{k['delay_s']:.1f}s after batch {k['last_commit']}"
        replayed = "not committed: replayed" if k["replayed"] else "already committed"
        return f"at the {k['mode']} of batch {k['last_commit'] + 1} ({replayed})"

    fault = f"stream job SIGKILL x{len(kills)}, restart on the checkpoint"
    comparison = _judge(
        golden,
        run,
        fault,
        produced.sent,
        recovery_s=[recovery_s(run.checkpoint, k["at"]) for k in kills],
        injections=len(kills),
        seconds=round(time.monotonic() - started, 1),
        notes="killed " + "; ".join(describe(k) for k in kills),
        extra={"kills": [{k: v for k, v in kill.items() if k != "at"} for kill in kills]},
    )
    assert produced.failed == 0
    _assert_equal(comparison, fault)


def test_redis_killed_mid_run(
    chaos: ChaosSettings,
    golden: Golden,
    kafka_bootstrap: str,
    unique_topic: str,
    dlq_topic: str,
    tmp_path: Path,
) -> None:
    """SIGKILL a private redis-server mid-run and start it again (same data folder).

    A short outage is bridged by the sink's retries: the job logs the failed writes and
    goes on. A long one (Redis kept down until the job gives up) stops the job with an
    error naming Redis and a non-zero exit; the harness restarts it on its checkpoint
    once Redis is back, as an operator or a supervisor would. Either way, alerts equal
    the golden run.
    """
    rng = chaos.rng("redis-kill")
    started = time.monotonic()
    with private_services(tmp_path / "stack", redis=True) as (_, server):
        url = f"redis://127.0.0.1:{server.port}/0"
        produced = produce(golden.recording, kafka_bootstrap, unique_topic)
        run = Run("redis-kill", unique_topic, kafka_bootstrap, url, "reliability", tmp_path, chaos)
        job = run.start()
        outages: list[dict[str, Any]] = []
        for kind in chaos.redis_outages:
            reached = wait_for_commit(
                job,
                run.checkpoint,
                last_commit(run.checkpoint) + rng.randint(0, 1),
                chaos.job_timeout_s,
            )
            if reached is None:
                raise AssertionError(
                    f"the job finished before the {kind} Redis outage: recording too short"
                )
            time.sleep(rng.uniform(0.0, 2.0))
            failures = job.log_text().count("Redis write failed")
            error_line = ""
            killed = kill_service(server)
            if kind == "short":
                # Keep Redis down until the sink has seen it fail, then a little longer.
                deadline = time.monotonic() + chaos.job_timeout_s
                while (
                    job.log_text().count("Redis write failed") == failures
                    and job.poll() is None
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.1)
                time.sleep(rng.uniform(0.2, 1.5))
                server.start()
                back = time.time()
                retries = job.log_text().count("Redis write failed") - failures
                assert job.poll() is None, (
                    f"a {back - killed:.1f}s Redis outage stopped the job instead of being "
                    f"retried:\n{job.log_tail()}"
                )
                assert retries > 0, "the outage did not reach the sink"
                outcome = f"short {back - killed:.1f}s: {retries} failed writes retried"
            else:
                code = job.wait(chaos.job_timeout_s)
                text = job.log_text()
                assert code != 0, f"the job exited 0 while Redis was down:\n{job.log_tail()}"
                error_line = next(
                    (
                        line
                        for line in text.splitlines()
                        if line.startswith("prognos stream: error:")
                    ),
                    "",
                )
                assert f"Redis at {url} failed" in error_line, (
                    f"the job stopped without an error line naming Redis:\n{job.log_tail()}"
                )
                server.start()
                back = time.time()
                job = run.start()
                outcome = (
                    f"long {back - killed:.1f}s: the job stopped (exit {code}, error naming "
                    "Redis), restarted on its checkpoint"
                )
            outages.append(
                {
                    "kind": kind,
                    "after_batch": reached,
                    "down_s": round(back - killed, 1),
                    "recovery_s": None,
                    "killed": killed,
                    "back": back,
                    "outcome": outcome,
                    "error_line": error_line[:300],
                }
            )
        run.finish(job)
        run.check_consumed()
        for o in outages:
            o["recovery_s"] = recovery_s(run.checkpoint, o.pop("killed"), o.pop("back"))
        fault = "redis-server SIGKILL mid-run, restarted"
        comparison = _judge(
            golden,
            run,
            fault,
            produced.sent,
            recovery_s=[o["recovery_s"] for o in outages],
            injections=len(outages),
            seconds=round(time.monotonic() - started, 1),
            notes="; ".join(o["outcome"] for o in outages),
            extra={"outages": outages},
        )
        _assert_equal(comparison, fault)


def test_kafka_broker_killed_mid_produce_and_mid_consume(
    chaos: ChaosSettings,
    golden: Golden,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    """SIGKILL a private broker while the producer sends (paced replay) and again while the
    job reads, restarting it each time. Every reading the producer saw acknowledged is in
    the topic once, and the job's alerts equal the golden run."""
    rng = chaos.rng("kafka-kill")
    started = time.monotonic()
    with private_services(tmp_path / "stack", kafka=True) as (broker, _):
        bootstrap = f"127.0.0.1:{broker.port}"
        topic = create_topic(bootstrap, "reliability-kafka")

        # -- mid-produce ----------------------------------------------------------------
        plan = sorted(
            (rng.uniform(0.15, 0.75) * chaos.produce_seconds, rng.uniform(2.0, 5.0))
            for _ in range(chaos.produce_kills)
        )
        produce_outages: list[tuple[float, float]] = []
        errors: list[BaseException] = []

        def chaos_monkey() -> None:
            t0 = time.monotonic()
            try:
                for at, outage in plan:
                    time.sleep(max(0.0, t0 + at - time.monotonic()))
                    killed = kill_service(broker)
                    time.sleep(outage)
                    broker.start()
                    produce_outages.append((killed, time.time()))
            except BaseException as exc:
                errors.append(exc)

        monkey = threading.Thread(target=chaos_monkey, daemon=True)
        monkey.start()
        speed = golden.recording.event_span_s / chaos.produce_seconds
        produced = produce(golden.recording, bootstrap, topic, speed=speed)
        monkey.join()
        assert not errors, errors
        assert len(produce_outages) == chaos.produce_kills
        assert all(killed < max(produced.acked.values()) for killed, _ in produce_outages), (
            "the producer was done before the broker was killed"
        )
        in_topic = topic_readings(bootstrap, topic, expected=len(produced.acked))
        lost_acked = sorted(k for k in produced.acked if in_topic[k] == 0)
        topic_duplicates = sum(n - 1 for n in in_topic.values() if n > 1)
        produce_recovery = []
        for killed, _ in produce_outages:
            later = [t for t in produced.acked.values() if t > killed]
            produce_recovery.append(round(min(later) - killed, 1) if later else None)

        # -- mid-consume ----------------------------------------------------------------
        run = Run("kafka-kill", topic, bootstrap, redis_url, key_prefix, tmp_path, chaos)
        job = run.start()
        consume_outages = []
        for _ in range(chaos.consume_kills):
            reached = wait_for_commit(
                job,
                run.checkpoint,
                last_commit(run.checkpoint) + rng.randint(0, 1),
                chaos.job_timeout_s,
            )
            if reached is None:
                if job.poll() == 0:
                    raise AssertionError(
                        "the job finished before the broker was killed mid-consume"
                    )
                break  # it failed: finish() below restarts it
            time.sleep(rng.uniform(0.0, 2.0))
            killed = kill_service(broker)
            time.sleep(rng.uniform(2.0, 5.0))
            broker.start()
            consume_outages.append((reached, killed, time.time()))
        run.finish(job, restarts_allowed=len(consume_outages))
        run.check_consumed()
        fault = "Kafka broker SIGKILL mid-produce and mid-consume, restarted"
        comparison = _judge(
            golden,
            run,
            fault,
            produced.sent,
            recovery_s=[*produce_recovery]
            + [recovery_s(run.checkpoint, k, b) for _, k, b in consume_outages],
            injections=len(produce_outages) + len(consume_outages),
            seconds=round(time.monotonic() - started, 1),
            notes=(
                f"produce: {len(produce_outages)} kill(s), {len(produced.acked)} acked, "
                f"{len(lost_acked)} acked but missing, {topic_duplicates} duplicates in topic; "
                f"consume: kill(s) after batch {', '.join(str(b) for b, _, _ in consume_outages)}"
            ),
            extra={
                "acked": len(produced.acked),
                "producer_failed": produced.failed,
                "acked_missing_from_topic": lost_acked[:20],
                "topic_duplicates": topic_duplicates,
                "produce_outages_s": [round(b - k, 1) for k, b in produce_outages],
                "consume_outages_s": [round(b - k, 1) for _, k, b in consume_outages],
            },
        )
        assert produced.failed == 0 and len(produced.acked) == produced.sent, (
            f"{produced.sent - len(produced.acked)} readings were not acknowledged"
        )
        assert not lost_acked, f"acknowledged readings missing from the topic: {lost_acked[:10]}"
        assert consume_outages, "no broker kill happened while the job was reading"
        _assert_equal(comparison, fault)
        assert topic_duplicates == 0, (
            f"{topic_duplicates} readings are twice in the topic: the idempotent producer "
            "duplicated records across the broker restart (the job's de-duplication hid them)"
        )


def test_backlog_after_downtime(
    chaos: ChaosSettings,
    golden: Golden,
    spark: Any,
    cmapss_dir: Path,
    kafka_bootstrap: str,
    redis_url: str,
    unique_topic: str,
    dlq_topic: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    """The job runs over the first part of the recording and stops; the rest arrives while
    it is down; it restarts with a small ``--max-offsets-per-trigger``. Every batch of the
    catch-up stays within that bound (what keeps memory bounded), the peak resident memory
    of the job's processes is reported, and alerts equal the golden run."""
    started = time.monotonic()
    rec = golden.recording
    split = rec.first_cycle + int(chaos.backlog_split * (rec.last_cycle - rec.first_cycle))
    before = make_recording(cmapss_dir, rec.engines, tmp_path / "before", (0, split))
    backlog = make_recording(cmapss_dir, rec.engines, tmp_path / "backlog", (split + 1, 10**9))
    assert before.readings + backlog.readings == rec.readings

    run = Run("backlog", unique_topic, kafka_bootstrap, redis_url, key_prefix, tmp_path, chaos)
    sent_before = produce(before, kafka_bootstrap, unique_topic)
    # Before the downtime, the job runs in this process (it only has to leave a checkpoint).
    run_in_process(
        spark, unique_topic, kafka_bootstrap, redis_url, key_prefix, run.checkpoint, chaos
    )
    stopped_after = last_commit(run.checkpoint)
    sent_backlog = produce(backlog, kafka_bootstrap, unique_topic)

    run.max_offsets = chaos.backlog_max_offsets
    job = run.start()
    with MemorySampler(job.pid) as memory:
        run.finish(job)
    catch_up = round((job.ended or time.time()) - job.started, 1)
    run.check_consumed()
    sizes = {b: n for b, n in batch_sizes(run.checkpoint).items() if b > stopped_after}
    fault = "backlog after downtime, restart with maxOffsetsPerTrigger"
    comparison = _judge(
        golden,
        run,
        fault,
        sent_before.sent + sent_backlog.sent,
        recovery_s=[catch_up],
        injections=1,
        seconds=round(time.monotonic() - started, 1),
        notes=(
            f"backlog {sent_backlog.sent:,} readings in {len(sizes)} batches of at most "
            f"{max(sizes.values(), default=0)} (bound {chaos.backlog_max_offsets}); peak RSS "
            f"{memory.as_dict()['peak_total_gib']:.2f} GiB; recovery = catch-up time"
        ),
        extra={
            "memory": memory.as_dict(),
            "batch_sizes": sizes,
            "stopped_after_batch": stopped_after,
        },
    )
    assert sum(sizes.values()) == sent_backlog.sent + len(sent_backlog.bad_acked)
    assert max(sizes.values()) <= chaos.backlog_max_offsets, sizes
    _assert_equal(comparison, fault)

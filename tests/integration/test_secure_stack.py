"""The secure profile against real services: Kafka over SASL_SSL (SCRAM-SHA-512), Redis over
TLS with an ACL user; what is not authenticated is refused, and the replay, the stream job and
the dead-letter topic work through it end to end."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from kafka import KafkaProducer

from deploy.config import StackConfig
from deploy.secure import SecureFiles, redis_url
from deploy.stack import KafkaBroker, RedisServer, Stack, free_port
from ingest.admin import kafka_answers
from ingest.config import KafkaConfig
from ingest.consumer import read_records
from stream.contract import Keys

ROOT = Path(__file__).resolve().parents[2]
ENGINES = 3
_EXTERNAL = ("PROGNOS_KAFKA_BOOTSTRAP", "PROGNOS_REDIS_URL", "PROGNOS_STACK_SECURE")


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    # The session's environment (cache folder, jars), less anything naming other services.
    env = {k: v for k, v in os.environ.items() if k not in _EXTERNAL}
    config = StackConfig.from_env(
        env,
        state_dir=tmp_path_factory.mktemp("secure-stack"),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
        secure=True,
    )
    stack = Stack(config)
    stack.up()
    try:
        yield config
    finally:
        stack.down()


def _files(config: StackConfig) -> SecureFiles:
    return SecureFiles(config.secure_dir)


def _secrets(config: StackConfig) -> list[str]:
    files = _files(config)
    return [files.read(p) for p in files.passwords]


def test_what_is_not_authenticated_is_refused(secure_stack: StackConfig) -> None:
    files = _files(secure_stack)
    bootstrap = secure_stack.kafka_bootstrap
    kafka = KafkaConfig.from_env(secure_stack.client_env())
    assert kafka.security_protocol == "SASL_SSL" and kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert kafka_answers(bootstrap, timeout_s=3, client=kafka.security_kwargs())
    assert not kafka_answers(bootstrap, timeout_s=3), "the broker answered a PLAINTEXT client"
    wrong = replace(kafka, sasl_password="wrong")
    assert not kafka_answers(bootstrap, timeout_s=3, client=wrong.security_kwargs())

    port = secure_stack.redis_port
    app = redis.Redis.from_url(secure_stack.redis_url)
    try:
        assert app.ping() and app.set("prognos:secure-test", 1)
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.set("elsewhere:key", 1)  # outside the user's key pattern
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.flushall()  # a dangerous command
        app.delete("prognos:secure-test")
    finally:
        app.close()
    anonymous = redis.Redis.from_url(redis_url(files, port, with_password=False))
    with pytest.raises(redis.RedisError):
        anonymous.ping()
    anonymous.close()
    plain = redis.Redis(host="127.0.0.1", port=port, socket_timeout=3)
    with pytest.raises(redis.ConnectionError):
        plain.ping()  # TLS only
    plain.close()

    # Secrets: private files, never on a command line.
    assert stat.S_IMODE(files.dir.stat().st_mode) == 0o700
    for path in files.dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not (files.dir / "ca.key").exists(), "the CA key is not kept"
    for service in (KafkaBroker(secure_stack), RedisServer(secure_stack)):
        pid = service.running_pid()
        assert pid is not None, service.name
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert not any(s in cmdline for s in _secrets(secure_stack)), service.name


def _engines(cmapss_dir: Path, tmp_path: Path) -> Path:
    """The first engines of FD001's training file (a file the replay recognises by name)."""
    path = tmp_path / "train_FD001.txt"
    lines = (cmapss_dir / "train_FD001.txt").read_text().splitlines()
    path.write_text("\n".join(ln for ln in lines if int(ln.split()[0]) <= ENGINES) + "\n")
    return path


def _cli(env: dict[str, str], *args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


def test_replay_stream_job_and_dead_letters_over_sasl_ssl_and_tls(
    secure_stack: StackConfig, cmapss_dir: Path, tmp_path: Path
) -> None:
    topic = f"prognos.secure.{int(time.time())}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGNOS_")}
    # What `eval "$(prognos stack env --secure)"` sets: no password among the values.
    stack_env = secure_stack.client_env()
    assert not any(s in v for v in stack_env.values() for s in _secrets(secure_stack))
    env.update(
        stack_env,
        PROGNOS_SPARK_UI="0",
        PYTHONPATH=str(ROOT),
    )
    replay = _cli(env, "replay", str(_engines(cmapss_dir, tmp_path)), "--topic", topic,
                  "--as-fast-as-possible", "--no-progress", timeout=180)  # fmt: skip
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]

    kafka = KafkaConfig.from_env(env)
    producer = KafkaProducer(**kafka.kafka_kwargs())
    producer.send(topic, key=b"FD001-001", value=b'{"v": 1, "d": "FD001-001"').get(timeout=30)
    producer.close()

    stream = _cli(env, "stream", "--topic", topic, "--checkpoint", str(tmp_path / "ckpt"),
                  "--available-now", timeout=420)  # fmt: skip
    out = stream.stdout + stream.stderr
    assert stream.returncode == 0, out[-4000:]
    assert not any(s in out for s in _secrets(secure_stack)), "a secret was printed"

    client = redis.Redis.from_url(secure_stack.redis_url, decode_responses=True)
    try:
        risk = client.hgetall(Keys().risk)
        events = [json.loads(fields["event"]) for _, fields in client.xrange(Keys().alerts)]
        deadletters = client.hgetall(Keys().deadletters)
    finally:
        client.close()
    assert set(risk) == {f"FD001-{u:03d}" for u in range(1, ENGINES + 1)}
    assert {e["device_id"] for e in events if e["kind"] == "opened"}, "no alert opened"
    assert sum(int(n) for n in deadletters.values()) == 1, deadletters

    # Every record the dead-letter topic holds, read over SASL_SSL.
    letters = read_records(kafka, f"{topic}.dlq", expected=1, timeout_s=60, decode_values=False)
    assert [r.value for r in letters] == [b'{"v": 1, "d": "FD001-001"']


def test_stream_job_with_a_wrong_password_says_what_to_check(
    secure_stack: StackConfig, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGNOS_")}
    env.update(secure_stack.client_env(), PROGNOS_SPARK_UI="0", PYTHONPATH=str(ROOT))
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    env["PROGNOS_KAFKA_SASL_PASSWORD_FILE"] = str(wrong)
    result = _cli(env, "stream", "--topic", "prognos.secure.none", "--checkpoint",
                  str(tmp_path / "ckpt"), "--available-now", timeout=240)  # fmt: skip
    err = result.stderr
    assert result.returncode != 0
    assert "Traceback" not in err, err[-3000:]
    assert f"no Kafka broker answers at {secure_stack.kafka_bootstrap} with SASL_SSL" in err, err[
        -3000:
    ]
    assert "PROGNOS_KAFKA_SASL_PASSWORD_FILE" in err and "not-the-password" not in err


def test_a_redis_that_refuses_the_job_is_named_with_the_setting_to_check(
    secure_stack: StackConfig,
) -> None:
    """Credentials, TLS and a stopped server each get their own message and fix; before,
    all were 'no Redis answers: run prognos stack up'."""
    from stream.redis_config import redis_problem

    files = _files(secure_stack)
    port = secure_stack.redis_port
    right = redis_url(files, port)
    assert redis_problem(right) is None
    wrong = right.replace(
        urllib.parse.quote(files.read(files.redis_app_password), safe=""), "not-the-password"
    )
    assert wrong != right
    for url in (wrong, redis_url(files, port, with_password=False)):
        problem = redis_problem(url) or ""
        assert "refused the credentials" in problem, problem
        assert "PROGNOS_REDIS_PASSWORD_FILE" in problem and "not-the-password" not in problem
    no_ca = right.split("?", 1)[0]  # rediss:// without the CA that signed the certificate
    problem = redis_problem(no_ca) or ""
    assert "TLS handshake failed" in problem and "PROGNOS_REDIS_SSL_CAFILE" in problem, problem
    plain = f"redis://127.0.0.1:{port}/0"  # a TLS-only server over plain TCP
    problem = redis_problem(plain, timeout_s=3) or ""
    assert "rediss://" in problem and "prognos stack up" not in problem, problem
    stopped = f"redis://127.0.0.1:{free_port()}/0"
    problem = redis_problem(stopped) or ""
    assert problem.startswith("no answer") and "prognos stack up" in problem, problem

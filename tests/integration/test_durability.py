"""The durable profile: redis-server with ``appendfsync always``, and a sink that waits for
replicas and refuses to call a batch written when they do not answer."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from deploy.config import StackConfig
from deploy.stack import RedisServer, free_port
from stream.alerts import AlertPolicy, ScoredWindow
from stream.errors import SinkError
from stream.sink import RedisAlertSink

W = 60_000


def test_the_durable_profile_runs_redis_with_appendfsync_always(tmp_path: Path) -> None:
    config = StackConfig.from_env(
        {"PROGNOS_HOME": str(tmp_path), "PROGNOS_REDIS_FSYNC": "always"},
        redis_port=free_port(),
        state_dir=tmp_path / "state",
    )
    server = RedisServer(config)
    server.start()
    try:
        client = redis.Redis.from_url(config.redis_url, decode_responses=True)
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    finally:
        server.stop()


def test_a_sink_waiting_for_a_replica_that_is_not_there_does_not_call_the_batch_written(
    redis_url: str, key_prefix: str
) -> None:
    sink = RedisAlertSink(
        redis_url,
        AlertPolicy(threshold=0.5),
        W,
        prefix=key_prefix,
        retries=2,
        wait_replicas=1,
        wait_timeout_ms=100,
    )
    window = ScoredWindow("pump-1", 0, W, 0.9, "v1", "CPUExecutionProvider")
    with pytest.raises(SinkError, match=r"0 of 1 replicas acknowledged .* within 100 ms"):
        sink.write([window])
    sink.close()
    # Waiting for no replica (the default) writes as before.
    plain = RedisAlertSink(redis_url, AlertPolicy(threshold=0.5), W, prefix=key_prefix)
    assert plain.write([window]).events == 0  # applied by the first write already: a replay
    plain.close()

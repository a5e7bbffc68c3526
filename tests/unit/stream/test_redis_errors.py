"""What a failed Redis connection is named as, against sockets that misbehave as a server
can: one that takes the connection and never answers (a paused or overloaded server) is
not answering, one that takes it and drops it (a TLS-only server over plain TCP) needs a
rediss:// URL. The refusals of a real server are the secure stack's integration test."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from stream.redis_config import redis_problem


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    server = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []
    yield server, taken
    for conn in taken:
        conn.close()
    server.close()


def _serve(server: socket.socket, taken: list[socket.socket], drop: bool) -> None:
    def run() -> None:
        conn, _ = server.accept()
        if drop:
            conn.recv(1024)  # the client's first command
            conn.close()
        else:
            taken.append(conn)  # held open, never answered

    threading.Thread(target=run, daemon=True).start()


def test_a_server_that_never_answers_is_not_answering(
    listener: tuple[socket.socket, list[socket.socket]],
) -> None:
    server, taken = listener
    _serve(server, taken, drop=False)
    problem = redis_problem(f"redis://127.0.0.1:{server.getsockname()[1]}/0", timeout_s=0.5)
    assert problem is not None and problem.startswith("no answer"), problem
    assert "prognos stack up" in problem and "rediss://" not in problem


def test_a_server_that_drops_a_plain_connection_may_want_tls(
    listener: tuple[socket.socket, list[socket.socket]],
) -> None:
    server, taken = listener
    _serve(server, taken, drop=True)
    problem = redis_problem(f"redis://127.0.0.1:{server.getsockname()[1]}/0", timeout_s=2)
    assert problem is not None and "rediss://" in problem, problem

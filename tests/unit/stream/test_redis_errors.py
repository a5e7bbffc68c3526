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


@pytest.mark.parametrize(
    ("drop", "named", "not_named"),
    [
        (False, ("no answer", "prognos stack up"), "rediss://"),  # held open, never answered
        (
            True,
            ("it took the connection and dropped it", "rediss://"),
            "prognos stack up",
        ),  # taken and dropped: TLS only?
    ],
    ids=["silent", "dropping"],
)
def test_a_misbehaving_server_is_named_for_what_it_did(
    listener: tuple[socket.socket, list[socket.socket]],
    drop: bool,
    named: tuple[str, ...],
    not_named: str,
) -> None:
    server, taken = listener
    _serve(server, taken, drop=drop)
    problem = redis_problem(f"redis://127.0.0.1:{server.getsockname()[1]}/0", timeout_s=0.5)
    assert problem is not None and problem.startswith(named[0]), problem
    assert all(n in problem for n in named) and not_named not in problem, problem

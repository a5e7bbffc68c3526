"""The dashboard's command line: a port in use is a message naming it, not a traceback."""

from __future__ import annotations

import socket

import pytest

from deploy.dashboard import open_socket
from deploy.errors import DeployError


def test_a_port_in_use_is_refused_naming_it_and_the_fix() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(DeployError) as info:
            open_socket("127.0.0.1", port)
        message = str(info.value)
        assert f"cannot listen on 127.0.0.1:{port}" in message and "another --port" in message
    finally:
        holder.close()


def test_the_page_ships_with_the_package() -> None:
    from importlib import resources

    page = resources.files("deploy").joinpath("web", "index.html").read_text()
    assert 'new EventSource("/events")' in page and "{{PREFIX}}" in page

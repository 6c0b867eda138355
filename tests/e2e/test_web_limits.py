"""`web` under idle connections: a real waitress server on 127.0.0.1 still answers."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.e2e.test_preview_serve import home, start  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e


@contextmanager
def idle_connections(base: str, count: int) -> Iterator[list[socket.socket]]:
    """Open ``count`` connections that send nothing, as slow clients do."""
    host, port = base.removeprefix("http://").split(":")
    sockets = [socket.create_connection((host, int(port)), timeout=60) for _ in range(count)]
    try:
        yield sockets
    finally:
        for s in sockets:
            s.close()


def answered(base: str) -> None:
    """A plain request gets its answer (a generous timeout: the machine may be loaded)."""
    answer = requests.get(f"{base}/unsubscribe/not-a-token", timeout=60)
    assert answer.status_code == 400


def closed_by_the_server(idle: list[socket.socket]) -> int:
    """How many of ``idle`` the server has hung up on by now (looked at without waiting)."""
    readable, _, _ = select.select(idle, [], [], 0)
    return sum(1 for s in readable if s.recv(1) == b"")


def test_a_hundred_idle_connections_do_not_block_web(home: Path) -> None:  # noqa: F811
    # Idle connections are never dropped here: an answer that had to wait for them to be
    # dropped would never come (the request times out instead: no stopwatch).
    server = start(home, "web", "--channel-timeout", "3600")
    try:
        with idle_connections(server.base, 110) as idle:
            answered(server.base)
            assert closed_by_the_server(idle) == 0
    finally:
        server.stop()


def test_idle_connections_beyond_the_limit_are_dropped_after_the_timeout(
    home: Path,  # noqa: F811
) -> None:
    server = start(home, "web", "--connection-limit", "20", "--channel-timeout", "2")
    try:
        with idle_connections(server.base, 30) as idle:
            # The limit is reached: the request is still answered, once the server has hung
            # up on silent connections (its own timeout, not ours: we never close them).
            answered(server.base)
            idle[0].settimeout(60)
            assert idle[0].recv(1) == b""  # closed by the server, not by us
    finally:
        server.stop()

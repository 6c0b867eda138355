"""`web` under idle connections: a real waitress server on 127.0.0.1 still answers."""

from __future__ import annotations

import socket
import time
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
    sockets = [socket.create_connection((host, int(port)), timeout=5) for _ in range(count)]
    try:
        yield sockets
    finally:
        for s in sockets:
            s.close()


def answered_in(base: str, timeout: float) -> float:
    """Seconds a plain request took (it must be answered within ``timeout``)."""
    started = time.monotonic()
    answer = requests.get(f"{base}/unsubscribe/not-a-token", timeout=timeout)
    assert answer.status_code == 400
    return time.monotonic() - started


def test_a_hundred_idle_connections_do_not_block_web(home: Path) -> None:  # noqa: F811
    server = start(home, "web")
    try:
        with idle_connections(server.base, 110):
            assert answered_in(server.base, timeout=3) < 3
    finally:
        server.stop()


def test_idle_connections_beyond_the_limit_are_dropped_after_the_timeout(
    home: Path,  # noqa: F811
) -> None:
    server = start(home, "web", "--connection-limit", "20", "--channel-timeout", "2")
    try:
        with idle_connections(server.base, 30) as idle:
            # The limit is reached: the request waits until silent connections are closed.
            took = answered_in(server.base, timeout=8)
            assert 1 < took < 5, took
            idle[0].settimeout(5)
            assert idle[0].recv(1) == b""  # closed by the server, not by us
    finally:
        server.stop()

"""The suite's own servers (waitress, the fake APIs, aiosmtpd) stop without a race.

A test that ends while one of them is still answering must leave nothing behind: no thread
that writes to a closed descriptor afterwards, no answer cut off, no request counted late.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import threading
import time
from typing import Any

import pytest
import requests
from waitress.server import create_server

from tests.conftest import refused_port
from tests.fakes import server as fakes
from tests.fakes.smtp_server import smtp_server
from tests.fakes.wsgi import served, shut_down

BODY = b"x" * 300_000  # more than a socket buffer: still being written while the server stops


def test_a_request_in_flight_when_waitress_stops_is_answered_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Seen in CI: served() closed the loop's trigger while a worker was still answering; the
    # worker then pulled the closed trigger (EBADF), and the client's answer was cut off.
    entered, release = threading.Event(), threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        entered.set()
        release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(BODY)))])
        return [BODY]

    server: Any = create_server(app, host="127.0.0.1", port=0, threads=2)
    loop = threading.Thread(target=server.run, daemon=True)
    loop.start()
    answers: list[bytes] = []
    client = threading.Thread(target=lambda: answers.append(
        requests.get(f"http://127.0.0.1:{server.effective_port}/", timeout=30).content))
    client.start()
    assert entered.wait(30)
    with caplog.at_level(logging.WARNING, logger="waitress"):
        # The app answers just as the server is told to stop, from the server's own loop.
        server.trigger.pull_trigger(release.set)
        shut_down(server, loop)
    client.join(30)
    assert not loop.is_alive() and not server.task_dispatcher.threads
    assert answers == [BODY]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("waitress")] == []


def test_served_stops_with_idle_keep_alive_connections_open() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    session = requests.Session()  # keeps its connection open after the answer
    before = {t.ident for t in threading.enumerate()}
    with served(app, threads=3) as url:
        assert session.get(url, timeout=10).text == "ok"
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert left == []
    session.close()


class _Probe(fakes.FakeApi):
    def handle(self, request: fakes.Request) -> fakes.Reply:
        return fakes.Reply(200, {"ok": True})


def test_a_fake_api_stops_only_once_its_answer_under_way_is_done() -> None:
    api = _Probe()
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def hold(request: fakes.Request) -> None:
        entered.set()
        release.wait(30)
        time.sleep(0.2)  # still answering well after stop() was called

    def seen(request: fakes.Request, reply: fakes.Reply, scripted: bool) -> None:
        if request.path == "/probe":
            finished.set()

    api.before = hold
    fakes.WATCHERS.append(seen)
    try:
        server = fakes.FakeServer(api).start()
        client = threading.Thread(target=lambda: requests.get(server.url + "/probe", timeout=30))
        client.start()
        assert entered.wait(30)
        release.set()
        server.stop()
        # Its spec check (a watcher) ran within the test, not after it.
        assert finished.is_set()
        client.join(30)
    finally:
        fakes.WATCHERS.remove(seen)


def test_a_request_sent_by_a_client_that_died_is_counted_once_the_fake_settles() -> None:
    with fakes.serving(_Probe()) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as dying:
            dying.sendall(b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        server.settle()
        assert server.api.counts["GET /probe"] == 1


def test_the_fake_smtp_server_serves_on_the_socket_it_bound_first() -> None:
    with smtp_server() as (port, handler):
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("a@example.org", ["b@example.org"], b"Subject: hi\r\n\r\nhi\r\n")
        assert handler.counts["b@example.org"] == 1


def test_a_refused_port_refuses_for_the_whole_block() -> None:
    with refused_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))

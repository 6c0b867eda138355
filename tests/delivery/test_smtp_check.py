"""The SMTP transport's check before a send: one session, or a StopRun naming the settings."""

from __future__ import annotations

import smtplib
import socket

import pytest

from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.transports import smtp
from clubjapon_ops.delivery.transports.base import Reachable
from clubjapon_ops.delivery.transports.smtp import SmtpConfig, SmtpTransport
from clubjapon_ops.errors import StopRun
from tests.fakes.smtp_server import smtp_server


def transport(port: int, **config: object) -> SmtpTransport:
    return SmtpTransport(SmtpConfig("127.0.0.1", port, **config),  # type: ignore[arg-type]
                         "club@example.org", MimeBuilder("club@example.org"))


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    """The timeout of each socket smtplib opens (one entry per connection attempt)."""
    opened: list[float | None] = []
    connect = socket.create_connection

    def spy(address: tuple[str, int], timeout: float | None = None,
            *args: object, **kwargs: object) -> socket.socket:
        opened.append(timeout)
        sock = connect(address, timeout, *args, **kwargs)  # type: ignore[arg-type]
        opened[-1] = sock.gettimeout()  # what the socket itself will wait, not what was asked
        return sock

    monkeypatch.setattr(smtplib.socket, "create_connection", spy)
    return opened


def test_a_server_that_answers_passes_and_its_session_is_closed() -> None:
    with smtp_server() as (port, server):
        checked = transport(port)
        assert isinstance(checked, Reachable)
        checked.check()
        assert not server.counts  # nothing sent


def test_a_refused_connection_stops_at_once_naming_host_port_and_settings(
    closed_port: int, connections: list[float | None],
) -> None:
    port = closed_port
    # At once: one connection attempt, not the send's retries (a retry would wait 10 minutes).
    with pytest.raises(StopRun, match=rf"cannot connect to the SMTP server at 127\.0\.0\.1:{port}"
                                      r" \(SMTP_HOST, SMTP_PORT\): Connection refused"):
        transport(port, attempts=5, retry_wait=600.0).check()
    assert len(connections) == 1


def test_a_server_that_never_greets_stops_after_the_check_timeout(
    monkeypatch: pytest.MonkeyPatch, connections: list[float | None],
) -> None:
    monkeypatch.setattr(smtp, "CHECK_TIMEOUT", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never says 220
        port = silent.getsockname()[1]
        with pytest.raises(StopRun, match=rf"127\.0\.0\.1:{port} \(SMTP_HOST, SMTP_PORT\)"):
            transport(port, timeout=30.0).check()
    # The check's own deadline reaches the socket, not SMTP_TIMEOUT's 30 s; once, no retry.
    assert connections == [0.3]


def test_a_login_the_server_cannot_take_names_the_settings() -> None:
    with smtp_server() as (port, _), \
            pytest.raises(StopRun, match=r"SMTP_SECURITY=none or SMTP_USERNAME"):
        transport(port, username="club", password="secret").check()

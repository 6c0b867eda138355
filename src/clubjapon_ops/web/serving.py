"""Serve a web app with waitress, with limits that a few slow clients cannot exhaust.

waitress reads requests asynchronously and hands only complete ones to its threads, so idle
or slow connections cost a socket, not a thread; what they can exhaust is the connection
limit (100 by default), for as long as the inactivity timeout (120 s by default). Hence a
higher limit, a short timeout, and a reverse proxy that buffers (deploy/nginx.conf).
"""

from __future__ import annotations

import errno
import http.client
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.web.logsafe import redact_logger

if TYPE_CHECKING:
    from flask import Flask

MAX_BODY = 2 * 1024 * 1024  # Flask refuses over 1 MB with its own 413; this bounds the buffer


@dataclass(frozen=True)
class Limits:
    """waitress's knobs that bound what clients can hold."""

    threads: int = 8  # requests handled at once (handlers wait on the database)
    connection_limit: int = 500  # open connections, idle ones included
    channel_timeout: int = 15  # seconds a connection may stay silent before it is closed

    @property
    def cleanup_interval(self) -> int:
        """How often waitress looks for silent connections (it must not wait much longer)."""
        return max(1, min(5, self.channel_timeout // 2))


# The Server header each of our servers sends (waitress's ident), and the command behind it.
WEB_IDENT, PREVIEW_IDENT = "clubjapon-ops", "clubjapon-ops preview"
_COMMANDS = {WEB_IDENT: "clubjapon-ops web", PREVIEW_IDENT: "clubjapon-ops preview --serve"}
PROBE_TIMEOUT = 1.0  # seconds to ask the holder of a busy port who it is


def listen(host: str, port: int, option: str = "--port") -> socket.socket:
    """Bind host:port and listen, or raise ConfigError naming the port and its likely holder.

    Bound before anything says 'serving': a busy port must stop the command with one
    sentence, never after it printed an address that another program answers.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        raise ConfigError(f"--host {host} is not an address of this machine: give one such "
                          "as 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    try:
        # As waitress does: a server restarted at once may bind over its old TIME_WAIT
        # connections (never over a socket that still listens).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use ({holder(host, port)}): stop it or "
                f"choose another with {option}") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"port {port} on {host} needs more privileges than this user "
                              f"has: choose one above 1023 with {option}") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--host {host} is not an address of this machine: give one "
                              "such as 127.0.0.1") from None
        raise
    return sock


def holder(host: str, port: int) -> str:
    """Who probably holds host:port: one of our servers by its Server header, else unknown."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    try:
        conn = http.client.HTTPConnection(target, port, timeout=PROBE_TIMEOUT)
        try:
            conn.request("HEAD", "/healthz")
            server = conn.getresponse().getheader("Server") or ""
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return "by a program that is not one of ours, or not answering HTTP"
    command = _COMMANDS.get(server.strip())
    return f"probably `{command}`" if command else "by a web server that is not one of ours"


def serve(app: Flask, sock: socket.socket, limits: Limits, ident: str) -> None:
    """Serve ``app`` on a socket from :func:`listen` until interrupted."""
    from waitress import serve as waitress_serve

    # waitress names the path of a request whose connection broke: no token in the logs.
    redact_logger("waitress")
    waitress_serve(
        app, sockets=[sock], ident=ident,
        threads=limits.threads,
        connection_limit=limits.connection_limit,
        channel_timeout=limits.channel_timeout,
        cleanup_interval=limits.cleanup_interval,
        # poll(), not select(): select() cannot watch file descriptors above 1023.
        asyncore_use_poll=True,
        max_request_header_size=64 * 1024,
        max_request_body_size=MAX_BODY,
        # Behind nginx on this machine, the reader's address is the one nginx appends to
        # X-Forwarded-For (deploy/nginx.conf); the click counter tells scanners by it.
        trusted_proxy="127.0.0.1", trusted_proxy_headers={"x-forwarded-for"},
        trusted_proxy_count=1,
    )

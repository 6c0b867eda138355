"""Serve a web app with waitress, with limits that a few slow clients cannot exhaust.

waitress reads requests asynchronously and hands only complete ones to its threads, so idle
or slow connections cost a socket, not a thread; what they can exhaust is the connection
limit (100 by default), for as long as the inactivity timeout (120 s by default). Hence a
higher limit, a short timeout, and a reverse proxy that buffers (deploy/nginx.conf).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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


def serve(app: Flask, host: str, port: int, limits: Limits, ident: str) -> None:
    """Serve ``app`` on host:port until interrupted."""
    from waitress import serve as waitress_serve

    # waitress names the path of a request whose connection broke: no token in the logs.
    redact_logger("waitress")
    waitress_serve(
        app, host=host, port=port, ident=ident,
        threads=limits.threads,
        connection_limit=limits.connection_limit,
        channel_timeout=limits.channel_timeout,
        cleanup_interval=limits.cleanup_interval,
        # poll(), not select(): select() cannot watch file descriptors above 1023.
        asyncore_use_poll=True,
        max_request_header_size=64 * 1024,
        max_request_body_size=MAX_BODY,
    )

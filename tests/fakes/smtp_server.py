"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it received and misbehaves
on cue: per-recipient 4xx and 5xx replies, and a dropped connection."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Behaviour:
    """What the server does for addresses starting with a prefix."""

    tempfail_times: dict[str, int] = field(default_factory=dict)  # prefix -> 451 this many times
    reject: tuple[str, ...] = ()  # prefixes answered 550 5.1.1 at RCPT
    drop_data_once: tuple[str, ...] = ()  # prefixes whose first DATA drops the connection
    reject_data: tuple[str, ...] = ()  # prefixes whose message is refused 554 after DATA
    data_delay: float = 0.0  # seconds per message, to make a send last
    pipelining: bool = False  # advertise PIPELINING (RFC 2920), as Postfix does
    eight_bit_mime: bool = True  # advertise 8BITMIME (RFC 6152), as aiosmtpd does by default
    # While this event is not set, each DATA is answered only after up to a second (well
    # within a client's timeout): a send lasts until the test lets it go.
    hold: threading.Event | None = None


class RecordingHandler:
    """aiosmtpd handler: keeps every accepted message, answers as Behaviour says."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.received: list[tuple[str, bytes]] = []
        self.counts: Counter[str] = Counter()
        self.tempfailed: Counter[str] = Counter()
        self.dropped: set[str] = set()
        self.mail_options: dict[str, list[str]] = {}  # recipient -> its MAIL FROM parameters
        self.mail_from: dict[str, str] = {}  # recipient -> its envelope sender (MAIL FROM)
        self.lock = threading.Lock()

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.behaviour.pipelining:
            # aiosmtpd reads commands one line at a time, so pipelined ones just queue up.
            responses.insert(-1, "250-PIPELINING")
        if not self.behaviour.eight_bit_mime:
            responses = [r for r in responses if r != "250-8BITMIME"]
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:
        for prefix, times in self.behaviour.tempfail_times.items():
            if address.startswith(prefix) and self.tempfailed[address] < times:
                self.tempfailed[address] += 1
                return "451 4.7.1 Greylisted, try again later"
        if address.startswith(self.behaviour.reject):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for address in envelope.rcpt_tos:
            if address.startswith(self.behaviour.drop_data_once) and address not in self.dropped:
                self.dropped.add(address)
                server.transport.close()  # hang up without an answer
                return "421 closing"
        if self.behaviour.reject_data and any(
                a.startswith(self.behaviour.reject_data) for a in envelope.rcpt_tos):
            return "554 5.7.1 Message refused: content looks like spam"
        if self.behaviour.data_delay:
            time.sleep(self.behaviour.data_delay)
        if self.behaviour.hold is not None:
            await asyncio.to_thread(self.behaviour.hold.wait, 1.0)  # the loop serves others
        with self.lock:
            for address in envelope.rcpt_tos:
                self.received.append((address, envelope.content))
                self.mail_options[address] = list(envelope.mail_options)
                self.mail_from[address] = envelope.mail_from
                self.counts[address] += 1
        return "250 2.0.0 Ok: queued"

    def message_for(self, address: str) -> Any:
        """The parsed message received for an address."""
        raw = next(content for rcpt, content in self.received if rcpt == address)
        return message_from_bytes(raw, policy=policy.default)


class _BoundController(Controller):
    """aiosmtpd's Controller on a socket bound beforehand (port 0): no other process can take
    the port between choosing it and listening on it."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock,
                                       ssl=self.ssl_context)


@contextmanager
def smtp_server(behaviour: Behaviour | None = None) -> Iterator[tuple[int, RecordingHandler]]:
    """Run the server for the duration of the block; yield its port and handler."""
    handler = RecordingHandler(behaviour or Behaviour())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # ready_timeout: aiosmtpd's 1 s default is not enough on a loaded machine.
    controller = _BoundController(handler, sock, data_size_limit=10 * 1024 * 1024,
                                  ready_timeout=30)
    try:
        controller.start()
    except BaseException:
        sock.close()
        raise
    try:
        yield controller.port, handler
    finally:
        controller.stop()

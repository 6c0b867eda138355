"""A hostile IMAP server on 127.0.0.1: it logs anyone in, shows one message, and answers the
FETCH of it with a literal far bigger than was asked, or with untagged OKs that never end (or
answers LOGIN so).

Just enough IMAP4rev1 for imapclient (CAPABILITY, LOGIN, SELECT/EXAMINE, UID SEARCH, UID
FETCH, LIST, CREATE, UID MOVE, LOGOUT); anything else is answered OK.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

CAPABILITIES = b"IMAP4rev1 MOVE UIDPLUS"
HEADERS = b"From: someone@example.net\r\nSubject: junk\r\nMessage-ID: <junk@example.net>\r\n\r\n"
_CHUNK = 1 << 20


@dataclass
class Hostility:
    """What the server does when the message is fetched."""

    literal_bytes: int = 0  # > 0: a literal of this many bytes, whatever was asked
    endless: bool = False  # an untagged OK after another, for as long as the client listens
    endless_login: bool = False  # the same, in answer to LOGIN
    padding: int = 0  # bytes of text in each of those OKs
    # The command it answers without end came (a FETCH, or LOGIN with endless_login).
    fetching: threading.Event = field(default_factory=threading.Event)
    sent: int = 0  # bytes of literal sent


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def send(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def handle(self) -> None:
        how = self.server.hostility
        try:
            self.send(b"* OK [CAPABILITY " + CAPABILITIES + b"] hostile ready\r\n")
            while True:
                line = self.rfile.readline(65536)
                if not line:
                    return
                tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                command = rest.upper()
                if command.startswith(b"LOGIN") and how.endless_login:
                    how.fetching.set()
                    self._endless()
                    return
                if command.startswith(b"CAPABILITY"):
                    self.send(b"* CAPABILITY " + CAPABILITIES + b"\r\n")
                elif command.startswith((b"SELECT", b"EXAMINE")):
                    self.send(b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n")
                elif command.startswith(b"UID SEARCH"):
                    self.send(b"* SEARCH 1\r\n")
                elif command.startswith(b"UID FETCH"):
                    how.fetching.set()
                    if how.endless:
                        self._endless()
                        return
                    self._literal(how)
                elif command.startswith(b"LOGOUT"):
                    self.send(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                    return
                self.send(tag + b" OK done\r\n")
        except OSError:
            return  # the client went away: what a hostile server expects

    def _endless(self) -> None:
        stop = self.server.closing
        line = b"* OK still working on it" + b"." * self.server.hostility.padding + b"\r\n"
        while not stop.wait(0 if self.server.hostility.padding else 0.05):
            self.send(line)

    def _literal(self, how: Hostility) -> None:
        size = how.literal_bytes
        self.send(b'* 1 FETCH (UID 1 INTERNALDATE "07-Dec-2026 10:00:00 +0000" BODY[]<0> {'
                  + str(size).encode() + b"}\r\n")
        self.send(HEADERS)
        left = size - len(HEADERS)
        block = b"x" * 76 + b"\r\n"
        chunk = block * (_CHUNK // len(block))
        while left > 0:
            piece = chunk[:left]
            self.wfile.write(piece)
            left -= len(piece)
            how.sent += len(piece)
        self.send(b")\r\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hostility: Hostility) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hostility = hostility
        self.closing = threading.Event()


@contextmanager
def hostile_imap(hostility: Hostility) -> Iterator[int]:
    """Run the server for the block; yield its port."""
    server = _Server(hostility)
    thread = threading.Thread(target=server.serve_forever, name="hostile-imap", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()

"""A counting SMTP sink on 127.0.0.1 (aiosmtpd), for a bench's --smoke run without smtp-sink.

    python bench/_smtp_sink.py COUNTS_FILE

Prints its port on the first line of stdout once it listens; after each message it appends
``mesg=N`` (the running count, as Postfix's smtp-sink -c writes it) to COUNTS_FILE, before
answering 250, so a sender that got its answer finds the message counted. Runs until
terminated. Slower than smtp-sink (Python): its figures say the bench works, not how fast.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from typing import Any

from aiosmtpd.controller import Controller


class Counter:
    """aiosmtpd handler: count each message, write the count, accept."""

    def __init__(self, path: str) -> None:
        self.count = 0
        self.out = open(path, "a", encoding="ascii")  # noqa: SIM115 - open for the run
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
            self.out.write(f"mesg={self.count}\n")
            self.out.flush()
        return "250 2.0.0 Ok: queued"


class BoundController(Controller):
    """Listens on a socket bound to port 0 beforehand: the port cannot be taken meanwhile."""

    def __init__(self, handler: Any, sock: socket.socket) -> None:
        self.sock = sock
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1],
                         ready_timeout=30, data_size_limit=0)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self.sock)


def main() -> None:
    """Serve until SIGTERM or SIGINT."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    controller = BoundController(Counter(sys.argv[1]), sock)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(controller.port, flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()

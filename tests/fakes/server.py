"""A small JSON HTTP server on 127.0.0.1 for fake APIs, with scripted faults and counters.

A fake API is an object with ``handle(request) -> Reply``. :class:`FakeServer` serves it from
a thread (tests) or the foreground (``serve_forever``, for benchmarks in a subprocess).
Faults queued with :meth:`FakeApi.inject` replace the next answers: an error status, a 429,
a body that is not JSON, or a slow answer.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PASS = object()  # a fault whose answer is the normal one, only slower
# Called with (request, reply, scripted) for every request any fake answers; the test
# session's spec check (tests/specs/plugin.py) listens here. ``scripted`` marks an injected
# fault, whose answer is deliberately wrong and so is not held to the vendor's spec.
WATCHERS: list[Callable[[Request, Reply, bool], None]] = []


@dataclass
class Request:
    """What the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


@dataclass
class Reply:
    """What the fake answers; ``raw`` bytes are sent as they are (e.g. a broken body)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    delay: float = 0.0
    drop: bool = False  # close the connection without answering (a connection lost)


@dataclass
class Fault:
    """A scripted answer for the next request whose path starts with ``path``."""

    reply: Reply | object
    path: str = ""
    delay: float = 0.0


class FakeApi:
    """Base of fake APIs: fault injection, a request hook and counters; subclasses route."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults: deque[Fault] = deque()
        self.counts: Counter[str] = Counter()
        self.log: deque[Request] = deque(maxlen=1000)  # bounded: benchmarks make many calls
        self.before: Callable[[Request], None] | None = None

    def inject(self, *replies: Reply | object, path: str = "", delay: float = 0.0) -> None:
        """Answer the next requests (on ``path``) with these replies, in order."""
        with self.lock:
            self.faults.extend(Fault(r, path, delay) for r in replies)

    def dispatch(self, request: Request) -> Reply:
        """Count, run the hook, apply a pending fault or route the request."""
        with self.lock:
            self.counts["requests"] += 1
            self.counts[f"{request.method} {request.path}"] += 1
            self.log.append(request)
            fault = next((f for f in self.faults if request.path.startswith(f.path)), None)
            if fault is not None:
                self.faults.remove(fault)
        if self.before is not None:
            self.before(request)
        if fault is not None and fault.reply is not PASS:
            reply = fault.reply
            assert isinstance(reply, Reply)
        else:
            reply = self.handle(request)
        if fault is not None:
            reply.delay = max(reply.delay, fault.delay)
        for watch in WATCHERS:
            watch(request, reply, fault is not None and fault.reply is not PASS)
        if reply.status == 429:
            with self.lock:
                self.counts["429"] += 1
        return reply

    def handle(self, request: Request) -> Reply:
        """Answer one request; subclasses implement the API."""
        raise NotImplementedError

    def requests_to(self, method: str, path: str) -> list[Request]:
        """The logged requests for one endpoint, oldest first."""
        with self.lock:
            return [r for r in self.log if r.method == method and r.path == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse their connection
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK stall every answer by ~40 ms.
    disable_nagle_algorithm = True
    api: FakeApi

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read the fake's own log

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = data
        request = Request(
            method=self.command,
            path=parts.path,
            query={k: v[-1] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        reply = self.api.dispatch(request)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True  # the client reads no status line: connection lost
            return
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer to


class _Httpd(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections, to settle and stop cleanly."""

    daemon_threads = True  # stop() waits for them itself, having woken the idle ones

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        # Guards ``connections``; notified whenever one ends.
        self.busy = threading.Condition()
        self.connections: set[socket.socket] = set()

    def get_request(self) -> tuple[socket.socket, Any]:
        # Accepted and counted under the lock: settle() never sees a connection that has
        # left the listening queue without being counted yet.
        with self.busy:
            conn, address = super().get_request()
            self.connections.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        # Called from the connection's own thread once it has answered its last request.
        super().shutdown_request(request)
        with self.busy:
            self.connections.discard(request)
            self.busy.notify_all()

    def wait_idle(self, timeout: float, backlog: bool = True) -> bool:
        """Wait until no connection is open (nor, with ``backlog``, waiting to be accepted);
        whether that happened in time."""
        deadline = time.monotonic() + timeout
        with self.busy:
            while True:
                waiting = backlog and select.select([self.socket], [], [], 0)[0]
                if not waiting and not self.connections:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Woken when a connection ends; a short wait covers one still to be accepted.
                self.busy.wait(min(remaining, 0.02))


class FakeServer:
    """Serve a fake API on 127.0.0.1, on a free port."""

    def __init__(self, api: FakeApi, port: int = 0) -> None:
        handler = type("Handler", (_Handler,), {"api": api})
        self.api = api
        self.httpd = _Httpd(("127.0.0.1", port), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    def start(self) -> FakeServer:
        """Serve from a background thread."""
        # A short poll keeps stop() quick: shutdown waits for the loop's next turn.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every request that reached the fake is answered and counted.

        For a client that was killed: requests it had sent may still be read after its death.
        """
        if not self.httpd.wait_idle(timeout):
            raise AssertionError(f"the fake still had open connections after {timeout:.0f} s")

    def stop(self) -> None:
        """Stop serving, finish the answers under way, and free the port."""
        self.httpd.shutdown()
        if self._thread is not None:
            self._thread.join()
        # Idle keep-alive connections would wait for their client's next request: end them.
        with self.httpd.busy:
            for conn in list(self.httpd.connections):
                with contextlib.suppress(OSError):  # already gone
                    conn.shutdown(socket.SHUT_RD)
        # A thread still answering after this would run its spec checks after the test.
        settled = self.httpd.wait_idle(30, backlog=False)
        self.httpd.server_close()
        if not settled:
            raise AssertionError("the fake still had open connections after 30 s")


@contextmanager
def serving(api: FakeApi) -> Iterator[FakeServer]:
    """Run the fake in a thread for the duration of the block."""
    server = FakeServer(api).start()
    try:
        yield server
    finally:
        server.stop()


def iso(ms: int) -> str:
    """Epoch milliseconds as the ISO 8601 text both APIs use."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def wall_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(time.time() * 1000)


class Clock:
    """Epoch milliseconds that never repeat, so every change gets a later date.

    Many calls within one millisecond run ahead of the wall clock: fine for search order,
    wrong where the client compares dates with its own clock (use :func:`wall_ms` there).
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(int(time.time() * 1000), self._last + 1)
            return self._last

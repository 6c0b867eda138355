"""A minimal, fast HTTP sink shaped like Brevo's transactional API, for bench_send.py.

    python bench/_brevo_sink.py [--key KEY]     # prints its base URL on the first line

Runs in its own process so that its CPU is not counted as the sender's. It answers
``POST /v3/smtp/email`` the way Brevo does for a batch: 201 with one message id per entry of
``messageVersions`` (or ``{"messageId": ...}`` for a single message), 401 without the API key,
400 for a malformed body or a batch beyond Brevo's limits (1,000 versions, 99 recipients per
version), and 400 ``duplicate_parameter`` for an idempotency key it has already seen. It
keeps nothing but counters, readable at ``GET /__stats``. Not a correctness fake: the tests
have their own.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/v3/smtp/email"
MAX_VERSIONS = 1000
MAX_RECIPIENTS = 99


class Sink:
    """Counters and seen idempotency keys, shared by the handler threads."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.keys: set[str] = set()
        self.stats = {"requests": 0, "accepted": 0, "versions": 0, "bytes": 0, "refused": 0,
                      "duplicates": 0}

    def answer(self, headers: Any, data: bytes) -> tuple[int, dict[str, Any]]:
        """Check one send request; return the status and JSON body Brevo would."""
        with self.lock:
            self.stats["requests"] += 1
            self.stats["bytes"] += len(data)
        if headers.get("api-key") != self.key:
            return self._refuse(401, "unauthorized", "Key not found")
        try:
            body = json.loads(data)
        except ValueError:
            return self._refuse(400, "bad_request", "Invalid JSON")
        if not isinstance(body, dict):
            return self._refuse(400, "bad_request", "Expected an object")
        if not (body.get("htmlContent") or body.get("textContent")) or not body.get("sender"):
            return self._refuse(400, "missing_parameter", "sender and content are required")
        versions = body.get("messageVersions")
        if versions is not None:
            if not isinstance(versions, list) or not 1 <= len(versions) <= MAX_VERSIONS:
                return self._refuse(400, "invalid_parameter", "messageVersions: 1 to 1000")
            for version in versions:
                to = version.get("to") if isinstance(version, dict) else None
                if not isinstance(to, list) or not 1 <= len(to) <= MAX_RECIPIENTS:
                    return self._refuse(400, "invalid_parameter", "to: 1 to 99 recipients")
        elif not body.get("to"):
            return self._refuse(400, "missing_parameter", "to is required")
        key = (body.get("headers") or {}).get("idempotencyKey")
        count = len(versions) if versions is not None else 1
        with self.lock:
            if key is not None:
                if key in self.keys:
                    self.stats["duplicates"] += 1
                    return 400, {"code": "duplicate_parameter",
                                 "message": "idempotency key already used"}
                self.keys.add(key)
            first = next(self.ids)
            # Advance the shared counter past this batch's ids.
            for _ in range(count - 1):
                next(self.ids)
            self.stats["accepted"] += 1
            self.stats["versions"] += count
        ids = [f"<2025{first + i:012d}.bench@smtp-relay.mailin.fr>" for i in range(count)]
        if versions is None:
            return 201, {"messageId": ids[0]}
        return 201, {"messageIds": ids}

    def _refuse(self, status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.stats["refused"] += 1
        return status, {"code": code, "message": message}


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no Nagle delay (headers and body are written separately)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    sink: Sink

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/__stats":
            with self.sink.lock:
                self._reply(200, dict(self.sink.stats))
        else:
            self._reply(404, {"code": "not_found", "message": self.path})

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != PATH:
            self._reply(404, {"code": "not_found", "message": self.path})
            return
        self._reply(*self.sink.answer(self.headers, data))

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main() -> None:
    """Serve on 127.0.0.1 until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", default="bench-brevo-key")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    handler = type("BoundHandler", (Handler,), {"sink": Sink(args.key)})
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

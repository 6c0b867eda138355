"""A SendGrid-shaped Mail Send API: POST /v3/mail/send, as the SendGrid transport uses it.

It checks the bearer key, takes up to 1,000 personalizations per request, fills the
substitution tags of each, and records every message it takes, recipient by recipient.
SendGrid has no idempotency key: a request taken twice is delivered twice, which is what the
tests that count messages look for.

Faults, besides those of :class:`~tests.fakes.server.FakeApi`: 4xx refusals, 429s with
Retry-After, 5xx, an answer lost after the request was taken (slow or dropped), and a
connection dropped before anything was taken.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import PASS, FakeApi, Reply, Request

API_KEY = "SG.fake-test-key.0123456789abcdef"
SEND = "/v3/mail/send"
MAX_PERSONALIZATIONS = 1000


def _errors(status: int, message: str) -> Reply:
    return Reply(status, {"errors": [{"message": message, "field": None, "help": None}]})


@dataclass(frozen=True)
class Delivered:
    """One message the fake took."""

    recipient: str
    subject: str
    message_id: str


class FakeSendGridEmail(FakeApi):
    """SendGrid's Mail Send endpoint with scripted faults; counts what it takes."""

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.delivered: list[Delivered] = []
        self.accepted = 0  # requests taken (202)
        self.after_taking: list[Reply] = []
        self.bodies: list[dict[str, Any]] = []  # every request body taken, as sent
        self._ids = itertools.count(1)

    # Faults ------------------------------------------------------------------------------

    def refuse(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` sends with a 4xx refusal (nothing is taken)."""
        self.inject(*[_errors(status, f"refused for the test ({status})")
                      for _ in range(times)], path=SEND)

    def rate_limit(self, times: int = 1, retry_after: float = 1) -> None:
        """Answer the next ``times`` sends 429 with Retry-After (nothing is taken)."""
        self.inject(*[Reply(429, {"errors": [{"message": "too many requests"}]},
                            {"Retry-After": f"{retry_after:g}"}) for _ in range(times)],
                    path=SEND)

    def server_error(self, times: int = 1, status: int = 500) -> None:
        """Answer the next ``times`` sends with a 5xx (nothing is taken)."""
        self.inject(*[_errors(status, "internal error") for _ in range(times)], path=SEND)

    def drop(self, times: int = 1) -> None:
        """Close the connection of the next ``times`` sends without taking nor answering."""
        self.inject(*[Reply(drop=True) for _ in range(times)], path=SEND)

    def slow(self, delay: float, times: int = 1) -> None:
        """Take the next ``times`` sends as usual, then answer only after ``delay`` s."""
        self.inject(*[PASS] * times, path=SEND, delay=delay)

    def fail_after_taking(self, times: int = 1, status: int = 500) -> None:
        """Take the next ``times`` sends, then answer a 5xx (status 0: drop the connection)."""
        with self.lock:
            for _ in range(times):
                self.after_taking.append(Reply(drop=True) if status == 0
                                         else _errors(status, "internal error"))

    # What it took ------------------------------------------------------------------------

    def received(self) -> Counter[str]:
        """How many messages each recipient got."""
        with self.lock:
            return Counter(d.recipient for d in self.delivered)

    # The API -----------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Route one request."""
        if request.method != "POST" or request.path != SEND:
            return _errors(404, f"no route {request.method} {request.path}")
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _errors(401, "The provided authorization grant is invalid, expired, or "
                                "revoked")
        body = request.body
        people = body.get("personalizations") if isinstance(body, dict) else None
        if not isinstance(people, list) or not 1 <= len(people) <= MAX_PERSONALIZATIONS:
            return _errors(400, "personalizations: between 1 and 1000 are required")
        with self.lock:
            message_id = f"fake{next(self._ids)}.{int(time.time())}"
            self.bodies.append(body)
            for person in people:
                for to in person.get("to") or []:
                    self.delivered.append(Delivered(str(to.get("email")),
                                                    str(body.get("subject", "")), message_id))
            self.accepted += 1
            if self.after_taking:
                return self.after_taking.pop(0)
        return Reply(202, raw=b"", headers={"X-Message-Id": message_id})



"""Helpers for adapter tests: recorded sleeps, fast retry policies, and fakes behind `responses`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from clubjapon_ops.http.client import RetryPolicy
from tests.fakes.server import FakeApi, Request

# Real backoff shape, tiny scale: waits are recorded, never slept.
FAST = RetryPolicy(attempts=4, total_s=600.0, initial_wait_s=1.0, max_wait_s=8.0, jitter_s=0.0)


class Sleeps(list[float]):
    """A stand-in for time.sleep that records each wait instead of sleeping.

    ``clock`` is a matching virtual monotonic clock: it moves only by the recorded waits,
    so pacing can be checked exactly, however long the real calls take.
    """

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    def clock(self) -> float:
        return sum(self)


@pytest.fixture
def sleeps() -> Sleeps:
    """Recorded waits."""
    return Sleeps()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """A `responses` mock that fails the test if a registered answer was never asked for."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def bridge(api: FakeApi) -> Callable[[requests.PreparedRequest], tuple[int, dict[str, str], bytes]]:
    """A `responses` callback that answers as the fake API would (no socket involved)."""

    def answer(prepared: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(prepared.url or "")
        body: Any = None
        if prepared.body:
            raw = prepared.body if isinstance(prepared.body, bytes) else prepared.body.encode()
            body = json.loads(raw)
        request = Request(
            method=prepared.method or "GET",
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            headers={k.lower(): v for k, v in prepared.headers.items()},
            body=body,
        )
        reply = api.dispatch(request)
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        return reply.status, dict(reply.headers), payload

    return answer


def json_reply(status: int, body: Any, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """A canned answer for a `responses` callback."""
    return status, dict(headers), json.dumps(body).encode()

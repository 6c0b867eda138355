"""The one HTTP layer: what is retried, how long it waits, what stops at once, what is logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests
import responses

from clubjapon_ops.errors import AuthError, SourceError
from clubjapon_ops.http.client import Api, HttpClient, MalformedPage, RetryPolicy
from tests.adapters.conftest import FAST, Sleeps, json_reply

BASE = "https://api.example.test"
SECRET = "sk-live-0123456789abcdef"


def client(sleeps: Sleeps, retry: RetryPolicy = FAST, timeout: float = 7.0) -> HttpClient:
    api = Api(name="Example", base_url=BASE, auth_headers={"Authorization": f"Bearer {SECRET}"},
              auth_setting="EXAMPLE_TOKEN", secrets=(SECRET,))
    return HttpClient(api, timeout=timeout, retry=retry, sleep=sleeps)


def as_dict(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise MalformedPage("the answer is not an object")
    return document


def script(mocked: responses.RequestsMock, *answers: Any) -> None:
    """Answer successive GET /things with these (status, body, headers) or exceptions."""
    queue = list(answers)

    def answer(_request: requests.PreparedRequest) -> Any:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        status, body, headers = item
        if isinstance(body, bytes):
            return status, headers, body
        return json_reply(status, body, **headers)

    mocked.add_callback(responses.GET, f"{BASE}/things", callback=answer)


OK = (200, {"ok": True}, {})


@pytest.mark.parametrize(
    ("failures", "expected_waits"),
    [
        ([(429, {"message": "slow down"}, {"Retry-After": "7"})], [7.0]),
        ([(429, {"message": "slow down"}, {})], [1.0]),
        ([(500, {}, {}), (502, {}, {}), (503, {}, {})], [1.0, 2.0, 4.0]),
        ([requests.ConnectTimeout("connect timed out")], [1.0]),
        ([requests.ReadTimeout("read timed out")], [1.0]),
        ([requests.ConnectionError("connection refused")], [1.0]),
        ([(200, b"<html>Bad gateway</html>", {})], [1.0]),
        ([(200, [1, 2], {})], [1.0]),
    ],
    ids=["429-with-retry-after", "429-without-retry-after-backs-off", "three-5xx",
         "connect-timeout", "read-timeout", "connection-refused", "body-not-json",
         "body-wrong-shape"],
)
def test_transient_failures_are_retried_then_succeed(
    mocked: responses.RequestsMock, sleeps: Sleeps, failures: list[Any],
    expected_waits: list[float],
) -> None:
    script(mocked, *failures, OK)
    assert client(sleeps).get("/things", as_dict) == {"ok": True}
    assert len(mocked.calls) == len(failures) + 1
    assert sleeps == expected_waits


def test_backoff_has_jitter_and_a_ceiling(mocked: responses.RequestsMock, sleeps: Sleeps) -> None:
    policy = RetryPolicy(attempts=8, total_s=600, initial_wait_s=1, max_wait_s=5, jitter_s=0.5)
    script(mocked, *[(503, {}, {})] * 7, OK)
    client(sleeps, policy).get("/things", as_dict)
    bases = [1, 2, 4, 5, 5, 5, 5]
    assert all(base <= wait <= base + 0.5 for base, wait in zip(bases, sleeps, strict=True))
    assert len(set(sleeps)) > 1


def test_every_retry_is_logged_with_attempt_status_and_wait(
    mocked: responses.RequestsMock, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    script(mocked, (503, {}, {}), (429, {}, {"Retry-After": "3"}), OK)
    with caplog.at_level(logging.WARNING, logger="clubjapon_ops"):
        client(sleeps).get("/things", as_dict)
    retried = [r for r in caplog.records if r.getMessage() == "api call retried"]
    assert [(r.attempt, r.status, r.wait_s) for r in retried] == [  # type: ignore[attr-defined]
        (1, 503, 1.0), (2, 429, 3.0)]


@pytest.mark.parametrize(
    ("failure", "message"),
    [((503, {}, {}), "server error (HTTP 503)"),
     ((200, b"{not json", {}), "the answer is not JSON"),
     (requests.ReadTimeout("read timed out"), "no answer within 7 s")],
    ids=["5xx", "invalid-json", "timeout"],
)
def test_gives_up_after_the_attempts_with_a_clear_error(
    mocked: responses.RequestsMock, sleeps: Sleeps, failure: Any, message: str
) -> None:
    script(mocked, *[failure] * FAST.attempts)
    with pytest.raises(SourceError, match="gave up after 4 attempts") as info:
        client(sleeps).get("/things", as_dict)
    assert message in str(info.value)
    assert "nothing from this call was saved" in str(info.value)
    assert len(mocked.calls) == FAST.attempts


def test_a_wait_longer_than_the_time_bound_stops_without_waiting(
    mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    script(mocked, (429, {}, {"Retry-After": "3600"}))
    with pytest.raises(SourceError, match="asked us to wait 3600 s"):
        client(sleeps, RetryPolicy(attempts=5, total_s=300)).get("/things", as_dict)
    assert sleeps == [] and len(mocked.calls) == 1


@pytest.mark.parametrize("status", [401, 403], ids=["401", "403"])
def test_refused_credentials_are_fatal_name_the_setting_and_hide_the_secret(
    mocked: responses.RequestsMock, sleeps: Sleeps, status: int
) -> None:
    script(mocked, (status, {"message": f"Bad token Bearer {SECRET}"}, {}))
    with pytest.raises(AuthError) as info:
        client(sleeps).get("/things", as_dict)
    assert "check EXAMPLE_TOKEN" in str(info.value)
    assert SECRET not in str(info.value)
    assert len(mocked.calls) == 1 and sleeps == []


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_client_errors_are_not_retried(
    mocked: responses.RequestsMock, sleeps: Sleeps, status: int
) -> None:
    script(mocked, (status, {"message": f"invalid filter, token {SECRET}"}, {}))
    with pytest.raises(SourceError, match=f"HTTP {status}: invalid filter") as info:
        client(sleeps).get("/things", as_dict)
    assert SECRET not in str(info.value)
    assert len(mocked.calls) == 1


def test_every_call_has_a_timeout_a_user_agent_and_reuses_the_session(
    mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    script(mocked, (503, {}, {}), OK, OK)
    http = client(sleeps, timeout=4.5)
    http.get("/things", as_dict)
    http.get("/things", as_dict)
    assert [c.request.req_kwargs["timeout"] for c in mocked.calls] == [4.5, 4.5, 4.5]
    agents = {c.request.headers["User-Agent"] for c in mocked.calls}
    assert len(agents) == 1 and agents.pop().startswith("clubjapon-ops/")
    assert http.stats.requests == 3 and http.stats.retries == 1


def test_secrets_stay_out_of_retry_logs(
    mocked: responses.RequestsMock, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    script(mocked, (503, {"message": SECRET}, {}), OK)
    with caplog.at_level(logging.DEBUG, logger="clubjapon_ops"):
        client(sleeps).get("/things", as_dict)
    assert SECRET not in caplog.text
    assert all(SECRET not in str(vars(r)) for r in caplog.records)

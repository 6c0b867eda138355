"""Every request a test makes to HubSpot, Brevo or SendGrid is checked against their specs.

Requests are seen where the tests' fakes receive them: the loopback fakes (and `responses`
callbacks bridged to them) through ``tests.fakes.server.WATCHERS``, and any other request
answered by `responses`. After a test's body has run, what it sent is validated
(tests/specs/validator.py) and a non-conforming request fails that test with
:class:`SpecViolation`, in the call phase, so ``xfail(raises=SpecViolation, strict=True)``
can name a known non-conformity and flip when it is fixed. The fakes' own normal answers are
validated too, so a fake cannot drift from what the vendor answers.

A test that sends off-spec requests on purpose says so with ``@pytest.mark.spec_exempt``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from tests.fakes import server
from tests.specs.validator import SpecViolation, check_request, check_response

ANSWERS_PER_ENDPOINT = 5


def _sample(document: Any, keep: int = 3) -> Any:
    """The answer with each list cut to its first items: a fake makes them all alike."""
    if isinstance(document, list):
        return [_sample(v, keep) for v in document[:keep]]
    if isinstance(document, dict):
        return {k: _sample(v, keep) for k, v in document.items()}
    return document


class Recorder:
    """The requests (and fake answers) of the running test, checked when its body is done.

    Recording is an append, so a fake answers as fast as before (pacing tests time it);
    the validation runs after the test's body, each distinct request once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._answers: list[tuple[str, str, int, Any]] = []

    def clear(self) -> None:
        """Forget the previous test's requests."""
        with self._lock:
            self._requests, self._answers = [], []

    def request(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        """Note one request."""
        with self._lock:
            self._requests.append((method, path, query, body))

    def answer(self, method: str, path: str, status: int, body: Any) -> None:
        """Note one answer of a fake."""
        with self._lock:
            self._answers.append((method, path, status, body))

    def problems(self) -> list[str]:
        """What the vendors' specs say is wrong with the noted requests and answers."""
        with self._lock:
            requests_, answers = list(self._requests), list(self._answers)
        found: list[str] = []
        seen: set[str] = set()
        for method, path, query, body in requests_:
            # A request bridged from `responses` to a fake is noted twice, and a retried one
            # is the same request: each distinct request is checked once.
            key = json.dumps([method, path, query, body], sort_keys=True, default=repr)
            if key not in seen:
                seen.add(key)
                found += _checked(key, method, path, query, body)
        checked: dict[tuple[str, str], int] = {}
        for method, path, status, body in answers:
            # A fake builds every answer of an endpoint the same way: a few per endpoint
            # tell whether it drifted, and a sync of thousands of contacts stays quick.
            checked[method, path] = checked.get((method, path), 0) + 1
            if checked[method, path] > ANSWERS_PER_ENDPOINT:
                continue
            found += [f"fake's {p}"
                      for p in check_response(method, path, status, _sample(body))]
        return list(dict.fromkeys(found))


_VERDICTS: dict[str, list[str]] = {}  # tests that send alike bodies share one verdict
_MAX_VERDICTS = 4096


def _checked(key: str, method: str, path: str, query: dict[str, str], body: Any) -> list[str]:
    verdict = _VERDICTS.get(key)
    if verdict is None:
        verdict = check_request(method, path, query, body)
        if len(_VERDICTS) >= _MAX_VERDICTS:
            _VERDICTS.clear()
        _VERDICTS[key] = verdict
    return verdict


RECORDER = Recorder()


def _from_fake(request: server.Request, reply: server.Reply, scripted: bool) -> None:
    RECORDER.request(request.method, request.path, dict(request.query), request.body)
    if not scripted and reply.raw is None and 200 <= reply.status < 300:
        RECORDER.answer(request.method, request.path, reply.status, reply.body)


def _from_responses(prepared: requests.PreparedRequest) -> None:
    parts = urlsplit(prepared.url or "")
    body: Any = prepared.body
    if isinstance(body, bytes | str):
        # Not JSON: left as it is, and the schema then says what is wrong with it.
        with contextlib.suppress(ValueError):
            body = json.loads(body)
    RECORDER.request(prepared.method or "GET", parts.path,
                     dict(parse_qsl(parts.query, keep_blank_values=True)), body)


def _install() -> None:
    server.WATCHERS.append(_from_fake)
    original = responses.RequestsMock._on_request

    def on_request(self: responses.RequestsMock, adapter: Any, request: requests.PreparedRequest,
                   *args: Any, **kwargs: Any) -> Any:
        _from_responses(request)
        return original(self, adapter, request, *args, **kwargs)

    responses.RequestsMock._on_request = on_request  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "spec_exempt(reason): this test sends off-spec vendor requests on purpose")
    _install()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    RECORDER.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    result = yield  # a test that failed on its own keeps its own failure
    problems = [] if item.get_closest_marker("spec_exempt") else RECORDER.problems()
    if problems:
        raise SpecViolation(
            "requests (or fake answers) that the vendor's specification does not allow "
            "(tests/specs):\n  " + "\n  ".join(problems[:20])
            + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""))
    return result

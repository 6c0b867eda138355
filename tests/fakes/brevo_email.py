"""A Brevo-shaped transactional email API: POST /v3/smtp/email, as the Brevo transport uses it.

It checks the ``api-key`` header, validates the batch within Brevo's documented limits
(1,000 message versions per call, 99 recipients per version, 1,000 KB of params in all,
70 characters per recipient name),
fills ``{{ params.x }}`` in the subject, both parts and the headers of each version, and
records every message it takes, recipient by recipient. An idempotency key
(``headers.idempotencyKey``) is remembered for its TTL: the same key again answers
400 ``duplicate_parameter`` and delivers nothing.

Faults, besides those of :class:`~tests.fakes.server.FakeApi`: 429s with Retry-After, 5xx,
an answer delayed after the delivery was recorded (a client timeout then loses the answer
of a send that went through), and a request held open after recording until released (for
killing the sender while it waits).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import PASS, FakeApi, Reply, Request

API_KEY = "xkeysib-email-test-0123456789abcdef"
SEND = "/v3/smtp/email"
MAX_VERSIONS = 1000
MAX_RECIPIENTS = 99
MAX_PARAMS_BYTES = 1000 * 1024
# "Name of the recipient. Maximum allowed characters are 70." (getbrevo/brevo-python@c280e37,
# docs/SendSmtpEmailTo1.md, the messageVersions[].to[] item)
MAX_NAME = 70
# "The TTL for idempotencyKey is 30 minutes." (developers.brevo.com/docs/heterogenous-versions-
# batch-emails; Brevo's changelog once said 15, which the sender's margin also covers)
KEY_TTL_S = 30 * 60.0
_PARAM = re.compile(r"\{\{\s*params\.([A-Za-z0-9_]+)\s*\}\}")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def fill(text: str, params: dict[str, str]) -> str:
    """Replace each ``{{ params.x }}`` with its value (empty when the version has none)."""
    return _PARAM.sub(lambda m: params.get(m.group(1), ""), text)


@dataclass(frozen=True)
class Delivered:
    """One message the fake took, as its recipient would get it.

    The parts are filled when read: a content shared by a thousand versions is kept once.
    """

    recipient: str
    name: str | None
    subject: str
    headers: dict[str, str]
    message_id: str
    idempotency_key: str | None
    tags: tuple[str, ...]
    params: dict[str, str]
    html_content: str
    text_content: str

    @property
    def html(self) -> str:
        """The HTML part with this version's values."""
        return fill(self.html_content, self.params)

    @property
    def text(self) -> str:
        """The text part with this version's values."""
        return fill(self.text_content, self.params)


class Invalid(Exception):
    """The request breaks one of Brevo's rules: answered 400 invalid_parameter."""


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"code": code, "message": message})


class FakeBrevoEmail(FakeApi):
    """Brevo's transactional email endpoint, with idempotency keys and scripted faults."""

    def __init__(
        self,
        api_key: str = API_KEY,
        *,
        key_ttl_s: float = KEY_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.key_ttl_s = key_ttl_s
        self.clock = clock
        self.delivered: list[Delivered] = []
        self.keys: dict[str, float] = {}  # idempotency key -> when it expires
        self.duplicates: list[str] = []  # keys answered duplicate_parameter
        self.invalid: list[str] = []  # why requests were answered invalid_parameter
        self.unfilled: list[str] = []  # placeholders without a value in their version
        self.accepted = 0  # send requests taken (201)
        # Answer every 201 with one messageId, as the example of Brevo's reference does
        # ({"messageId": "<201798300811.5787683@relay.domain.com>"}), versions or not.
        self.single_id_answers = False
        # Answers given after a request was taken (recorded as delivered): the sender then
        # cannot tell whether it went through.
        self.after_taking: list[Reply] = []
        self.hold_at: int | None = None
        self.holding = threading.Event()  # set while a taken request is held open
        self.released = threading.Event()
        self._ids = itertools.count(1)

    # Faults ------------------------------------------------------------------------------

    def rate_limit(self, times: int = 1, retry_after: float = 1) -> None:
        """Answer the next ``times`` sends 429 with Retry-After (nothing is taken)."""
        reply = _error(429, "too_many_requests", "The expected rate limit is exceeded.")
        reply.headers["Retry-After"] = f"{retry_after:g}"
        self.inject(*[Reply(429, reply.body, dict(reply.headers)) for _ in range(times)],
                    path=SEND)

    def server_error(self, times: int = 1, status: int = 500) -> None:
        """Answer the next ``times`` sends with a 5xx (nothing is taken)."""
        self.inject(*[_error(status, "internal_error", "Internal server error")
                      for _ in range(times)], path=SEND)

    def refuse(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` sends with a 4xx refusal of the whole request (nothing is
        taken): 400 invalid_parameter, 403 permission_denied, 422 unprocessable."""
        code = {400: "invalid_parameter", 401: "unauthorized", 403: "permission_denied",
                422: "unprocessable_entity"}.get(status, "bad_request")
        self.inject(*[_error(status, code, f"refused for the test ({status})")
                      for _ in range(times)], path=SEND)

    def fail_after_taking(self, times: int = 1, status: int = 500) -> None:
        """Take the next ``times`` sends, then answer them with a 5xx (status 0: drop the
        connection without an answer)."""
        with self.lock:
            for _ in range(times):
                self.after_taking.append(
                    Reply(drop=True) if status == 0
                    else _error(status, "internal_error", "Internal server error"))

    def drop(self, times: int = 1) -> None:
        """Close the connection of the next ``times`` sends without taking nor answering."""
        self.inject(*[Reply(drop=True) for _ in range(times)], path=SEND)

    def slow(self, delay: float, times: int = 1) -> None:
        """Take the next ``times`` sends as usual, then answer only after ``delay`` s."""
        self.inject(*[PASS] * times, path=SEND, delay=delay)

    def hold(self, at: int = 1) -> None:
        """Take the ``at``-th send request from now, then keep it open until :meth:`release`."""
        with self.lock:
            self.hold_at = self.accepted + at
            self.holding.clear()
            self.released.clear()

    def release(self) -> None:
        """Let a held request answer."""
        self.released.set()

    # What it took ------------------------------------------------------------------------

    def received(self) -> Counter[str]:
        """How many messages each recipient got."""
        with self.lock:
            return Counter(d.recipient for d in self.delivered)

    def message_for(self, email: str) -> Delivered:
        """The one message a recipient got (fails if none or several)."""
        with self.lock:
            found = [d for d in self.delivered if d.recipient == email]
        assert len(found) == 1, f"{email}: {len(found)} messages"
        return found[0]

    # The API -----------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Route one request."""
        if request.method != "POST" or request.path != SEND:
            return _error(404, "not_found", f"no route {request.method} {request.path}")
        if request.headers.get("api-key") != self.api_key:
            return _error(401, "unauthorized", "Key not found")
        body = request.body
        try:
            versions = self._versions(body)
        except Invalid as exc:
            with self.lock:
                self.invalid.append(str(exc))
            return _error(400, "invalid_parameter", str(exc))
        headers = dict(body.get("headers") or {})
        key = headers.pop("idempotencyKey", None)
        with self.lock:
            now = self.clock()
            if key is not None:
                if self.keys.get(str(key), -1.0) > now:
                    self.duplicates.append(str(key))
                    return _error(400, "duplicate_parameter",
                                  "Request with the same idempotency key already processed")
                self.keys[str(key)] = now + self.key_ttl_s
            ids = [self._deliver(body, version, headers, key) for version in versions]
            self.accepted += 1
            held = self.hold_at == self.accepted
            if self.after_taking:
                return self.after_taking.pop(0)
        if held:
            self.holding.set()
            self.released.wait(timeout=120)
        if "messageVersions" in body and not self.single_id_answers:
            return Reply(201, {"messageIds": ids})
        return Reply(201, {"messageId": ids[0]})

    def _versions(self, body: Any) -> list[dict[str, Any]]:
        """The versions of a request, checked against Brevo's rules."""
        if not isinstance(body, dict):
            raise Invalid("body must be a JSON object")
        sender = body.get("sender")
        if not isinstance(sender, dict) or not _EMAIL.match(str(sender.get("email", ""))):
            raise Invalid("sender.email is missing or invalid")
        if len(str(sender.get("name", ""))) > MAX_NAME:
            # "Maximum allowed characters are 70." (docs/SendSmtpEmailSender.md, same commit)
            raise Invalid("You can have max 70 character in sender name")
        if "messageVersions" in body:
            versions = body["messageVersions"]
            if not isinstance(versions, list) or not versions:
                raise Invalid("messageVersions must be a non-empty list")
            if len(versions) > MAX_VERSIONS:
                raise Invalid(f"messageVersions: {len(versions)} > {MAX_VERSIONS}")
        else:
            versions = [{"to": body.get("to"), "params": body.get("params")}]
        params_bytes = 0
        for n, version in enumerate(versions):
            if not isinstance(version, dict):
                raise Invalid(f"messageVersions[{n}] must be an object")
            to = version.get("to")
            if not isinstance(to, list) or not to:
                raise Invalid(f"messageVersions[{n}].to must be a non-empty list")
            if len(to) > MAX_RECIPIENTS:
                raise Invalid(f"messageVersions[{n}].to: {len(to)} > {MAX_RECIPIENTS}")
            for person in to:
                if not isinstance(person, dict) or not _EMAIL.match(str(person.get("email"))):
                    raise Invalid(f"messageVersions[{n}].to: invalid email")
                if any(c in str(person.get("name", "")) for c in "\r\n"):
                    raise Invalid(f"messageVersions[{n}].to: line break in a name")
                if len(str(person.get("name", ""))) > MAX_NAME:
                    # Brevo's own words (sendinblue/APIv3-go-library#29).
                    raise Invalid("You can have max 70 character in to name")
            params = version.get("params") or {}
            if not isinstance(params, dict):
                raise Invalid(f"messageVersions[{n}].params must be an object")
            params_bytes += len(json.dumps(params).encode())
        if params_bytes > MAX_PARAMS_BYTES:
            raise Invalid(f"params: {params_bytes} bytes in all > {MAX_PARAMS_BYTES}")
        for n, version in enumerate(versions):
            subject = version.get("subject") or body.get("subject")
            html = version.get("htmlContent") or body.get("htmlContent")
            text = version.get("textContent") or body.get("textContent")
            if not subject:
                raise Invalid(f"messageVersions[{n}]: subject is missing")
            if not (html or text):
                raise Invalid(f"messageVersions[{n}]: htmlContent or textContent is missing")
        return list(versions)

    def _deliver(self, body: dict[str, Any], version: dict[str, Any], headers: dict[str, Any],
                 key: Any) -> str:
        """Record the version's messages (lock held); return its message id."""
        params = {str(k): str(v) for k, v in (version.get("params") or {}).items()}
        subject = str(version.get("subject") or body.get("subject"))
        html = str(version.get("htmlContent") or body.get("htmlContent") or "")
        text = str(version.get("textContent") or body.get("textContent") or "")
        wanted = {m.group(1) for part in (subject, html, text, *map(str, headers.values()))
                  for m in _PARAM.finditer(part)}
        self.unfilled.extend(sorted(wanted - set(params)))
        message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{next(self._ids)}@smtp-relay.mailin.fr>"
        filled = {str(k): fill(str(v), params) for k, v in headers.items()}
        tags = tuple(str(t) for t in body.get("tags") or ())
        for person in version["to"]:
            self.delivered.append(Delivered(
                recipient=str(person["email"]), name=person.get("name"),
                subject=fill(subject, params), headers=filled, message_id=message_id,
                idempotency_key=None if key is None else str(key), tags=tags, params=params,
                html_content=html, text_content=text,
            ))
        return message_id

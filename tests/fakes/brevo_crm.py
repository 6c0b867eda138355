"""A fake Brevo API v3 contacts endpoint: limit/offset paging, modifiedSince, a fixed window.

``GET /v3/contacts`` answers ``{"contacts": [...], "count": N}`` sorted by creation
(``sort=asc`` oldest first, else newest first), filtered on ``modifiedAt`` after
``modifiedSince``; ``limit`` above 1000 is a 400. Deleting a contact shifts every later
offset, as in Brevo. An optional fixed-window limit sends ``x-sib-ratelimit-*`` headers and
answers 429 with ``x-sib-ratelimit-reset`` once the window is used up.

``GET /v3/contacts/lists`` pages the lists (``limit`` up to 50, ``offset``), each contact
carrying the ids of its lists in ``listIds`` (list 2, "Newsletter", unless a test says).

Write-back and sending, minimally: ``PUT /v3/contacts/{email}`` sets ``emailBlacklisted``
(404 for an unknown address, never a creation); ``POST /v3/smtp/email`` takes a batch of
``messageVersions`` and answers one message id per version, keeping what it was sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from tests.fakes.server import FakeApi, Reply, Request, iso, wall_ms

API_KEY = "xkeysib-fake-0123456789abcdef"
CONTACTS = "/v3/contacts"
LISTS = "/v3/contacts/lists"
SEND = "/v3/smtp/email"


@dataclass
class Contact:
    """One stored Brevo contact."""

    id: int
    email: str | None
    attributes: dict[str, Any]
    created_ms: int
    modified_ms: int
    blacklisted: bool = False
    list_ids: list[int] = field(default_factory=lambda: [2])
    extra: dict[str, Any] = field(default_factory=dict)  # raw overrides, for malformed cases

    def document(self) -> dict[str, Any]:
        """The contact as GET /v3/contacts lists it."""
        doc: dict[str, Any] = {
            "email": self.email,
            "id": self.id,
            "emailBlacklisted": self.blacklisted,
            "smsBlacklisted": False,
            "createdAt": iso(self.created_ms),
            "modifiedAt": iso(self.modified_ms),
            "listIds": list(self.list_ids),
            "attributes": dict(self.attributes),
        }
        doc.update(self.extra)
        return doc


def error(status: int, code: str, message: str, **headers: str) -> Reply:
    """An error answer shaped like Brevo's."""
    return Reply(status, {"code": code, "message": message}, headers=dict(headers))


class FakeBrevo(FakeApi):
    """In-memory Brevo contacts, served through :class:`tests.fakes.server.FakeServer`."""

    def __init__(self, *, per_window: int | None = None, window_s: float = 1.0,
                 clock: Callable[[], int] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock or wall_ms  # Brevo's dates are compared with the client's clock
        self.monotonic = monotonic  # the rate-limit window's clock (virtual in unit tests)
        self.contacts: list[Contact] = []  # creation order
        self.per_window = per_window
        self.window_s = window_s
        self._window_start = monotonic()
        self._used = 0
        self._next_id = 1
        self.sent: list[tuple[str, str]] = []  # (recipient, message id) of POST /v3/smtp/email
        self.lists: dict[int, str] = {2: "Newsletter"}  # id: name, in creation order

    def add(self, email: str | None, *, blacklisted: bool = False,
            modified_ms: int | None = None, **attributes: Any) -> int:
        """Store a new contact (created now); return its id."""
        with self.lock:
            now = self.clock()
            contact = Contact(self._next_id, email, attributes, now,
                              now if modified_ms is None else modified_ms, blacklisted)
            self._next_id += 1
            self.contacts.append(contact)
            return contact.id

    def get(self, ident: int) -> Contact:
        """The stored contact with this id."""
        with self.lock:
            return next(c for c in self.contacts if c.id == ident)

    def update(self, ident: int, *, blacklisted: bool | None = None, **attributes: Any) -> None:
        """Change a contact now."""
        with self.lock:
            contact = self.get(ident)
            contact.attributes.update(attributes)
            if blacklisted is not None:
                contact.blacklisted = blacklisted
            contact.modified_ms = self.clock()

    def delete(self, ident: int) -> None:
        """Delete a contact: every later offset shifts back by one."""
        with self.lock:
            self.contacts.remove(self.get(ident))

    def handle(self, request: Request) -> Reply:
        """Route one request."""
        if request.headers.get("api-key") != API_KEY:
            return error(401, "unauthorized", "Key not found")
        limited = self._limit()
        if limited is not None:
            return limited
        if request.method == "PUT" and request.path.startswith(CONTACTS + "/"):
            return self._blacklist(unquote(request.path[len(CONTACTS) + 1:]), request.body)
        if request.method == "POST" and request.path == SEND:
            return self._send(request.body)
        if request.method == "GET" and request.path == LISTS:
            reply = self._lists(request.query)
        elif request.method != "GET" or request.path != CONTACTS:
            return error(404, "not_found", "not found")
        else:
            reply = self._contacts(request.query)
        reply.headers.update(self._headers())
        return reply

    def _blacklist(self, email: str, body: Any) -> Reply:
        with self.lock:
            contact = next((c for c in self.contacts if c.email == email), None)
            if contact is None:
                return error(404, "document_not_found", "Contact does not exist")
            if isinstance(body, dict) and "emailBlacklisted" in body:
                contact.blacklisted = bool(body["emailBlacklisted"])
                contact.modified_ms = self.clock()
        return Reply(204, raw=b"")

    def _send(self, body: Any) -> Reply:
        with self.lock:
            ids = []
            for version in body["messageVersions"]:
                ids.append(f"<{len(self.sent) + 1}.fake@smtp-relay.brevo.test>")
                self.sent.append((version["to"][0]["email"], ids[-1]))
        return Reply(201, {"messageIds": ids})

    def _limit(self) -> Reply | None:
        if self.per_window is None:
            return None
        with self.lock:
            now = self.monotonic()
            if now - self._window_start >= self.window_s:
                self._window_start, self._used = now, 0
            if self._used >= self.per_window:
                return error(429, "too_many_requests", "The expected rate limit is exceeded.",
                             **self._headers())
            self._used += 1
        return None

    def _headers(self) -> dict[str, str]:
        if self.per_window is None:
            return {}
        with self.lock:
            reset = self._window_start + self.window_s - self.monotonic()
            return {
                "x-sib-ratelimit-limit": str(self.per_window),
                "x-sib-ratelimit-remaining": str(max(0, self.per_window - self._used)),
                "x-sib-ratelimit-reset": str(max(0, round(reset))),
            }

    def set_lists(self, ident: int, list_ids: list[int]) -> None:
        """Put a contact on exactly these lists now (Brevo changes its modifiedAt)."""
        with self.lock:
            contact = self.get(ident)
            contact.list_ids = list(list_ids)
            contact.modified_ms = self.clock()

    def _lists(self, query: dict[str, str]) -> Reply:
        try:
            limit, offset = int(query.get("limit", 10)), int(query.get("offset", 0))
        except ValueError:
            return error(400, "invalid_parameter", "invalid query parameter")
        if not 0 <= limit <= 50:
            return error(400, "out_of_range", "Limit exceeds max value")
        with self.lock:
            ordered = list(self.lists.items())
            if query.get("sort", "desc") != "asc":
                ordered.reverse()
            counts = {i: sum(i in c.list_ids for c in self.contacts) for i, _ in ordered}
            page = [{"id": i, "name": name, "folderId": 1, "uniqueSubscribers": counts[i],
                     "totalBlacklisted": 0, "totalSubscribers": 0}
                    for i, name in ordered[offset:offset + limit]]
        return Reply(body={"lists": page, "count": len(ordered)})

    def _contacts(self, query: dict[str, str]) -> Reply:
        try:
            limit = int(query.get("limit", 50))
            offset = int(query.get("offset", 0))
            since = query.get("modifiedSince")
            since_ms = None
            if since is not None:
                # Brevo's documented format: YYYY-MM-DDTHH:mm:ss.SSSZ
                parsed = datetime.strptime(since, "%Y-%m-%dT%H:%M:%S.%f%z")
                since_ms = int(parsed.timestamp() * 1000)
        except ValueError:
            return error(400, "invalid_parameter", "invalid query parameter")
        if not 0 <= limit <= 1000:
            return error(400, "out_of_range", "Limit exceeds max value")
        with self.lock:
            chosen = [c for c in self.contacts if since_ms is None or c.modified_ms > since_ms]
            if query.get("sort", "desc") != "asc":
                chosen.reverse()
            page = [c.document() for c in chosen[offset:offset + limit]]
        return Reply(body={"contacts": page, "count": len(chosen)})

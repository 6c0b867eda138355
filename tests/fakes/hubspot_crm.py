"""A fake HubSpot CRM v3 contacts API: list with cursors, search with its 10,000 cap, limits.

Behaves like HubSpot where the sync depends on it: ``GET /crm/v3/objects/contacts`` pages
by id with ``paging.next.after``; ``POST /crm/v3/objects/contacts/search`` filters
``lastmodifieddate`` (GTE/GT/EQ, epoch ms), sorts on it, pages by offset and answers 400
past ``cap`` results; archived contacts are listed by neither. Optional limits: a rolling
window (``X-HubSpot-RateLimit-*`` headers on non-search calls, 429 TEN_SECONDLY_ROLLING),
search calls per second (429 SECONDLY) and a daily budget (429 DAILY).

Lists (Lists API v3): ``POST /crm/v3/lists/search`` pages the lists by offset, and
``GET /crm/v3/lists/{listId}/memberships`` pages a list's members by record id (``limit`` at
most 250); a list's membership changes touch no contact's ``lastmodifieddate``, as in HubSpot.

Write-back, minimally: ``POST /communication-preferences/v3/unsubscribe`` records (email,
subscription id) for a live contact, 404 for an unknown address, 400 "already unsubscribed"
the second time.

Run standalone for benchmarks: ``python -m tests.fakes.hubspot_crm --contacts 100000``
prints the base URL, then serves; ``POST /__fake/touch {"count": n}`` changes n contacts,
``GET /__fake/stats`` returns the counters.
"""

from __future__ import annotations

import argparse
import bisect
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import Clock, FakeApi, FakeServer, Reply, Request, iso

TOKEN = "pat-na1-fake-token-0123456789"
LIST = "/crm/v3/objects/contacts"
SEARCH = "/crm/v3/objects/contacts/search"
UNSUBSCRIBE = "/communication-preferences/v3/unsubscribe"
LISTS_SEARCH = "/crm/v3/lists/search"
MEMBERSHIPS = re.compile(r"/crm/v3/lists/(?P<list_id>[^/]+)/memberships")
DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                      "lastname")
BASE_MS = 1_704_067_200_000  # 2024-01-01: generated contacts were last changed long ago


@dataclass
class Contact:
    """One stored contact: property values as HubSpot returns them (text or null)."""

    id: int
    props: dict[str, str | None]
    created_ms: int
    updated_ms: int
    archived: bool = False

    def result(self, wanted: list[str]) -> dict[str, Any]:
        """The contact as a list or search result."""
        props = {name: self.props.get(name) for name in wanted}
        props["hs_object_id"] = str(self.id)
        props["createdate"] = iso(self.created_ms)
        props["lastmodifieddate"] = iso(self.updated_ms)
        return {
            "id": str(self.id),
            "properties": props,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "archived": self.archived,
        }


@dataclass
class FakeList:
    """One HubSpot list: its ILS id, name, object type and members' record ids."""

    list_id: str
    name: str
    members: set[int]
    object_type_id: str = "0-1"  # contacts

    def result(self) -> dict[str, Any]:
        """The list as lists search returns it (PublicObjectListSearchResult)."""
        return {"listId": self.list_id, "name": self.name, "objectTypeId": self.object_type_id,
                "processingType": "MANUAL", "processingStatus": "COMPLETE", "listVersion": 1,
                "additionalProperties": {"hs_list_size": str(len(self.members))},
                "createdAt": iso(BASE_MS), "updatedAt": iso(BASE_MS)}


@dataclass
class Limits:
    """Optional rate limits; None means unlimited."""

    per_window: int | None = None
    window_s: float = 10.0
    search_per_second: int | None = None
    daily: int | None = None
    retry_after: bool = False  # send Retry-After on TEN_SECONDLY_ROLLING 429s


def error(status: int, message: str, category: str, **extra: Any) -> Reply:
    """An error answer shaped like HubSpot's."""
    body = {"status": "error", "message": message, "correlationId": "fake-0000",
            "category": category, **extra}
    return Reply(status, body)


class FakeHubSpot(FakeApi):
    """In-memory HubSpot contacts, served through :class:`tests.fakes.server.FakeServer`."""

    def __init__(self, *, cap: int = 10_000, limits: Limits | None = None,
                 clock: Callable[[], int] | None = None) -> None:
        super().__init__()
        self.cap = cap
        self.limits = limits or Limits()
        self.clock = clock or Clock()
        self.contacts: dict[int, Contact] = {}
        self._ids: list[int] = []  # live ids, ascending: the list endpoint's order
        self._by_date: list[tuple[int, int]] = []  # (updated_ms, id), live: search's order
        self._next_id = 1001
        self._window: deque[float] = deque()
        self._searches: deque[float] = deque()
        self.repeat_cursor: str | None = None  # answer this cursor forever (a HubSpot bug)
        self.unstable_ties = False  # search pages come reversed: equal dates in any order
        self.unsubscribed: list[tuple[str, str]] = []  # (email, subscription id) written back
        self.lists: dict[str, FakeList] = {}  # by list id

    # -- data --------------------------------------------------------------------------

    def add(self, email: str | None, *, updated_ms: int | None = None, **props: str | None
            ) -> int:
        """Store a new contact; return its id."""
        with self.lock:
            ident = self._next_id
            self._next_id += 1
            now = self.clock() if updated_ms is None else updated_ms
            contact = Contact(ident, {"email": email, **props}, now, now)
            self.contacts[ident] = contact
            self._ids.append(ident)
            bisect.insort(self._by_date, (contact.updated_ms, ident))
            return ident

    def generate(self, n: int) -> None:
        """Add n plausible contacts, last changed long ago, one millisecond apart."""
        languages = ("fr", "en", "ja", "fr-FR", None)
        with self.lock:
            for i in range(n):
                self.add(
                    f"member{i}@example.org", updated_ms=BASE_MS + i,
                    firstname=f"Prénom{i}", lastname=f"Nom{i}", company=f"Société {i % 97}",
                    hs_language=languages[i % 5], hs_email_optout="true" if i % 50 == 0 else "",
                )

    def update(self, ident: int, *, updated_ms: int | None = None, **props: str | None) -> None:
        """Change a contact now (or at ``updated_ms``): it moves to the end of search order."""
        with self.lock:
            contact = self.contacts[ident]
            if not contact.archived:
                self._by_date.remove((contact.updated_ms, ident))
            contact.props.update(props)
            contact.updated_ms = self.clock() if updated_ms is None else updated_ms
            if not contact.archived:
                bisect.insort(self._by_date, (contact.updated_ms, ident))

    def archive(self, ident: int) -> None:
        """Archive a contact: neither list nor search returns it any more."""
        with self.lock:
            contact = self.contacts[ident]
            contact.archived = True
            self._ids.remove(ident)
            self._by_date.remove((contact.updated_ms, ident))

    def touch(self, count: int) -> list[int]:
        """Change ``count`` contacts spread over the whole id range (for benchmarks)."""
        with self.lock:
            step = max(1, len(self._ids) // max(count, 1))
            chosen = self._ids[::step][:count]
            for ident in chosen:
                self.update(ident, firstname=f"Changed{ident}")
            return chosen

    def generate_lists(self, n: int) -> None:
        """Make n contact lists, each live contact on two of them (one when n is 1)."""
        with self.lock:
            members: list[list[int]] = [[] for _ in range(n)]
            for i, ident in enumerate(self._ids if n else ()):
                for k in {i % n, (i * 7 + 3) % n}:
                    members[k].append(ident)
            for k in range(n):
                self.add_list(str(5000 + k), f"Liste {k + 1}", members[k])

    def add_list(self, list_id: str, name: str, members: list[int],
                 object_type_id: str = "0-1") -> None:
        """Create (or replace) a list with these members."""
        with self.lock:
            self.lists[list_id] = FakeList(list_id, name, set(members), object_type_id)

    def live(self) -> list[Contact]:
        """The contacts HubSpot would return, by id."""
        with self.lock:
            return [self.contacts[i] for i in self._ids]

    # -- HTTP --------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Route one request."""
        if request.path == "/__fake/touch":
            return Reply(body={"ids": self.touch(int(request.body["count"]))})
        if request.path == "/__fake/stats":
            return Reply(body=dict(self.counts))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "Authentication credentials not found.", "INVALID_AUTHENTICATION")
        limited = self._limit(request)
        if limited is not None:
            return limited
        if request.method == "GET" and request.path == LIST:
            reply = self._list(request.query)
        elif request.method == "POST" and request.path == SEARCH:
            reply = self._search(request.body)
        elif request.method == "POST" and request.path == LISTS_SEARCH:
            reply = self._lists_search(request.body)
        elif request.method == "GET" and (found := MEMBERSHIPS.fullmatch(request.path)):
            reply = self._memberships(found["list_id"], request.query)
        elif request.method == "POST" and request.path == UNSUBSCRIBE:
            reply = self._unsubscribe(request.body)
        else:
            reply = error(404, "not found", "OBJECT_NOT_FOUND")
        if request.path != SEARCH:
            reply.headers.update(self._headers())
        return reply

    def _lists_search(self, body: Any) -> Reply:
        offset, count = int(body.get("offset", 0)), int(body.get("count", 20))
        if not 1 <= count <= 500:
            return error(400, "count must be between 1 and 500", "VALIDATION_ERROR")
        query = str(body.get("query") or "").casefold()
        with self.lock:
            found = [lst.result() for lst in self.lists.values()
                     if query in lst.name.casefold()]
        page = found[offset:offset + count]
        return Reply(body={"lists": page, "offset": offset + len(page), "total": len(found),
                           "hasMore": offset + len(page) < len(found)})

    def _memberships(self, list_id: str, query: dict[str, str]) -> Reply:
        limit = int(query.get("limit", 100))
        if not 1 <= limit <= 250:
            return error(400, "limit must be between 1 and 250", "VALIDATION_ERROR")
        with self.lock:
            found = self.lists.get(list_id)
            if found is None:
                return error(404, f"list {list_id} does not exist", "OBJECT_NOT_FOUND")
            members = sorted(m for m in found.members
                             if m in self.contacts and not self.contacts[m].archived)
        start = bisect.bisect_right(members, int(query.get("after", 0)))
        page = members[start:start + limit]
        body: dict[str, Any] = {"results": [
            {"recordId": str(m), "membershipTimestamp": iso(BASE_MS)} for m in page],
            "total": len(members)}
        if start + limit < len(members):
            body["paging"] = {"next": {"after": str(page[-1])}}
        return Reply(body=body)

    def _unsubscribe(self, body: Any) -> Reply:
        email, subscription = body.get("emailAddress"), body.get("subscriptionId")
        if not email or not subscription or not body.get("legalBasis"):
            return error(400, "emailAddress, subscriptionId, legalBasis required",
                         "VALIDATION_ERROR")
        with self.lock:
            if not any(c.props.get("email") == email for c in self.live()):
                return error(404, "contact not found", "OBJECT_NOT_FOUND")
            if (email, subscription) in self.unsubscribed:
                return error(400, f"{email} is already unsubscribed from subscription "
                                  f"{subscription}", "VALIDATION_ERROR")
            self.unsubscribed.append((email, subscription))
        # PublicSubscriptionStatus, with the fields HubSpot's client requires of it.
        return Reply(body={"id": subscription, "name": "Newsletter du Club",
                           "description": "La lettre du Club Japon", "status": "NOT_SUBSCRIBED",
                           "sourceOfStatus": "SUBSCRIPTION_STATUS",
                           "legalBasis": body.get("legalBasis"),
                           "legalBasisExplanation": body.get("legalBasisExplanation")})

    def _limit(self, request: Request) -> Reply | None:
        limits, now = self.limits, time.monotonic()
        with self.lock:
            if limits.daily is not None:
                if limits.daily <= 0:
                    return error(429, "You have reached your daily limit.", "RATE_LIMITS",
                                 errorType="RATE_LIMIT", policyName="DAILY")
                limits.daily -= 1
            if request.path == SEARCH and limits.search_per_second is not None:
                while self._searches and self._searches[0] <= now - 1.0:
                    self._searches.popleft()
                if len(self._searches) >= limits.search_per_second:
                    return error(429, "You have reached your secondly limit.", "RATE_LIMITS",
                                 errorType="RATE_LIMIT", policyName="SECONDLY")
                self._searches.append(now)
            if request.path != SEARCH and limits.per_window is not None:
                while self._window and self._window[0] <= now - limits.window_s:
                    self._window.popleft()
                if len(self._window) >= limits.per_window:
                    reply = error(429, "You have reached your ten_secondly_rolling limit.",
                                  "RATE_LIMITS", errorType="RATE_LIMIT",
                                  policyName="TEN_SECONDLY_ROLLING")
                    reply.headers.update(self._headers())
                    if limits.retry_after:
                        wait = self._window[0] + limits.window_s - now
                        reply.headers["Retry-After"] = str(max(1, round(wait)))
                    return reply
                self._window.append(now)
        return None

    def _headers(self) -> dict[str, str]:
        limits = self.limits
        if limits.per_window is None:
            return {}
        with self.lock:
            remaining = max(0, limits.per_window - len(self._window))
        return {
            "X-HubSpot-RateLimit-Max": str(limits.per_window),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limits.window_s * 1000)),
        }

    def _list(self, query: dict[str, str]) -> Reply:
        limit = int(query.get("limit", 10))
        if not 1 <= limit <= 100:
            return error(400, "limit must be between 1 and 100", "VALIDATION_ERROR")
        wanted = query.get("properties", "").split(",") if query.get("properties") else []
        wanted = wanted or list(DEFAULT_PROPERTIES)
        with self.lock:
            if self.repeat_cursor is not None and query.get("after") == self.repeat_cursor:
                start = bisect.bisect_left(self._ids, int(self.repeat_cursor))
                page = [self.contacts[i].result(wanted) for i in self._ids[start:start + limit]]
                return Reply(body={"results": page,
                                   "paging": {"next": {"after": self.repeat_cursor}}})
            after = int(query.get("after", 0))
            start = bisect.bisect_left(self._ids, after)
            ids = self._ids[start:start + limit + 1]
            body: dict[str, Any] = {
                "results": [self.contacts[i].result(wanted) for i in ids[:limit]]
            }
        if len(ids) > limit:
            body["paging"] = {"next": {"after": str(ids[limit]), "link": "?after=..."}}
        return Reply(body=body)

    def _search(self, body: Any) -> Reply:
        try:
            limit = int(body.get("limit", 10))
            after = int(body.get("after", 0))
            (group,) = body["filterGroups"]
            (flt,) = group["filters"]
            (sort,) = body["sorts"]
            assert flt["propertyName"] == "lastmodifieddate"
            assert sort == {"propertyName": "lastmodifieddate", "direction": "ASCENDING"}
            value, operator = int(flt["value"]), flt["operator"]
            wanted = list(body.get("properties") or DEFAULT_PROPERTIES)
        except (AssertionError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return error(400, f"this fake does not understand the query ({exc!r})",
                         "VALIDATION_ERROR")
        if not 1 <= limit <= 200:
            return error(400, "limit must be between 1 and 200", "VALIDATION_ERROR")
        if after + limit > self.cap:
            return error(400, f"paging beyond {self.cap} results is not allowed",
                         "VALIDATION_ERROR")
        with self.lock:
            if operator == "GTE":
                lo = bisect.bisect_left(self._by_date, (value, -1))
                hi = len(self._by_date)
            elif operator == "GT":
                lo, hi = bisect.bisect_left(self._by_date, (value + 1, -1)), len(self._by_date)
            elif operator == "EQ":
                lo = bisect.bisect_left(self._by_date, (value, -1))
                hi = bisect.bisect_left(self._by_date, (value + 1, -1))
            else:
                return error(400, f"operator {operator} not supported here", "VALIDATION_ERROR")
            total = hi - lo
            chosen = self._by_date[lo + after:min(hi, lo + after + limit)]
            results = [self.contacts[i].result(wanted) for _, i in chosen]
        if self.unstable_ties:
            results.reverse()
        reply: dict[str, Any] = {"total": total, "results": results}
        if after + limit < total:
            reply["paging"] = {"next": {"after": str(after + limit)}}
        return Reply(body=reply)


def main(argv: list[str] | None = None) -> None:
    """Serve a generated fake HubSpot in the foreground (benchmarks)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--per-window", type=int, default=None,
                        help="rolling limit, e.g. 100 (per --window-s seconds)")
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--lists", type=int, default=0,
                        help="contact lists to make, each contact on two of them")
    args = parser.parse_args(argv)
    api = FakeHubSpot(limits=Limits(per_window=args.per_window, window_s=args.window_s))
    api.generate(args.contacts)
    api.generate_lists(args.lists)
    server = FakeServer(api)
    print(server.url, flush=True)
    server.httpd.serve_forever()  # until the benchmark terminates us


if __name__ == "__main__":
    main()


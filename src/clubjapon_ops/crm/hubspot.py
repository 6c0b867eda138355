"""HubSpot CRM v3 contacts: full sync by listing, incremental sync by search.

Full sync pages through ``GET /crm/v3/objects/contacts`` with ``paging.next.after``; its
bookmark holds the cursor, so a full sync killed mid-way resumes where it stopped.
Incremental sync searches ``lastmodifieddate >= bookmark`` in ascending order. Search
answers at most 10,000 results per query, so before reaching that cap a new query starts
from the last date seen, skipping the contacts already taken at exactly that date. Each
page after the first re-reads the previous page's last result: if it moved (contacts
changed while we paged), the query restarts from the last date seen, so none is missed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from clubjapon_ops.contacts import RawContact, parse_timestamp
from clubjapon_ops.crm.base import CrmList, Page, identified, record_id
from clubjapon_ops.errors import ConfigError, InvalidContact, SourceError
from clubjapon_ops.http.client import HttpClient, MalformedPage, RetryPolicy
from clubjapon_ops.http.pacing import Pacer
from clubjapon_ops.http.vendors import hubspot_api
from clubjapon_ops.settings import Settings

log = logging.getLogger(__name__)

LIST_PATH = "/crm/v3/objects/contacts"
SEARCH_PATH = "/crm/v3/objects/contacts/search"
PROPERTIES = (
    "email", "firstname", "lastname", "company", "hs_language", "lastmodifieddate",
    "createdate", "hs_email_optout",
)
LIST_LIMIT = 100  # the most the list endpoint gives per page
SEARCH_LIMIT = 200  # the most the search endpoint gives per page
SEARCH_CAP = 10_000  # search answers at most this many results per query; past it, HTTP 400
SEARCH_INTERVAL_S = 0.2  # search is limited to 5 requests per second, without headers
# Search indexing lags behind writes by seconds to a minute: the bookmark never gets closer
# than this to the run's start, so a late-indexed change is picked up by the next run.
INDEX_LAG_S = 300.0
# Restarts in a row without a new contact before we call the search unstable.
MAX_STALLED_RESTARTS = 5


@dataclass(frozen=True)
class Bookmark:
    """Where HubSpot sync stands: the incremental date, and a full sync's cursor if under way."""

    since_ms: int | None = None
    full_after: str | None = None
    full_started_ms: int | None = None

    def dump(self) -> str:
        """Serialise for sync_state.bookmark."""
        data: dict[str, Any] = {"since": self.since_ms}
        if self.full_after is not None:
            data["full"] = {"after": self.full_after, "started": self.full_started_ms}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def load(cls, text: str | None) -> Bookmark:
        """Read a saved bookmark; an unreadable one stops the run rather than guessing."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            since = data.get("since")
            full = data.get("full") or {}
            after, started = full.get("after"), full.get("started")
            if not (since is None or isinstance(since, int)) or not (
                (after is None and started is None)
                or (isinstance(after, str) and isinstance(started, int))
            ):
                raise ValueError
        except (ValueError, AttributeError):
            raise SourceError(
                "the saved HubSpot bookmark is unreadable; run 'clubjapon-ops sync --full'"
            ) from None
        return cls(since, after, started)


@dataclass
class _Answer:
    results: list[Any]
    next_after: str | None


def parse_answer(document: Any) -> _Answer:
    """Check the shape of a list or search answer; a wrong shape is retried like a 5xx."""
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise MalformedPage("the answer has no 'results' list")
    paging = document.get("paging")
    after = None
    if paging is not None:
        nxt = paging.get("next") if isinstance(paging, dict) else None
        if not isinstance(paging, dict) or not (nxt is None or isinstance(nxt, dict)):
            raise MalformedPage("the answer's 'paging' is not an object")
        if nxt is not None:
            after = nxt.get("after")
            if not isinstance(after, str | int) or isinstance(after, bool) or after == "":
                raise MalformedPage("the answer's 'paging.next.after' is missing")
            after = str(after)
    return _Answer(document["results"], after)


class HubSpotSource:
    """Contacts from HubSpot, page by page, each page with the bookmark that holds after it."""

    name = "hubspot"
    archives_missing = True

    def __init__(
        self,
        client: HttpClient,
        *,
        extra_properties: Sequence[str] = (),
        full_sync_every: timedelta = timedelta(days=7),
        list_limit: int = LIST_LIMIT,
        search_limit: int = SEARCH_LIMIT,
        search_cap: int = SEARCH_CAP,
        search_pacer: Pacer | None = None,
        index_lag_s: float = INDEX_LAG_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.extra_properties = tuple(p for p in extra_properties if p not in PROPERTIES)
        self.properties = PROPERTIES + self.extra_properties
        self.full_sync_every = full_sync_every
        self.list_limit = list_limit
        self.search_limit = search_limit
        self.search_cap = search_cap
        self.search_pacer = search_pacer or Pacer(
            min_interval=SEARCH_INTERVAL_S, sleep=client.sleep
        )
        self.index_lag_ms = int(index_lag_s * 1000)
        self._clock = clock
        # Known once list_memberships() has run: every contact list HubSpot has.
        self.list_catalogue: list[CrmList] | None = None

    def pages(self, bookmark: str | None, *, full: bool) -> Iterator[Page]:
        """Yield pages of contacts: all of them when ``full``, else those changed since."""
        state = Bookmark.load(bookmark)
        if full or state.since_ms is None:
            return self._full(state)
        return self._incremental(state.since_ms)

    def list_memberships(self) -> Iterator[tuple[CrmList, list[str]]]:
        """Every contact list with its members' record ids (the Lists API v3), read whole
        at each sync: a membership change leaves lastmodifieddate alone."""
        from clubjapon_ops.crm.hubspot_lists import HubSpotLists  # it reads our answers

        reader = HubSpotLists(self.client)
        found: list[CrmList] = []
        for crm_list, members in reader.memberships():
            found.append(crm_list)
            yield crm_list, members
        self.list_catalogue = found
        log.info("HubSpot lists read", extra={"lists": len(found), "requests": reader.requests})

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _full(self, state: Bookmark) -> Iterator[Page]:
        after, started = state.full_after, state.full_started_ms
        if after is None or started is None:
            after, started = None, self._now_ms()
        else:
            log.info("resuming the full HubSpot sync", extra={"after": after})
        cursors = {after} if after else set()
        while True:
            params: dict[str, Any] = {
                "limit": self.list_limit, "properties": ",".join(self.properties),
                "archived": "false",
            }
            if after is not None:
                params["after"] = after
            answer = self.client.get(LIST_PATH, parse_answer, params=params)
            records, rejected = self._convert(answer.results)
            nxt = answer.next_after
            if nxt is None:
                done = Bookmark(since_ms=started - self.index_lag_ms)
                yield Page(records, done.dump(), rejected)
                return
            if nxt in cursors:
                raise SourceError(
                    f"HubSpot returned the paging cursor {nxt!r} a second time; stopping "
                    "instead of looping (the pages before it are saved)"
                )
            cursors.add(nxt)
            mark = Bookmark(since_ms=state.since_ms, full_after=nxt, full_started_ms=started)
            yield Page(records, mark.dump(), rejected)
            after = nxt

    def _incremental(self, since: int) -> Iterator[Page]:
        floor = self._now_ms() - self.index_lag_ms
        window = since  # the lower bound of the current search query
        offset = 0  # position in the current query's results of the next unread one
        edge: int | None = None  # the latest lastmodifieddate seen ...
        edge_ids: set[str] = set()  # ... and the contacts seen at exactly that date
        previous_last: str | None = None
        stalled = 0  # restarts in a row that brought nothing new
        while True:
            overlap = 1 if offset else 0
            body: dict[str, Any] = {
                "filterGroups": [{"filters": [
                    {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(window)}
                ]}],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                "properties": list(self.properties),
                "limit": self.search_limit,
            }
            if offset:
                body["after"] = str(offset - overlap)
            answer = self.client.post(SEARCH_PATH, parse_answer, body=body,
                                      pacer=self.search_pacer)
            results = answer.results
            if overlap:
                if not results or record_id(results[0]) != previous_last:
                    stalled += 1
                    if stalled > MAX_STALLED_RESTARTS:
                        raise SourceError(
                            "HubSpot search results keep moving while we page (many contacts "
                            "changing at once?); the pages before are saved, try again later"
                        )
                    log.info("search results moved while paging; restarting from the last date",
                             extra={"since_ms": edge})
                    window, offset = (window if edge is None else edge), 0
                    continue
                results = results[1:]
            fresh = []
            for item in results:
                ident, stamp = record_id(item), _result_ms(item)
                if stamp is not None and edge is not None and stamp == edge and ident in edge_ids:
                    continue  # taken already, before a restart of the query
                fresh.append(item)
                if stamp is not None and ident is not None:
                    if edge is None or stamp > edge:
                        edge, edge_ids = stamp, {ident}
                    elif stamp == edge:
                        edge_ids.add(ident)
            if fresh:
                stalled = 0
            records, rejected = self._convert(fresh)
            if answer.next_after is None:
                yield Page(records, Bookmark(since_ms=max(since, floor)).dump(), rejected)
                return
            mark = max(since, min(edge, floor)) if edge is not None else since
            yield Page(records, Bookmark(since_ms=mark).dump(), rejected)
            previous_last = record_id(answer.results[-1]) if answer.results else None
            try:
                offset = int(answer.next_after)
            except ValueError:
                raise SourceError(
                    f"HubSpot search gave a non-numeric paging cursor {answer.next_after!r}"
                ) from None
            if offset - 1 + self.search_limit > self.search_cap:
                # The next page would ask past the cap: start a new query from the last date.
                if edge is None or edge == window:
                    raise SourceError(
                        f"more than {self.search_cap} HubSpot contacts share the same "
                        "lastmodifieddate, which search cannot page through; run "
                        "'clubjapon-ops sync --full'"
                    )
                log.info("search window full; starting a new query from the last date",
                         extra={"since_ms": edge})
                window, offset = edge, 0

    def _convert(self, results: list[Any]) -> tuple[list[RawContact], list[tuple[str, str]]]:
        """Turn results into raw contacts; structurally broken ones are rejected with a reason."""
        records: list[RawContact] = []
        rejected: list[tuple[str, str]] = []
        for ident, item in identified(results, "hubspot", rejected):
            props = item.get("properties")
            if not isinstance(props, dict):
                rejected.append((f"hubspot {ident}", "record has no properties"))
                continue
            records.append(RawContact(
                ref=f"hubspot {ident}",
                source=self.name,
                email=props.get("email"),
                first_name=props.get("firstname"),
                last_name=props.get("lastname"),
                company=props.get("company"),
                language=props.get("hs_language"),
                opted_out=props.get("hs_email_optout"),
                crm_id=ident,
                created_at=props.get("createdate") or item.get("createdAt"),
                updated_at=props.get("lastmodifieddate") or item.get("updatedAt"),
                attributes={p: props[p] for p in self.extra_properties if p in props},
            ))
        return records, rejected


def _result_ms(item: Any) -> int | None:
    """The result's lastmodifieddate in epoch milliseconds, the key search sorts on."""
    if not isinstance(item, dict):
        return None
    props = item.get("properties")
    value = props.get("lastmodifieddate") if isinstance(props, dict) else None
    try:
        when = parse_timestamp(value or item.get("updatedAt"), "lastmodifieddate")
    except InvalidContact:
        return None
    return None if when is None else int(when.timestamp() * 1000)


def hubspot_source(settings: Settings) -> HubSpotSource:
    """Build the HubSpot source from the settings."""
    token = settings.hubspot_token
    if not token:
        raise ConfigError(
            "HUBSPOT_TOKEN is not set: create a HubSpot private app with the "
            "crm.objects.contacts.read and crm.lists.read scopes and put its token in .env"
        )
    client = HttpClient(
        hubspot_api(token, settings.hubspot_base_url),
        timeout=settings.http_timeout,
        retry=RetryPolicy(attempts=settings.http_attempts, total_s=settings.http_retry_seconds),
    )
    return HubSpotSource(
        client,
        # The consent field is read like any kept property, and synced with the contact.
        extra_properties=(*settings.hubspot_extra_properties,
                          *([settings.tracking_consent_field.lower()]
                            if settings.tracking_consent_field else [])),
        full_sync_every=timedelta(days=settings.hubspot_full_sync_days),
    )

"""Brevo API v3 contacts: ``GET /v3/contacts`` with limit/offset, oldest created first.

Incremental runs add ``modifiedSince``. Offsets shift when contacts are deleted or start
matching the filter while we page, so each request re-reads the last few contacts of the
previous page and lines the new page up on them: a shift back (deletions) is absorbed,
a shift forward only repeats contacts (harmless: the store merges them). If the overlap
is lost altogether, paging steps back a page until it is found again. Contacts changed
during the pass are caught by the next run, whose window starts at this pass's start.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clubjapon_ops.contacts import RawContact
from clubjapon_ops.crm.base import CrmList, Page, identified, record_id
from clubjapon_ops.errors import ConfigError, SourceError
from clubjapon_ops.http.client import HttpClient, MalformedPage, RetryPolicy
from clubjapon_ops.http.vendors import brevo_api
from clubjapon_ops.settings import BREVO_DEFAULT_ATTRIBUTES, Settings

log = logging.getLogger(__name__)

CONTACTS_PATH = "/v3/contacts"
LISTS_PATH = "/v3/contacts/lists"
LISTS_LIMIT = 50  # the most Brevo gives per page of lists
LIMIT = 1000  # the most Brevo gives per page
OVERLAP = 10  # contacts of the previous page re-read to line the next one up
MAX_REALIGN = 20  # step-backs allowed per run before we call the paging unreliable
# Brevo's modifiedSince is compared with its own clock; stay a little behind ours.
CLOCK_MARGIN_S = 300.0
# A contact without an address gets "a fictitious email address ... [PHONE_NUMBER]@mailin-
# sms.com" (help.brevo.com/hc/en-us/articles/208724009): nobody reads it, never mail it.
SMS_PLACEHOLDER_DOMAIN = "@mailin-sms.com"
SMS_ONLY = "SMS-only contact: placeholder address"


@dataclass(frozen=True)
class Pass:
    """A pass under way: full or since the bookmark, how far it got, what it read last."""

    full: bool
    offset: int
    started_ms: int
    tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bookmark:
    """The incremental date, and the pass under way if any."""

    since: str | None = None
    current: Pass | None = field(default=None)

    def dump(self) -> str:
        """Serialise for sync_state.bookmark."""
        data: dict[str, Any] = {"since": self.since}
        if self.current is not None:
            p = self.current
            data["pass"] = {"full": p.full, "offset": p.offset, "started": p.started_ms,
                            "tail": list(p.tail)}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def load(cls, text: str | None) -> Bookmark:
        """Read a saved bookmark; an unreadable one stops the run rather than guessing."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            since = data.get("since")
            if since is not None and not isinstance(since, str):
                raise ValueError
            raw = data.get("pass")
            current = None
            if raw is not None:
                current = Pass(bool(raw["full"]), int(raw["offset"]), int(raw["started"]),
                               tuple(str(i) for i in raw["tail"]))
        except (ValueError, AttributeError, KeyError, TypeError):
            raise SourceError(
                "the saved Brevo bookmark is unreadable; run 'clubjapon-ops sync --full'"
            ) from None
        return cls(since, current)


def brevo_time(ms: int) -> str:
    """Format epoch milliseconds as Brevo wants: YYYY-MM-DDTHH:mm:ss.SSSZ, in UTC."""
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_lists(document: Any) -> tuple[list[Any], int]:
    """Check the shape of a lists answer: its lists and the count of all of them."""
    if not isinstance(document, dict):
        raise MalformedPage("the answer is not an object")
    found, count = document.get("lists", []), document.get("count", 0)
    if not isinstance(found, list) or not isinstance(count, int) or isinstance(count, bool):
        raise MalformedPage("the answer's 'lists' is not a list")
    return found, count


def parse_answer(document: Any) -> list[Any]:
    """Check the shape of a contacts answer; a wrong shape is retried like a 5xx."""
    if not isinstance(document, dict):
        raise MalformedPage("the answer is not an object")
    contacts = document.get("contacts", [])
    # Tolerate an empty answer without 'contacts'; anything else must be a list.
    if not isinstance(contacts, list):
        raise MalformedPage("the answer's 'contacts' is not a list")
    return contacts


class BrevoSource:
    """Contacts from Brevo, page by page, each page with the bookmark that holds after it."""

    name = "brevo"
    archives_missing = True

    def __init__(
        self,
        client: HttpClient,
        *,
        attributes: Mapping[str, str] | None = None,
        full_sync_every: timedelta = timedelta(days=7),
        limit: int = LIMIT,
        overlap: int = OVERLAP,
        clock_margin_s: float = CLOCK_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        # Each field with the attributes that may hold it, first choice first.
        self.attributes: dict[str, tuple[str, ...]] = {
            name: tuple(a.strip().upper() for a in spelled.split("|") if a.strip())
            for name, spelled in {**BREVO_DEFAULT_ATTRIBUTES, **(attributes or {})}.items()
        }
        self._seen: set[str] | None = None  # attribute names met in a full pass from its start
        self.full_sync_every = full_sync_every
        self.limit = limit
        self.overlap = min(overlap, limit - 1)
        self.margin_ms = int(clock_margin_s * 1000)
        self._clock = clock
        # Brevo's lists, read at the start of each pass: contacts name theirs by id.
        self.list_catalogue: list[CrmList] | None = None
        self._list_names: dict[int, str] = {}

    def pages(self, bookmark: str | None, *, full: bool) -> Iterator[Page]:
        """Yield pages of contacts: all of them when ``full``, else those changed since."""
        state = Bookmark.load(bookmark)
        full = full or state.since is None
        current = state.current
        if current is None or current.full != full:
            current = Pass(full=full, offset=0, started_ms=int(self._clock() * 1000))
        else:
            log.info("resuming the Brevo pass", extra={"full": full, "offset": current.offset})
        return self._pass(state.since, current)

    def _read_lists(self) -> None:
        """Read every list (a request per 50 lists) to name the lists contacts carry."""
        found: list[CrmList] = []
        offset = 0
        while True:
            page, count = self.client.get(LISTS_PATH, parse_lists, params={
                "limit": LISTS_LIMIT, "offset": offset, "sort": "asc"})
            for item in page:
                ident = record_id(item)
                name = item.get("name") if isinstance(item, dict) else None
                if ident is not None and isinstance(name, str) and name.strip():
                    found.append(CrmList(name, ident))
            offset += len(page)
            if len(page) < LISTS_LIMIT or offset >= count:
                break
        self._list_names = {int(c.crm_id): c.name for c in found if c.crm_id is not None
                            and c.crm_id.isdigit()}
        self.list_catalogue = found

    def _pass(self, since: str | None, current: Pass) -> Iterator[Page]:
        self.list_catalogue = None
        offset, tail = current.offset, list(current.tail)
        # Only a full pass read from its first page here can tell an attribute is never used.
        self._seen = set() if current.full and offset == 0 else None
        realigned = 0
        while True:
            back = min(len(tail), self.overlap) if offset else 0
            params: dict[str, Any] = {"limit": self.limit, "offset": offset - back, "sort": "asc"}
            if not current.full and since is not None:
                params["modifiedSince"] = since
            contacts = self.client.get(CONTACTS_PATH, parse_answer, params=params)
            if self.list_catalogue is None:
                self._read_lists()  # once a pass, once Brevo has answered for its contacts
            fresh = contacts
            if back:
                start = _after_anchor(contacts, tail[-back:])
                if start is None:
                    realigned += 1
                    if realigned > MAX_REALIGN:
                        raise SourceError(
                            "Brevo's contact list kept shifting while we paged; try again later"
                        )
                    log.info("Brevo offsets shifted; stepping back a page",
                             extra={"offset": offset})
                    offset = max(0, offset - self.limit)
                    if offset == 0:
                        tail = []
                    continue
                fresh = contacts[start:]
            records, rejected = self._convert(fresh)
            offset = offset - back + len(contacts)
            tail = [i for i in (record_id(c) for c in contacts[-self.overlap:]) if i]
            if len(contacts) < self.limit:
                self._warn_unmapped()
                done = Bookmark(since=brevo_time(current.started_ms - self.margin_ms))
                yield Page(records, done.dump(), rejected)
                return
            going = Pass(current.full, offset, current.started_ms, tuple(tail))
            yield Page(records, Bookmark(since, going).dump(), rejected)

    def _convert(self, contacts: list[Any]) -> tuple[list[RawContact], list[tuple[str, str]]]:
        """Turn contacts into raw records; structurally broken ones are rejected with a reason."""
        records: list[RawContact] = []
        rejected: list[tuple[str, str]] = []
        for ident, item in identified(contacts, "brevo", rejected):
            attributes = item.get("attributes") or {}
            if not isinstance(attributes, dict):
                rejected.append((f"brevo {ident}", "attributes is not an object"))
                continue
            if is_sms_placeholder(item.get("email")):
                rejected.append((f"brevo {ident}", SMS_ONLY))
                continue
            raw = RawContact(
                ref=f"brevo {ident}",
                source=self.name,
                email=item.get("email"),
                opted_out=item.get("emailBlacklisted"),
                crm_id=ident,
                created_at=item.get("createdAt"),
                updated_at=item.get("modifiedAt"),
                lists=self._lists_of(item.get("listIds")),
            )
            self._map(attributes, raw)
            records.append(raw)
        return records, rejected

    def _lists_of(self, ids: Any) -> list[str] | None:
        """The names of the lists a contact carries; None when it carries no listIds."""
        if not isinstance(ids, list):
            return None
        # A list made after the lists were read waits for the next sync.
        return [self._list_names[i] for i in ids if isinstance(i, int) and i in self._list_names]

    def _map(self, attributes: dict[Any, Any], raw: RawContact) -> None:
        """Fill the mapped fields from the first of their attributes with a value; keep the
        other attributes raw."""
        by_name = {str(key).upper(): str(key) for key in attributes}
        if self._seen is not None:
            self._seen.update(by_name)
        used: set[str] = set()
        for name, candidates in self.attributes.items():
            present = [by_name[c] for c in candidates if c in by_name]
            if not present:
                continue
            filled = [k for k in present if attributes[k] not in (None, "")]
            key = (filled or present)[0]
            setattr(raw, name, attributes[key])
            used.add(key)
        for key, value in attributes.items():
            if str(key) not in used:
                raw.attributes[str(key)] = value

    def _warn_unmapped(self) -> None:
        """Say once, at the end of a full pass, which fields no contact had an attribute for."""
        seen, self._seen = self._seen, None
        if not seen:
            return  # not a whole pass, or no attribute at all: nothing to judge by
        missing = [f"{name} ({'|'.join(names)})" for name, names in self.attributes.items()
                   if not seen.intersection(names)]
        if missing:
            # Attribute names only, never values: those are personal data.
            shown = ", ".join(sorted(seen)[:40])
            log.warning(
                "Brevo attributes never appeared in a full sync, so these fields stay empty: "
                f"{'; '.join(missing)}. Attributes the contacts have: {shown}. "
                "Set BREVO_ATTRIBUTES (e.g. first_name=VORNAME) if one of them holds a field."
            )


def is_sms_placeholder(email: Any) -> bool:
    """True for the address Brevo makes up for a contact known by phone number only."""
    return isinstance(email, str) and email.strip().lower().endswith(SMS_PLACEHOLDER_DOMAIN)


def _after_anchor(contacts: list[Any], anchor: list[str]) -> int | None:
    """Index just past the last anchor contact found in this page, None if none is there."""
    positions = {record_id(c): i for i, c in enumerate(contacts)}
    for ident in reversed(anchor):
        if ident in positions:
            return positions[ident] + 1
    return None


def brevo_source(settings: Settings) -> BrevoSource:
    """Build the Brevo source from the settings."""
    key = settings.brevo_api_key
    if not key:
        raise ConfigError("BREVO_API_KEY is not set: create an API v3 key in Brevo and put "
                          "it in .env")
    client = HttpClient(
        brevo_api(key, settings.brevo_base_url),
        timeout=settings.http_timeout,
        retry=RetryPolicy(attempts=settings.http_attempts, total_s=settings.http_retry_seconds),
    )
    return BrevoSource(
        client,
        attributes=dict(settings.brevo_attributes),
        full_sync_every=timedelta(days=settings.brevo_full_sync_days),
    )

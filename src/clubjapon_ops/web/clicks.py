"""GET /r/<token>: send the reader on to the link's own URL, and count the click.

The answer never waits on the store for counting: clicks are counted in memory and written
by a background thread, one small upsert per link and day every second or so. A store that
is down still redirects (the links are read once and kept), and its counts wait in memory.
Nothing about the request (address, user agent) is ever written; they are looked at, in
memory, only to tell a link scanner from a reader.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, request

from clubjapon_ops.delivery.clicks import ClickSigner, ClickToken, stored_links
from clubjapon_ops.delivery.tokens import signing_key
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.content import edition_path, list_editions, load_edition
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.clicks import (
    ReaderClick,
    StoredLink,
    add_clicks,
    add_reader_clicks,
    all_links,
    consenting_readers,
)
from clubjapon_ops.store.pending import quick_transaction

log = logging.getLogger(__name__)
blueprint = Blueprint("clicks", __name__)

# Clicks wait this long in memory before they are counted: a client that follows two or
# more links of one edition within it is a link scanner (a person reads before clicking).
SCANNER_WINDOW_S = 5.0
FLUSH_EVERY_S = 1.0
# The background writer waits at most this long for the store, then keeps the counts.
STORE_WAIT_S = 0.5
# A token the links do not know reloads them at most this often (a send may have added
# links since they were read); a flood of forged tokens costs one query a second.
RELOAD_EVERY_S = 1.0
# User agents that say what they are: security gateways and link checkers, not readers.
_SCANNER_AGENTS = re.compile(
    r"bot\b|crawler|spider|scanner|preview|barracuda|proofpoint|mimecast|safelinks|"
    r"urldefense|symantec|forcepoint|trend ?micro|fortiguard|sophos|checkpoint|"
    r"curl/|wget/|python-requests|go-http-client|headlesschrome|linkcheck", re.I)


def _not_found() -> Response:
    # The same plain answer for every bad token, and no Location: nothing to follow.
    return Response("Not found\n", status=404, mimetype="text/plain",
                    headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class _Click:
    at: float
    client: int
    link: StoredLink
    row: int | None
    announced: bool  # the user agent says it is a scanner


@lru_cache(maxsize=1024)
def _announced(agent: str) -> bool:
    return is_scanner_agent(agent)


def is_scanner_agent(agent: str) -> bool:
    """Whether a user agent announces a scanner or a script rather than a mail reader."""
    return bool(_SCANNER_AGENTS.search(agent))


def _scanner_clicks(clicks: list[_Click]) -> set[int]:
    """The clicks (by id) of a client that followed another link of the same edition within
    SCANNER_WINDOW_S before or after: what a gateway opening every link does, not a reader.

    Linear after a sort: for each click, the latest click of another link before it (and the
    earliest after it) is the nearest one that can prove it.
    """
    groups: dict[tuple[int, str], list[_Click]] = {}
    for click in clicks:
        groups.setdefault((click.client, click.link.edition), []).append(click)
    found: set[int] = set()
    for group in groups.values():
        if len({c.link.id for c in group}) < 2:
            continue
        group.sort(key=lambda c: c.at)
        for ordered in (group, group[::-1]):
            # The last two distinct links seen, most recent first: (link id, time).
            first: tuple[str, float] | None = None
            second: tuple[str, float] | None = None
            for click in ordered:
                other = (first if first and first[0] != click.link.id else second)
                if other is not None and abs(click.at - other[1]) <= SCANNER_WINDOW_S:
                    found.add(id(click))
                if first is None or first[0] != click.link.id:
                    second = first
                first = (click.link.id, click.at)
    return found


class LinkBook:
    """The stored links, read once and kept: a click needs no query, a down store no answer."""

    def __init__(self, store_factory: Callable[[], Store],
                 from_files: Callable[[], dict[str, StoredLink]] | None = None) -> None:
        self._factory = store_factory
        # Where links come from when the store cannot say: the edition files still here.
        self._from_files = from_files
        self._links: dict[str, StoredLink] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def find(self, link_id: str) -> StoredLink | None:
        """The link with this id, reading the store again (at most every second) if unknown."""
        found = self._links.get(link_id)
        if found is not None:
            return found
        with self._lock:
            if time.monotonic() - self._loaded_at >= RELOAD_EVERY_S:
                self._loaded_at = time.monotonic()
                try:
                    with quick_transaction(self._factory(), STORE_WAIT_S) as conn:
                        self._links = all_links(conn)
                except Exception as exc:  # a store that is down: what we know still goes
                    log.warning("links not read from the database (%s)", type(exc).__name__)
                    if self._from_files is not None:
                        self._links = {**self._from_files(), **self._links}
        return self._links.get(link_id)


class ClickCounter:
    """Clicks counted in memory, told apart (readers, scanners), and written in batches."""

    def __init__(self, store_factory: Callable[[], Store], settings: Settings) -> None:
        self._factory = store_factory
        self._consent_field = (settings.tracking_consent_field
                               if settings.link_tracking == "consent" else None)
        self._lock = threading.Lock()
        self._recent: deque[_Click] = deque()
        self._past: deque[_Click] = deque()  # counted already, kept for their neighbours
        # Counted but not written yet (the store was down): (link id, day) -> readers, scanners
        self._unwritten: Counter[tuple[str, str, bool]] = Counter()
        # (row, link id, day) -> the click and the link's edition: one event per reader,
        # link and day, however often they click.
        self._reader_clicks: dict[tuple[int, str, str], tuple[ReaderClick, str]] = {}
        self._thread: threading.Thread | None = None
        self._flushing = threading.Lock()  # one writer at a time: the thread, exit, a test

    def add(self, link: StoredLink, row: int | None, client: int, announced: bool) -> None:
        """Note one click; it is classified and written later, off the request."""
        with self._lock:
            self._recent.append(_Click(time.monotonic(), client, link, row, announced))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="click-counter",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY_S)
            try:
                self.flush()
            except Exception as exc:  # the counts stay in memory: try again next time
                log.warning("clicks not written yet (%s)", type(exc).__name__)

    def _classify(self, final: bool) -> None:
        """Move clicks older than the scanner window (all when ``final``) into the counts."""
        now = time.monotonic()
        with self._lock:
            ready = [c for c in self._recent if final or now - c.at >= SCANNER_WINDOW_S]
            for _ in ready:
                self._recent.popleft()
            # The clicks around the ready ones: those still waiting (a later click can prove
            # an earlier one a scanner's) and those counted within the last window.
            while self._past and now - self._past[0].at > 2 * SCANNER_WINDOW_S:
                self._past.popleft()
            window = [*self._past, *ready, *self._recent]
            self._past.extend(ready)
        scanners = _scanner_clicks(window)
        for click in ready:
            scanner = click.announced or id(click) in scanners
            day = datetime.fromtimestamp(time.time() - (now - click.at), UTC).date().isoformat()
            self._unwritten[(click.link.id, day, scanner)] += 1
            if click.row is not None and not scanner and self._consent_field:
                self._reader_clicks.setdefault(
                    (click.row, click.link.id, day),
                    (ReaderClick(click.row, click.link.id, day, datetime.now(UTC)),
                     click.link.edition))

    def flush(self, final: bool = False) -> None:
        """Write what is counted (``final``: every click, however recent)."""
        with self._flushing:
            self._flush(final)

    def _flush(self, final: bool) -> None:
        self._classify(final)
        with self._lock:
            counts, self._unwritten = self._unwritten, Counter()
            readers, self._reader_clicks = self._reader_clicks, {}
        if not counts and not readers:
            return
        totals: dict[tuple[str, str], tuple[int, int]] = {}
        for (link_id, day, scanner), n in counts.items():
            r, s = totals.get((link_id, day), (0, 0))
            totals[(link_id, day)] = (r, s + n) if scanner else (r + n, s)
        try:
            with quick_transaction(self._factory(), STORE_WAIT_S) as conn:
                add_clicks(conn, totals)
                if readers and self._consent_field:
                    who = consenting_readers(conn, [c.row for c, _ in readers.values()],
                                             self._consent_field)
                    # Only a row of the link's own edition: a reader part moved onto another
                    # edition's link names nobody there.
                    add_reader_clicks(conn, [
                        (c, who[c.row][0]) for c, edition in readers.values()
                        if c.row in who and who[c.row][1] == edition])
        except Exception:
            with self._lock:  # kept for the next try; bounded by links x days
                self._unwritten.update(counts)
                for key, click in readers.items():
                    self._reader_clicks.setdefault(key, click)
            raise


@lru_cache(maxsize=4096)
def location(url: str) -> str:
    """The URL as a Location header carries it: what is not ASCII, spaces and quotes
    percent-encoded (as a browser does following the link), what is already escaped kept."""
    return quote(url, safe="!#$%&'()*+,/:;=?@[]~")


def links_from_files(settings: Settings, signer: ClickSigner) -> dict[str, StoredLink]:
    """The links of every ready edition file, by id: what a send would have stored."""
    found: dict[str, StoredLink] = {}
    for slug in list_editions(settings.root):
        try:
            edition = load_edition(edition_path(settings.root, slug))
        except Exception:  # a file that no longer loads: its links are the store's alone
            continue
        if not edition.is_draft:
            found.update((link.id, link) for link in stored_links(signer, edition))
    return found


def _client_key(agent: str) -> int:
    """Who asks, as a hash kept in memory only (Python's, salted per process): their address
    (behind nginx, the one nginx saw: `web` trusts its X-Forwarded-For from loopback) and
    their user agent."""
    return hash((request.remote_addr or "", agent))


def _parts(app: Flask) -> tuple[ClickSigner | None, LinkBook, ClickCounter]:
    found = app.extensions.get("clubjapon_clicks")
    if found is None:
        settings: Settings = app.config["CLUBJAPON_SETTINGS"]
        factory = app.config["CLUBJAPON_STORE_FACTORY"]
        try:
            signer: ClickSigner | None = ClickSigner(signing_key(settings))
        except ConfigError as exc:
            log.error("click links not checked: %s", exc)
            signer = None
        counter = ClickCounter(factory, settings)
        files = (lambda: links_from_files(settings, signer)) if signer is not None else None
        found = (signer, LinkBook(factory, files), counter)
        app.extensions["clubjapon_clicks"] = found
        atexit.register(_flush_at_exit, counter)
    return found


def _flush_at_exit(counter: ClickCounter) -> None:
    try:
        counter.flush(final=True)
    except Exception as exc:
        log.warning("clicks not written at exit (%s)", type(exc).__name__)


def click_counter(app: Flask) -> ClickCounter:
    """The app's click counter (``flush(final=True)`` writes every click now)."""
    return _parts(app)[2]


@blueprint.route("/r/<path:token>", methods=["GET"])
def follow(token: str) -> Any:
    """302 to the link's URL; count the click (not a HEAD's) without waiting for the store."""
    signer, book, counter = _parts(current_app._get_current_object())  # type: ignore[attr-defined]
    read: ClickToken | None = signer.read(token) if signer is not None else None
    link = book.find(read.link_id) if read is not None else None
    if read is None or link is None:
        return _not_found()
    if request.method == "GET":
        agent = request.headers.get("User-Agent", "")
        counter.add(link, read.row, _client_key(agent), _announced(agent))
    return Response(status=302, headers={"Location": location(link.url),
                                         "Cache-Control": "no-store",
                                         "Referrer-Policy": "no-referrer"})

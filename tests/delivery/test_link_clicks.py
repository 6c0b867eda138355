"""Issue 25: links of a sent edition go through PUBLIC_URL/r/<token>, which `web` redirects and
counts per link, language and day, readers and scanners apart, and nobody's unless they agreed.

A real send (outbox) on both store engines, then the real public app served by waitress on
127.0.0.1, without following redirects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from clubjapon_ops import jobs
from clubjapon_ops.errors import ConfigError, StoreError
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.schema import events, link_clicks
from clubjapon_ops.web import clicks as clicks_module
from clubjapon_ops.web import create_app
from clubjapon_ops.web.clicks import click_counter
from tests.delivery.clicks_helpers import (
    ODD_URL,
    PHOTOS_URL,
    SLUG,
    add_links,
    click_links,
    parts,
    read_eml,
)
from tests.delivery.conftest import make_settings
from tests.fakes.wsgi import served

READERS = ["ami@example.com", "ben@example.com", "chie@example.com", "dan@example.com"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, method: str = "GET", forwarded: str = "203.0.113.7",
          agent: str | None = None) -> tuple[int, dict[str, str]]:
    """(status, headers) of one request, redirects not followed. On loopback every client
    has one address: ``forwarded`` names a client in its user agent instead."""
    agent = agent or f"Mozilla/5.0 (reader at {forwarded})"
    request = urllib.request.Request(url, method=method, headers={
        "User-Agent": agent, "Host": "club-japon.example.org"})
    try:
        with _OPENER.open(request, timeout=30) as answer:
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as answer:
        return answer.code, dict(answer.headers)


def write_readers(home: Path, consent: dict[str, str] | None = None) -> None:
    """READERS in the CSV (fr, en, ja, fr), with a Consent column."""
    langs = ("fr", "en", "ja")
    lines = ["email;first_name;last_name;language;Consent"]
    lines += [f"{e};P{i};N{i};{langs[i % 3]};{(consent or {}).get(e, '')}"
              for i, e in enumerate(READERS)]
    (home / "contacts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def send(home: Path, store: Store, consent: dict[str, str] | None = None,
         **env: str) -> tuple[Settings, dict[str, Any]]:
    """Sync READERS and send the edition with links to the outbox; the messages by reader."""
    add_links(home)
    write_readers(home, consent)
    settings = make_settings(home, **env)
    jobs.crm_sync(settings, store)
    report = jobs.send_campaign(settings, store, SLUG)
    assert report.outcomes["sent"] == len(READERS)
    found = {}
    for path in (home / "var" / "outbox").rglob("*.eml"):
        message = read_eml(path)
        found[str(message["To"]).split("<")[1].rstrip(">")] = message
    return settings, found


@pytest.fixture(autouse=True)
def _counted_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter's own thread waits: each test writes the counts when it chooses."""
    monkeypatch.setattr(clicks_module, "FLUSH_EVERY_S", 3600.0)


@pytest.fixture
def store_holder(send_store: Store) -> dict[str, Any]:
    """The store the app opens, replaceable by one that is down."""
    return {"store": send_store}


@pytest.fixture
def sent(home: Path, send_store: Store) -> tuple[Settings, dict[str, Any]]:
    return send(home, send_store)


@pytest.fixture
def web(home: Path, sent: tuple[Settings, dict[str, Any]],
        store_holder: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The public app served on 127.0.0.1: (base URL, the app)."""
    settings = sent[0]

    def factory() -> Store:
        found = store_holder["store"]
        if found is None:
            raise StoreError("the database is down")
        return found  # type: ignore[no-any-return]

    app = create_app(settings, factory)
    with served(app) as base:
        yield base, app
    # What a test left counted is written while its store is still there, not at exit.
    click_counter(app).flush(final=True)


def local(base: str, link: str) -> str:
    return base + link.removeprefix("https://club-japon.example.org")


def clicks(store: Store) -> list[tuple[str, str, int, int]]:
    with store.transaction() as conn:
        return sorted((r.link_id, r.day, r.readers, r.scanners)
                      for r in conn.execute(select(link_clicks)))


def test_every_https_link_goes_through_the_redirect_and_nothing_else(
    sent: tuple[Settings, dict[str, Any]]
) -> None:
    _, messages = sent
    by_lang: dict[str, list[list[str]]] = {}
    for address, message in messages.items():
        text_links, html_links = click_links(message)
        # The image link and the button, in both parts, in reading order (the HTML says the
        # button's link twice: Outlook's VML button and everyone else's).
        assert len(text_links) == 2 and text_links == list(dict.fromkeys(html_links)), address
        assert len(html_links) == 3, address
        text, html = parts(message)
        for part in (text, html):
            assert "photos.example.org/2025/lille\"" not in part and "inscription." not in part
            assert address not in "".join(text_links)
            assert "mailto:" in part or "@example.org" in part  # the mailto: button stays
            assert "/unsubscribe/" in part  # the unsubscribe link is not rewritten
        assert "/unsubscribe/" in str(message["List-Unsubscribe"])
        assert "/r/" not in str(message["List-Unsubscribe"])
        lang = READERS.index(address) % 3
        by_lang.setdefault(("fr", "en", "ja")[lang], []).append(text_links)
    # Aggregate mode: two readers of one language get the very same links; languages differ.
    assert by_lang["fr"][0] == by_lang["fr"][1]
    assert by_lang["fr"][0] != by_lang["en"][0]


def test_a_click_redirects_to_the_link_and_is_counted_once_per_link_and_day(
    web: tuple[str, Any], sent: tuple[Settings, dict[str, Any]], send_store: Store
) -> None:
    base, app = web
    photos, odd = click_links(sent[1][READERS[0]])[0]
    status, headers = fetch(local(base, odd))
    assert status == 302
    # A quote, a space, non-ASCII and 2,000 characters come back unchanged.
    assert unquote(headers["Location"]) == ODD_URL
    status, headers = fetch(local(base, photos), forwarded="198.51.100.9")
    assert (status, headers["Location"]) == (302, PHOTOS_URL)
    for n in range(5):  # the same reader again and again, minutes apart for all we know
        assert fetch(local(base, odd), forwarded=f"192.0.2.{n}")[0] == 302
    assert fetch(local(base, odd), method="HEAD")[0] == 302  # not counted
    click_counter(app).flush(final=True)
    rows = clicks(send_store)
    assert len(rows) == 2  # one row per link and day, whatever the number of clicks
    assert sorted((r[2], r[3]) for r in rows) == [(1, 0), (6, 0)]


def test_an_altered_foreign_or_oversized_token_is_a_404_and_counts_nothing(
    web: tuple[str, Any], sent: tuple[Settings, dict[str, Any]], send_store: Store
) -> None:
    base, app = web
    link = click_links(sent[1][READERS[0]])[0][0]
    token = link.rsplit("/", 1)[1]
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    foreign = "QUJDREVGR0hJSktM"  # well formed, no link's
    for bad in (altered, foreign, token + "x" * 100, token + ".aa-bbbbbbbbbbbbb", "..", ""):
        status, headers = fetch(f"{base}/r/{bad}")
        assert status == 404, bad
        assert "Location" not in headers
    click_counter(app).flush(final=True)
    assert clicks(send_store) == []


def test_link_scanners_are_counted_apart(
    web: tuple[str, Any], sent: tuple[Settings, dict[str, Any]], send_store: Store
) -> None:
    base, app = web
    photos, odd = click_links(sent[1][READERS[0]])[0]
    # A gateway that opens every link of a message at once...
    assert fetch(local(base, photos), forwarded="198.51.100.1")[0] == 302
    assert fetch(local(base, odd), forwarded="198.51.100.1")[0] == 302
    # ...and one that says what it is.
    assert fetch(local(base, odd), agent="Barracuda Sentinel (EE)")[0] == 302
    click_counter(app).flush(final=True)
    assert sorted((r[2], r[3]) for r in clicks(send_store)) == [(0, 1), (0, 2)]


def test_a_store_that_is_down_still_redirects_and_counts_later(
    web: tuple[str, Any], sent: tuple[Settings, dict[str, Any]], send_store: Store,
    store_holder: dict[str, Any]
) -> None:
    base, app = web
    photos = click_links(sent[1][READERS[0]])[0][0]
    assert fetch(local(base, photos))[0] == 302  # the links are read once
    store_holder["store"] = None
    assert fetch(local(base, photos), forwarded="192.0.2.50")[0] == 302
    with pytest.raises(StoreError):
        click_counter(app).flush(final=True)
    store_holder["store"] = send_store
    click_counter(app).flush(final=True)
    assert [(r[2], r[3]) for r in clicks(send_store)] == [(2, 0)]


def test_a_removed_edition_file_still_redirects(
    home: Path, web: tuple[str, Any], sent: tuple[Settings, dict[str, Any]]
) -> None:
    base, _ = web
    (home / "config" / "editions" / f"{SLUG}.yaml").unlink()
    link = click_links(sent[1][READERS[1]])[0][1]
    status, headers = fetch(local(base, link))
    assert status == 302 and unquote(headers["Location"]) == ODD_URL


def test_consent_mode_names_the_row_of_a_reader_who_agreed_and_records_their_click(
    home: Path, send_store: Store
) -> None:
    settings, messages = send(
        home, send_store, consent={READERS[0]: "oui"},
        CLUBJAPON_LINK_TRACKING="consent", CLUBJAPON_TRACKING_CONSENT_FIELD="consent")
    agreed = click_links(messages[READERS[0]])[0]
    other = click_links(messages[READERS[3]])[0]  # fr too, did not agree
    assert all("." in link.rsplit("/", 1)[1] for link in agreed)
    assert all("." not in link.rsplit("/", 1)[1] for link in other)
    assert [a.split(".")[0] for a in agreed] == [o.split(".")[0] for o in other]
    assert READERS[0] not in "".join(agreed)
    app = create_app(settings, lambda: send_store)
    with served(app) as base:
        for link in (agreed[0], agreed[0], other[0]):
            assert fetch(local(base, link), forwarded=str(len(link)))[0] == 302
    click_counter(app).flush(final=True)
    with send_store.transaction() as conn:
        recorded = conn.execute(select(events.c.email, events.c.type)).all()
        total = conn.execute(select(func.sum(link_clicks.c.readers))).scalar()
    assert [tuple(r) for r in recorded] == [(READERS[0], "click")]  # once per link and day
    assert total == 3


def test_off_sends_links_straight(home: Path, send_store: Store) -> None:
    _, messages = send(home, send_store, CLUBJAPON_LINK_TRACKING="off")
    text, html = parts(messages[READERS[0]])
    assert "/r/" not in text and "/r/" not in html
    assert PHOTOS_URL in text and PHOTOS_URL in html


def test_the_counter_writes_by_itself(
    web: tuple[str, Any], sent: tuple[Settings, dict[str, Any]], send_store: Store,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clicks_module, "FLUSH_EVERY_S", 0.05)
    monkeypatch.setattr(clicks_module, "SCANNER_WINDOW_S", 0.0)
    base, _ = web
    assert fetch(local(base, click_links(sent[1][READERS[2]])[0][0]))[0] == 302
    deadline = time.monotonic() + 60
    while not clicks(send_store) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling what the thread writes, not waiting for it to be done
    assert [(r[2], r[3]) for r in clicks(send_store)] == [(1, 0)]


def test_report_shows_each_link_with_its_clicks_by_language_scanners_apart(
    home: Path, send_store: Store
) -> None:
    settings, messages = send(
        home, send_store, consent={READERS[0]: "yes"},
        CLUBJAPON_LINK_TRACKING="consent", CLUBJAPON_TRACKING_CONSENT_FIELD="Consent")
    agreed = click_links(messages[READERS[0]])[0]
    english = click_links(messages[READERS[1]])[0]
    app = create_app(settings, lambda: send_store)
    with served(app) as base:
        assert fetch(local(base, agreed[1]), forwarded="a")[0] == 302
        assert fetch(local(base, english[1]), forwarded="b")[0] == 302
        assert fetch(local(base, english[1]), forwarded="c")[0] == 302
        assert fetch(local(base, english[0]), agent="Mimecast URL checker")[0] == 302
    click_counter(app).flush(final=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBJAPON_")}
    env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_SECRET": "x" * 20})
    page = home / "report.html"
    result = subprocess.run([sys.executable, "-m", "clubjapon_ops", "report", SLUG,
                             "--html", str(page)], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rows = {tuple(line.split()[-5:]) for line in result.stdout.splitlines()}
    # (language, clicks, scanners, readers who agreed) of the button and the image link.
    assert ("fr", "1", "0", "1") in {r[1:] for r in rows if len(r) == 5}
    assert ("en", "2", "0", "0") in {r[1:] for r in rows if len(r) == 5}
    assert ("en", "0", "1", "0") in {r[1:] for r in rows if len(r) == 5}
    assert "S'inscrire" in result.stdout and "Register" in result.stdout
    assert PHOTOS_URL in result.stdout
    html = page.read_text(encoding="utf-8")
    assert "Clicks on each link, by language" in html and PHOTOS_URL in html
    assert READERS[0] not in result.stdout and READERS[0] not in html


def test_consent_mode_without_its_field_stops_before_anything_is_sent(
    home: Path, send_store: Store
) -> None:
    with pytest.raises(ConfigError, match="CLUBJAPON_TRACKING_CONSENT_FIELD"):
        send(home, send_store, CLUBJAPON_LINK_TRACKING="consent")
    assert not (home / "var" / "outbox").exists()


def test_a_store_that_is_down_from_the_start_still_redirects_from_the_edition_files(
    home: Path, sent: tuple[Settings, dict[str, Any]], send_store: Store
) -> None:
    up: list[Store] = []

    def down_at_first() -> Store:
        if not up:
            raise StoreError("the database is down")
        return up[0]

    app = create_app(sent[0], down_at_first)
    photos, odd = click_links(sent[1][READERS[2]])[0]
    with served(app) as base:
        status, headers = fetch(local(base, photos))
        assert (status, headers["Location"]) == (302, PHOTOS_URL)
        status, headers = fetch(local(base, odd))
        assert status == 302 and unquote(headers["Location"]) == ODD_URL
        token = odd.rsplit("/", 1)[1]
        assert fetch(f"{base}/r/{token[:-1]}x")[0] == 404
    # The two clicks were kept, and are written once the store is back (two links of one
    # edition within seconds from one client: a scanner's, as when the store is up).
    with pytest.raises(StoreError):
        click_counter(app).flush(final=True)
    up.append(send_store)
    click_counter(app).flush(final=True)
    assert [(r, s) for _, _, r, s in clicks(send_store)] == [(0, 1), (0, 1)]

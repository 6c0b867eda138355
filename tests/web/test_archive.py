"""The public archive: sent, ready editions as web pages, with nothing of any reader."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.tokens import TokenSigner, unsubscribe_url
from clubjapon_ops.newsletter.service import load_newsletter
from clubjapon_ops.newsletter.typography import without_phrase_breaks
from clubjapon_ops.store import Store
from tests.web.archive_helpers import copy_edition, mark_sent
from tests.web.conftest import SECRET, SLUG, assert_no_absolute_path, make_settings
from tests.web.payload import ESCAPED, PAYLOAD, injected, poison_edition

CACHED = "public, max-age=300"


def policy(header: str) -> dict[str, str]:
    items = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return {item[0]: item[1] if len(item) > 1 else "" for item in items}


def test_the_index_lists_sent_ready_editions_newest_first(
    public: FlaskClient, web_store: Store, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy_edition(home, "2026-03-12-amiens", number=4)
    copy_edition(home, "2026-06-18-arras", number=5, status="draft")
    copy_edition(home, "2026-09-01-calais", number=6)  # ready, never sent
    broken = copy_edition(home, "2026-10-01-douai", number=7)
    broken.write_text("number: [\n", encoding="utf-8")
    for slug in (SLUG, "2026-03-12-amiens", "2026-06-18-arras", "2026-10-01-douai"):
        mark_sent(web_store, slug)
    with caplog.at_level(logging.WARNING):
        answer = public.get("/editions/")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    assert answer.headers["Cache-Control"] == CACHED
    assert body.index("/editions/2026-03-12-amiens/fr") < body.index(f"/editions/{SLUG}/fr")
    for lang in ("fr", "en", "ja"):
        assert f'href="/editions/{SLUG}/{lang}"' in body
    assert 'lang="ja"' in body and ">日本語<" in body  # one entry, a link per language
    for hidden in ("arras", "calais", "douai"):
        assert hidden not in body
    assert [r for r in caplog.records if "douai" in r.getMessage()] != []
    assert_no_absolute_path(body, home)


def test_a_row_still_sending_does_not_publish_an_edition(
    public: FlaskClient, web_store: Store
) -> None:
    mark_sent(web_store, SLUG, state="pending")
    assert f"/editions/{SLUG}/" not in public.get("/editions/").get_data(as_text=True)
    assert public.get(f"/editions/{SLUG}/fr").status_code == 404


@pytest.mark.parametrize(("lang", "marker"), [
    ("fr", "Des liens toujours plus forts"), ("en", "Ever stronger ties"),
    ("ja", "地域圏と日本の絆、さらに強く"),
])
def test_an_edition_page_is_the_newsletter_with_the_generic_greeting(
    public: FlaskClient, web_store: Store, home: Path, lang: str, marker: str
) -> None:
    mark_sent(web_store, SLUG)
    answer = public.get(f"/editions/{SLUG}/{lang}")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    assert answer.headers["Cache-Control"] == CACHED
    assert marker in without_phrase_breaks(body) and f'<html lang="{lang}"' in body
    greeting = {"fr": "Bonjour,", "en": "Hello,", "ja": "ご担当者様"}[lang]
    assert f">{greeting}<" in body
    assert "/unsubscribe" not in body and "\ue000" not in body
    assert_no_absolute_path(body, home)


def test_an_edition_page_holds_nothing_of_a_reader(
    public: FlaskClient, web_store: Store, home: Path
) -> None:
    mark_sent(web_store, SLUG)
    settings = make_settings(home)
    newsletter = load_newsletter(
        settings, SLUG,
        lambda c, row: unsubscribe_url(settings, TokenSigner(SECRET), 7, c.language))
    for lang in ("fr", "en", "ja"):
        reader = Contact(email=f"zq-unique-{lang}@reader.example", source="csv",
                         first_name=f"Zqfirst{lang}", last_name=f"Zqlast{lang}",
                         company="Zqcompany", language=lang)
        message = newsletter.personalise(reader)
        assert reader.email in message.html and "/unsubscribe/" in message.html
        page = public.get(f"/editions/{SLUG}/{lang}").get_data(as_text=True)
        for personal in ("zq-unique", "Zqfirst", "Zqlast", "Zqcompany", "reader.example",
                         message.unsubscribe_url, "/unsubscribe/", "@example.com"):
            assert personal not in page, (lang, personal)


@pytest.mark.parametrize("path", [
    "/editions/2031-01-01-nowhere/fr", f"/editions/{SLUG}/xx", f"/editions/{SLUG}/FR",
    "/editions/..%2Fconfig/fr", "/editions/lille/fr", f"/editions/{SLUG}", "/editions/x/y/z",
    "/editions/2026-06-18-arras/fr", "/editions/2026-06-18-" + "a" * 300 + "/fr",
])
def test_drafts_unknown_and_invalid_names_are_404_and_not_cached(
    public: FlaskClient, web_store: Store, home: Path, path: str
) -> None:
    copy_edition(home, "2026-06-18-arras", number=5, status="draft")
    mark_sent(web_store, "2026-06-18-arras")
    mark_sent(web_store, SLUG)
    answer = public.get(path)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 404, path
    assert answer.headers["Cache-Control"] == "no-store"
    assert "arras" not in body and "nowhere" not in body
    assert_no_absolute_path(body, home)


def test_a_language_the_edition_lacks_is_404(
    public: FlaskClient, web_store: Store, home: Path
) -> None:
    path = copy_edition(home, "2026-03-12-amiens", number=4)
    path.write_text(path.read_text(encoding="utf-8").replace(
        "languages: [fr, en, ja]", "languages: [fr, en]"), encoding="utf-8")
    mark_sent(web_store, "2026-03-12-amiens")
    assert public.get("/editions/2026-03-12-amiens/en").status_code == 200
    assert public.get("/editions/2026-03-12-amiens/ja").status_code == 404


def test_a_malformed_sent_edition_is_404_not_500(
    public: FlaskClient, web_store: Store, home: Path
) -> None:
    copy_edition(home, "2026-10-01-douai", number=7).write_text("number: [\n", encoding="utf-8")
    mark_sent(web_store, "2026-10-01-douai")
    answer = public.get("/editions/2026-10-01-douai/fr")
    assert answer.status_code == 404
    assert_no_absolute_path(answer.get_data(as_text=True), home)


def test_a_sent_alias_bomb_is_skipped_at_once_and_the_others_still_list(
    public: FlaskClient, web_store: Store, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bomb = "2026-01-01-bomb"
    levels = [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 13)]
    (home / "config/editions" / f"{bomb}.yaml").write_text(
        "\n".join(["number: 9", 'a0: &a0 ["lol"]', *levels]) + "\n", encoding="utf-8")
    for slug in (SLUG, bomb):
        mark_sent(web_store, slug)
    with caplog.at_level(logging.WARNING):
        index = public.get("/editions/")
    assert index.status_code == 200 and f"/editions/{SLUG}/fr" in index.get_data(as_text=True)
    assert "bomb" not in index.get_data(as_text=True)
    skipped = [r.getMessage() for r in caplog.records if bomb in r.getMessage()]
    assert skipped and f"{bomb}.yaml:2: YAML anchors and aliases" in skipped[0]
    assert public.get(f"/editions/{bomb}/fr").status_code == 404


def test_archive_pages_have_the_email_policy_and_the_rest_stays_none(
    public: FlaskClient, web_store: Store
) -> None:
    mark_sent(web_store, SLUG)
    page = policy(public.get(f"/editions/{SLUG}/ja").headers["Content-Security-Policy"])
    assert "sandbox" in page and page["default-src"] == "'none'"
    assert page["img-src"] == "https: data:" and page["style-src"] == "'unsafe-inline'"
    assert "script-src" not in page
    index = public.get("/editions/")
    listing = policy(index.headers["Content-Security-Policy"])
    assert listing["default-src"] == "'none'" and "script-src" not in listing
    nonce = re.search(r'<style nonce="([^"]+)"', index.get_data(as_text=True))
    assert nonce and f"'nonce-{nonce.group(1)}'" == listing["style-src"]
    assert policy(public.get("/healthz").headers["Content-Security-Policy"])[
        "default-src"] == "'none'"


def test_the_payload_is_escaped_on_the_archive(
    public: FlaskClient, web_store: Store, home: Path
) -> None:
    poison_edition(home / "config/editions" / f"{SLUG}.yaml")
    mark_sent(web_store, SLUG)
    index = public.get("/editions/").get_data(as_text=True)
    assert ESCAPED in index and PAYLOAD not in index and injected(index) == []
    for lang in ("fr", "en", "ja"):
        page = public.get(f"/editions/{SLUG}/{lang}")
        assert page.status_code == 200
        body = page.get_data(as_text=True)
        # css-inline writes < and > unescaped inside quoted attribute values (HTML5 does):
        # inert there; the parser finds no element or handler the payload made.
        assert ESCAPED in body and injected(body) == []


def test_an_edition_page_shows_what_a_reader_on_no_list_got(
    public: FlaskClient, web_store: Store, home: Path
) -> None:
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text(path.read_text("utf-8").replace(
        "  - type: list\n    style: inline\n",
        "  - type: list\n    only_for: [Opéra 2025]\n    style: inline\n"), encoding="utf-8")
    mark_sent(web_store, SLUG)
    body = without_phrase_breaks(public.get(f"/editions/{SLUG}/fr").get_data(as_text=True))
    assert "Parmi les secteurs clés" not in body  # the Opéra's section stays with its readers
    assert "Des liens toujours plus forts" in body

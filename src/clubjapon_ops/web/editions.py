"""The public archive: GET /editions/ (the sent editions) and /editions/SLUG/LANG (one page).

Only ready editions that the ledger says were sent are served here, with no contact data:
never reuse the preview's views, which show stored contacts and unpublished editions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import Blueprint, Response, current_app, render_template, url_for

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.archive import published, published_edition
from clubjapon_ops.newsletter.audience import edition_variant, variant_of
from clubjapon_ops.newsletter.service import make_renderer, publish_images
from clubjapon_ops.settings import Settings
from clubjapon_ops.store.deliveries import sent_editions
from clubjapon_ops.web.headers import ARCHIVE_CSP

blueprint = Blueprint("editions", __name__)
# Pages change only when an edition is sent or edited: a proxy may keep them a few minutes.
CACHED = "public, max-age=300"


def _settings() -> Settings:
    settings: Settings = current_app.config["CLUBJAPON_SETTINGS"]
    return settings


def _sent() -> set[str]:
    store = current_app.config["CLUBJAPON_STORE_FACTORY"]()
    with store.transaction() as conn:
        return sent_editions(conn)


def _not_found() -> Response:
    # The same answer for unknown, invalid, draft, unsent and broken: nothing to probe.
    return Response("Not found\n", status=404, mimetype="text/plain")


@blueprint.after_app_request
def _no_store_for_errors(response: Response) -> Response:
    """A 404 (a routing one included) must not stick in a proxy once the page exists."""
    if response.status_code >= 400:
        response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/editions/")
def index() -> Any:
    """List the sent, ready editions, newest first, a link per language."""
    settings = _settings()
    renderer = make_renderer(settings)
    strings = renderer.strings
    entries = []
    for edition in published(settings.root, _sent()):
        # One entry per edition, headed in its first language, with a link per language.
        first = edition.primary_language
        entries.append({
            "edition": edition,
            "lang": first,
            "title": edition.title[first],
            "label": renderer.context(edition, first)["edition_label"],
            "url": url_for("editions.page", slug=edition.slug, lang=first),
            "languages": _languages(edition.slug, edition.languages, strings),
        })
    body = render_template("editions.html.j2", entries=entries,
                           titles=[(lang, strings[lang]["archive_title"]) for lang in strings],
                           club=strings["fr"]["club_name"])
    return Response(body, mimetype="text/html", headers={"Cache-Control": CACHED})


@blueprint.get("/editions/<slug>/<lang>")
def page(slug: str, lang: str) -> Any:
    """One edition in one language, as its readers got it but with no reader in it."""
    settings = _settings()
    try:
        edition, code = published_edition(settings.root, slug, lang, _sent())
        # Sections for part of the audience: the public sees what a reader on no list saw.
        public = edition_variant(edition, variant_of(edition, frozenset()))
        public = publish_images(settings, public)  # its photos at PUBLIC_URL/media/
        renderer = make_renderer(settings)
        nav = {"index": url_for("editions.index"),
               "languages": _languages(slug, [c for c in edition.languages if c != code],
                                       renderer.strings)}
        html = renderer.render_web_page(public, code, nav)
    except ConfigError:  # UnknownEdition is one; a broken file is not found either
        return _not_found()
    return Response(html, mimetype="text/html",
                    headers={"Cache-Control": CACHED, "Content-Security-Policy": ARCHIVE_CSP})


def _languages(slug: str, langs: Iterable[str],
               strings: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(code, the language's name in itself, its page) for each of ``langs``."""
    return [(lang, str(strings[lang]["language_name"]),
             url_for("editions.page", slug=slug, lang=lang)) for lang in langs]

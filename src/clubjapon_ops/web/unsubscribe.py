"""One-click unsubscribe (RFC 8058): a confirm page on GET, the unsubscribe itself on POST."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request

from clubjapon_ops.delivery.tokens import TokenData, TokenSigner, signing_key
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.render import load_strings
from clubjapon_ops.settings import Settings
from clubjapon_ops.store.contacts import add_suppression

log = logging.getLogger(__name__)
blueprint = Blueprint("unsubscribe", __name__)
MAX_TOKEN = 1024


def _bad() -> Response:
    # The same plain answer for every bad token: nothing tells a forger what was wrong.
    return Response("Bad request\n", status=400, mimetype="text/plain")


def _test_copy() -> Response:
    # A test copy's link may be rendered as a real reader: it must never act on anyone.
    return Response("test copy: nothing was changed\n", status=200, mimetype="text/plain")


def _read(token: str) -> TokenData | None:
    settings: Settings = current_app.config["CLUBJAPON_SETTINGS"]
    if len(token) > MAX_TOKEN:
        return None
    try:
        key = signing_key(settings)
    except ConfigError as exc:
        # Every link would get a 400: say why, or nobody would notice.
        log.error("unsubscribe link not checked: %s", exc)
        return None
    return TokenSigner(key).read(token)


def _page(data: TokenData, done: bool) -> str:
    settings: Settings = current_app.config["CLUBJAPON_SETTINGS"]
    strings = load_strings(settings.root / "templates")
    t = strings.get(data.lang) or strings["fr"]
    return render_template("unsubscribe.html.j2", data=data, words=t["unsubscribe_page"],
                           done=done, club=t["club_name"])


@blueprint.get("/unsubscribe/<token>")
def confirm(token: str) -> Any:
    """Ask before unsubscribing: mail scanners follow links, people press buttons."""
    data = _read(token)
    if data is None:
        return _bad()
    if data.test:
        return _test_copy()
    return _page(data, done=False)


@blueprint.post("/unsubscribe/<token>")
def one_click(token: str) -> Any:
    """Unsubscribe now: no cookie, no login, 200 without a redirect (RFC 8058)."""
    data = _read(token)
    if data is None:
        return _bad()
    if data.test:
        return _test_copy()
    store = current_app.config["CLUBJAPON_STORE_FACTORY"]()
    with store.transaction() as conn:
        add_suppression(conn, data.email, f"unsubscribe link, edition {data.edition}",
                        "unsubscribe")
    if request.form.get("List-Unsubscribe") == "One-Click" and not request.form.get("page"):
        return Response("Unsubscribed\n", status=200, mimetype="text/plain")
    return _page(data, done=True)

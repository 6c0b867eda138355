"""One-click unsubscribe (RFC 8058): a confirm page on GET, the unsubscribe itself on POST."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, render_template, request
from sqlalchemy.exc import SQLAlchemyError

from clubjapon_ops.delivery.tokens import TokenData, TokenSigner, signing_key
from clubjapon_ops.errors import ConfigError, StoreError
from clubjapon_ops.newsletter.render import load_strings
from clubjapon_ops.settings import Settings
from clubjapon_ops.store.bounces import rows_by_id
from clubjapon_ops.store.contacts import add_suppression
from clubjapon_ops.store.pending import PendingUnsubscribes, pending_path, quick_transaction

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
    if not _unsubscribe(data):
        return _bad()
    if request.form.get("List-Unsubscribe") == "One-Click" and not request.form.get("page"):
        return Response("Unsubscribed\n", status=200, mimetype="text/plain")
    return _page(data, done=True)


# How long a one-click waits for the store before keeping the unsubscribe aside (and
# answering 200 all the same): well under what a mail client or a proxy waits for us.
STORE_WAIT_S = 3.0
RETRY_EVERY_S = 5.0


def _kept(settings: Settings) -> PendingUnsubscribes:
    return PendingUnsubscribes(pending_path(settings.root))


def _unsubscribe(data: TokenData) -> bool:
    """Store the unsubscribe now; if the store cannot take it within STORE_WAIT_S, keep it
    on disk (fsync'd) and apply it later: once answered 200, it is never lost. False when
    the token's ledger row is not there (a link that names nobody: nothing to do)."""
    settings: Settings = current_app.config["CLUBJAPON_SETTINGS"]
    kept = _kept(settings)
    reason = f"unsubscribe link, edition {data.edition}"
    try:
        store = current_app.config["CLUBJAPON_STORE_FACTORY"]()
        with quick_transaction(store, STORE_WAIT_S) as conn:
            email = data.email
            if data.row is not None:
                # Today's links name a ledger row: the address is the one it was sent to.
                row = rows_by_id(conn, [data.row]).get(data.row)
                if row is None:
                    return False
                email, reason = row.email, f"unsubscribe link, edition {row.edition}"
            add_suppression(conn, email, reason, "unsubscribe")
    except (StoreError, SQLAlchemyError) as exc:
        if data.row is not None:
            kept.add(None, "unsubscribe link", "unsubscribe", row=data.row)
        else:
            kept.add(data.email, reason, "unsubscribe")
        # One line, no address and no SQL (the driver's error may quote them).
        log.warning("unsubscribe kept aside, the database did not take it at once "
                    "(%s); it is applied as soon as it does", type(exc).__name__)
        start_retries(current_app._get_current_object(), kept)  # type: ignore[attr-defined]
        return True
    if kept.waiting():
        # The store answers again: apply what waits now rather than at the next retry.
        start_retries(current_app._get_current_object(), kept)  # type: ignore[attr-defined]
    return True


_retrying: set[str] = set()
_retry_lock = threading.Lock()


def start_retries(app: Flask, kept: PendingUnsubscribes | None = None) -> None:
    """Apply the kept unsubscribes in the background, every RETRY_EVERY_S until the file is
    empty; at most one such thread per file. Called at start and after each keep."""
    settings: Settings = app.config["CLUBJAPON_SETTINGS"]
    kept = kept or _kept(settings)
    if not kept.waiting():
        return
    key = str(kept.path)
    with _retry_lock:
        if key in _retrying:
            return
        _retrying.add(key)
    factory = app.config["CLUBJAPON_STORE_FACTORY"]

    def retry() -> None:
        try:
            while kept.waiting():
                try:
                    kept.drain(factory(), STORE_WAIT_S)
                except Exception as exc:  # whatever it is, the file keeps them: try again
                    log.warning("kept unsubscribes not applied yet (%s); trying again",
                                type(exc).__name__)
                    time.sleep(RETRY_EVERY_S)
        finally:
            with _retry_lock:
                _retrying.discard(key)
            if kept.waiting():  # kept again while this thread was ending
                start_retries(app, kept)

    threading.Thread(target=retry, name="kept-unsubscribes", daemon=True).start()

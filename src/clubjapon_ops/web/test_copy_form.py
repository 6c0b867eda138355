"""The preview's "send me a test" form: test copies of the edition shown, in the languages
ticked, to the addresses typed, through the same code as `send --test-to`.

It sits behind the preview's own guards (its Host check, and its password off loopback), and
adds its own: a CSRF token (a page elsewhere cannot post it, even to 127.0.0.1), and a rate
limit (a flooded form gets a plain 429; nobody's mailbox is flooded from it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, render_template, request

from clubjapon_ops import jobs
from clubjapon_ops.delivery import testcopies
from clubjapon_ops.errors import ClubJaponError, ConfigError
from clubjapon_ops.newsletter.content import list_editions
from clubjapon_ops.settings import Settings
from clubjapon_ops.web.preview import relative

blueprint = Blueprint("test_copies", __name__)
COOKIE = "clubjapon_form"
MAX_ADDRESSES = 5
# Marketing sends a test, reads it, fixes, sends again: a few a minute is plenty.
SENDS_PER_MINUTE = 5


class Window:
    """At most ``limit`` events in any ``seconds``; shared by the threads of one app."""

    def __init__(self, limit: int, seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.seconds, self.clock = limit, seconds, clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Count one event now; False (not counted) when the window is full."""
        with self._lock:
            now = self.clock()
            while self._times and now - self._times[0] >= self.seconds:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return False
            self._times.append(now)
            return True


def _key() -> bytes:
    key: bytes = current_app.extensions["clubjapon_form_key"]
    return key


def _expected(cookie: str) -> str:
    return hmac.new(_key(), cookie.encode("utf-8"), hashlib.sha256).hexdigest()


def form_token() -> str:
    """The CSRF token of the form on this page; the browser gets its cookie with the page."""
    cookie = request.cookies.get(COOKIE, "")
    if len(cookie) != 32:  # none yet (or not ours): a new one, set after the request
        cookie = g.get("clubjapon_new_cookie") or secrets.token_hex(16)
        g.clubjapon_new_cookie = cookie
    return _expected(cookie)


def _set_cookie(response: Response) -> Response:
    cookie = g.get("clubjapon_new_cookie")
    if cookie:
        # SameSite=Strict: a page of another site that posts here arrives without it.
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", path="/",
                            secure=request.is_secure)
    return response


def _token_ok() -> bool:
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False  # a browser that says the post comes from elsewhere
    cookie = request.cookies.get(COOKIE, "")
    given = request.form.get("csrf", "")
    return len(cookie) == 32 and hmac.compare_digest(given.encode(), _expected(cookie).encode())


def _plain(text: str, status: int, **headers: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain", headers=headers)


def _page(slug: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template("test_copies.html.j2", slug=slug, **context), status


@blueprint.post("/preview/<slug>/test-copies")
def send(slug: str) -> Any:
    """Send test copies of ``slug`` as the form asks, and say what became of each."""
    # The token first: a post forged on another page is refused without counting, so a page
    # elsewhere cannot use up marketing's test sends; every post from the page counts.
    if not _token_ok():
        return _plain("This form has expired or was sent from another page: reload the "
                      "preview and send it again.", 403)
    window: Window = current_app.extensions["clubjapon_test_copy_window"]
    if not window.allow():
        return _plain(f"Too many test sends: at most {window.limit} a minute from the "
                      "preview. Wait a minute, then send again.", 429,
                      **{"Retry-After": str(int(window.seconds))})
    settings: Settings = current_app.config["CLUBJAPON_SETTINGS"]
    if slug not in list_editions(settings.root):
        return _page(slug, 404, error="There is no edition of that name.")
    try:
        to = testcopies.addresses(request.form.get("to", ""))
        if len(to) > MAX_ADDRESSES:
            raise testcopies.NotSendable(
                f"{len(to)} addresses: the preview sends to at most {MAX_ADDRESSES} at once")
        newsletter = jobs.newsletter_for_sending(settings, slug)
        langs = testcopies.languages(newsletter.edition, request.form.getlist("lang"))
    except testcopies.NotSendable as exc:
        return _page(slug, 400, error=f"Nothing was sent: {exc}.")
    except ConfigError as exc:
        return _page(slug, 400, error=f"Nothing was sent: {relative(str(exc), settings.root)}")
    try:
        copies = testcopies.send_test_copies(settings, newsletter, testcopies.readers(langs), to)
    except ClubJaponError as exc:  # nothing listening, a refused login: the settings to fix
        return _page(slug, 502, error=f"Nothing was sent: {relative(str(exc), settings.root)}")
    rows = [{
        "lang": c.lang, "address": c.address, "status": str(c.status), "reader": c.reader,
        "transport": c.transport, "error": relative(c.error, settings.root) if c.error else "",
        # Where it is under the outbox, never an absolute path on a page.
        "file": c.path.relative_to(settings.outbox_dir).as_posix() if c.path else "",
    } for c in copies]
    ok = all(c.status in ("sent", "queued") for c in copies)
    return _page(slug, 200 if ok else 502, copies=rows)


def install(app: Flask) -> None:
    """Add the form to the preview app: its route, its token and its rate limit."""
    app.extensions["clubjapon_form_key"] = secrets.token_bytes(32)  # forms of this run only
    app.extensions["clubjapon_test_copy_window"] = Window(SENDS_PER_MINUTE, 60)
    app.jinja_env.globals["test_copy_form_token"] = form_token
    app.after_request(_set_cookie)
    app.register_blueprint(blueprint)

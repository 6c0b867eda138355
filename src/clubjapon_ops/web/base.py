"""What both web apps share: settings, the store factory, the templates and request limits."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Response
from markupsafe import Markup, escape

from clubjapon_ops.errors import StoreError
from clubjapon_ops.newsletter.typography import web_phrases
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.web import headers
from clubjapon_ops.web.logsafe import redact_logger

log = logging.getLogger(__name__)


class WebApp(Flask):
    """Flask, escaping in every template (Flask's default escapes only *.html, *.xml...)."""

    def select_jinja_autoescape(self, filename: str | None) -> bool:
        """Escape whatever the template is called: ours end in .html.j2."""
        return True


def base_app(settings: Settings, store_factory: Callable[[], Store], csp: str) -> Flask:
    """A Flask app over templates/web/ with the project's settings, store factory and CSP."""
    app = WebApp(
        "clubjapon_ops.web",
        template_folder=str(Path(settings.root) / "templates" / "web"),
        static_folder=None,
    )
    app.config["CLUBJAPON_SETTINGS"] = settings
    app.config["CLUBJAPON_STORE_FACTORY"] = store_factory
    # Webhooks and forms are small; refuse anything large before reading it.
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    # Flask logs the path of a request that fails: /unsubscribe/TOKEN must not reach a log.
    redact_logger(app.logger.name)
    headers.install(app, csp)
    app.jinja_env.filters["phrases"] = phrases
    app.register_error_handler(StoreError, _store_unavailable)
    return app


# A hyphenated name ("Hauts-de-France"), not an address nor a number: kept on one line.
_HYPHENATED = re.compile(r"(?<![\w@.\-])([^\W\d_]+(?:-[^\W\d_]+)+)(?![\w@.\-])")


def phrases(text: object, lang: str) -> Markup:
    """A template filter: Japanese broken between its phrases as the email breaks it, and
    no line broken at the hyphen of a name (the page's CSS says what .nobr does)."""
    html = web_phrases(str(text)) if lang == "ja" else str(escape(str(text)))
    return Markup(_HYPHENATED.sub(r'<span class="nobr">\1</span>', html))  # escaped above


def _store_unavailable(exc: StoreError) -> Response:
    """The database refused (read-only, locked, full): 503, and one line in the log.

    One line, not Flask's traceback: the chained driver error carries the SQL and its
    parameters, a reader's address among them. A 5xx tells a webhook's provider to retry.
    """
    log.error("database unavailable: %s", exc)
    return Response("Service unavailable\n", status=503, mimetype="text/plain")

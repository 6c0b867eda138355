"""The small web app: the marketing preview, the unsubscribe pages and provider webhooks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask

from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store


def create_app(settings: Settings, store_factory: Callable[[], Store]) -> Flask:
    """Build the Flask app; the store opens on first use so a page can load without it."""
    from clubjapon_ops.web import events, preview, unsubscribe

    app = Flask(
        __name__,
        template_folder=str(Path(settings.root) / "templates" / "web"),
        static_folder=None,
    )
    app.config["CLUBJAPON_SETTINGS"] = settings
    app.config["CLUBJAPON_STORE_FACTORY"] = store_factory
    # Marketing edits templates while the page is open: always re-read them.
    app.config["TEMPLATES_AUTO_RELOAD"] = True
    app.register_blueprint(preview.blueprint)
    app.register_blueprint(unsubscribe.blueprint)
    app.register_blueprint(events.blueprint)
    # Webhooks and forms are small; refuse anything large before reading it.
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    return app

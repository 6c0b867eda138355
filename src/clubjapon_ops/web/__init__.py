"""The two web apps: the public one (unsubscribe, webhooks, health) and the marketing preview.

Only :func:`create_app` may face the internet. The preview lists stored contacts and
unpublished editions: it runs under ``preview --serve``, on loopback or behind a password.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Flask loads only when an app is built, not for every CLI command
    from flask import Flask

    from clubjapon_ops.settings import Settings
    from clubjapon_ops.store import Store


def create_app(
    settings: Settings, store_factory: Callable[[], Store], served_on: str | None = None
) -> Flask:
    """Build the public app; the store opens on first use so a page can load without it.

    It answers to the host of CLUBJAPON_PUBLIC_URL, loopback names (the health check) and
    ``served_on``, the address it listens on; any other Host gets 421.
    """
    from urllib.parse import urlsplit

    from clubjapon_ops.web import clicks, editions, events, health, media, unsubscribe
    from clubjapon_ops.web.base import base_app
    from clubjapon_ops.web.headers import PUBLIC_CSP
    from clubjapon_ops.web.hostnames import require_host

    app = base_app(settings, store_factory, PUBLIC_CSP)
    require_host(app, [urlsplit(settings.public_url).hostname, served_on])
    app.register_blueprint(unsubscribe.blueprint)
    app.register_blueprint(events.blueprint)
    app.register_blueprint(health.blueprint)
    # The public edition pages (the editions issue) go in this blueprint, and only there.
    app.register_blueprint(editions.blueprint)
    app.register_blueprint(media.blueprint)  # the editions' images, PUBLIC_URL/media/
    # Click redirects of sent editions' links (/r/<token>).
    app.register_blueprint(clicks.blueprint)
    # Unsubscribes answered while the store was held, by an earlier run: applied now.
    unsubscribe.start_retries(app)
    return app


def create_preview_app(
    settings: Settings, store_factory: Callable[[], Store], served_on: str | None = None
) -> Flask:
    """Build the preview app, behind basic auth when CLUBJAPON_PREVIEW_PASSWORD is set.

    It answers only to loopback names and ``served_on``, the address it listens on: a page
    that rebinds its own name to 127.0.0.1 gets 421, never the contacts (DNS rebinding).
    """
    from clubjapon_ops.web import media, preview, test_copy_form
    from clubjapon_ops.web.auth import require_password
    from clubjapon_ops.web.base import base_app
    from clubjapon_ops.web.headers import PREVIEW_CSP
    from clubjapon_ops.web.hostnames import require_host

    app = base_app(settings, store_factory, PREVIEW_CSP)
    require_host(app, [served_on])  # before the password: a wrong host is asked for nothing
    # Marketing edits templates while the page is open: always re-read them.
    app.config["TEMPLATES_AUTO_RELOAD"] = True
    require_password(app, settings.preview_password)
    app.register_blueprint(preview.blueprint)
    # The images this machine published: the preview's email shows them from here.
    app.register_blueprint(media.blueprint)
    test_copy_form.install(app)  # "send me a test": behind the host check and the password
    return app

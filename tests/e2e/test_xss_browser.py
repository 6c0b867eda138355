"""The XSS payload, everywhere it can go, in headless Chromium: shown as text, never run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.delivery.tokens import TokenSigner
from clubjapon_ops.settings import load_settings
from clubjapon_ops.store import open_store
from clubjapon_ops.web import create_app, create_preview_app
from tests.conftest import SAMPLE_CSV
from tests.e2e.test_preview import BROWSER_FLAGS, CHROMIUM
from tests.fakes.wsgi import served
from tests.web.conftest import SECRET, SLUG, home  # noqa: F401 - the fixture
from tests.web.payload import PAYLOAD, POISONED, poison_contact, poison_edition

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium")]
P = quote(PAYLOAD, safe="")


@pytest.fixture
def sites(home: Path) -> Iterator[tuple[str, str]]:  # noqa: F811 - the fixture
    settings = load_settings(home, environ={"CLUBJAPON_CSV_PATH": str(SAMPLE_CSV),
                                            "CLUBJAPON_SECRET": SECRET})
    store = open_store(settings.database_url)
    jobs.crm_sync(settings, store)
    poison_contact(store, "fr")
    poison_edition(home / "config" / "editions" / f"{SLUG}.yaml")
    with served(create_preview_app(settings, lambda: store)) as preview, \
            served(create_app(settings, lambda: store)) as public:
        yield preview, public
    store.close()


def test_the_payload_is_shown_and_never_run(sites: tuple[str, str]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    preview, public = sites
    token = TokenSigner(SECRET).make_legacy(SLUG, f"{PAYLOAD}@example.com", "fr")
    pages = [
        f"{preview}/preview/{SLUG}?lang=fr&contact={POISONED}",
        f"{preview}/preview/{SLUG}?lang=ja&contact={POISONED}&width={P}",
        f"{preview}/preview/{SLUG}/email.html?lang=en&contact={POISONED}",
        f"{preview}/preview/{P}",
        f"{preview}/preview/{SLUG}?lang={P}",
        f"{preview}/preview/{SLUG}?contact={P}",
        f"{public}/unsubscribe/{token}",
    ]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        try:
            for url in pages:
                page = browser.new_page()
                dialogs: list[str] = []
                page.on("dialog", lambda d, dialogs=dialogs: (dialogs.append(d.message),
                                                              d.dismiss()))
                page.goto(url)
                page.wait_for_load_state("load")
                shown = "".join(f.locator("body").inner_text() for f in page.frames)
                if "/unsubscribe/" in url:
                    # The page names nobody, even from a link that carries an address.
                    assert PAYLOAD not in shown and "example.com" not in shown, url
                else:
                    assert PAYLOAD in shown, url  # it got there, as text
                for frame in page.frames:
                    assert frame.locator('img[src="x"]').count() == 0, url
                assert dialogs == [], url
                page.close()
        finally:
            browser.close()


def test_the_unsubscribe_page_works_under_its_policy(sites: tuple[str, str]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    _, public = sites
    token = TokenSigner(SECRET).make_legacy(SLUG, "camille.dubois@hokuto.example.com", "fr")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{public}/unsubscribe/{token}")
            button = page.locator("#confirm")
            # The stylesheet applied: it is allowed by this request's nonce.
            assert button.evaluate("b => getComputedStyle(b).backgroundColor") == \
                "rgb(179, 40, 61)"
            with page.expect_navigation():
                button.click()  # form-action 'self'
            assert "ne recevra plus nos messages" in page.locator("#done").inner_text()
            assert errors == []
        finally:
            browser.close()

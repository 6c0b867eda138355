"""The public archive as a reader opens it: waitress, then headless Chromium, CSP enforced."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from clubjapon_ops.settings import load_settings
from clubjapon_ops.store import open_store
from clubjapon_ops.web import create_app
from tests.conftest import REPO, SAMPLE_CSV
from tests.e2e.test_preview import BROWSER_FLAGS, CHROMIUM
from tests.fakes.wsgi import served
from tests.web.archive_helpers import mark_sent

pytestmark = pytest.mark.e2e
SLUG = "2025-11-04-lille"


@pytest.fixture
def base(tmp_path: Path) -> Iterator[str]:
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    env = {"CLUBJAPON_CSV_PATH": str(SAMPLE_CSV), "CLUBJAPON_SECRET": "archive-e2e-0123456789ab"}
    settings = load_settings(tmp_path, environ=env)
    store = open_store(settings.database_url)
    mark_sent(store, SLUG)
    with served(create_app(settings, lambda: store)) as url:  # waitress, as `web` runs it
        yield url
    store.close()


def test_archive_over_http(base: str) -> None:
    import requests

    index = requests.get(f"{base}/editions/", timeout=10)
    assert index.status_code == 200 and index.headers["Cache-Control"] == "public, max-age=300"
    page = requests.get(f"{base}/editions/{SLUG}/ja", timeout=10)
    assert page.status_code == 200 and "ご担当者様" in page.text
    missing = requests.get(f"{base}/editions/2031-01-01-nowhere/ja", timeout=10)
    assert missing.status_code == 404 and missing.headers["Cache-Control"] == "no-store"


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (see .ci/run)")
def test_archive_in_headless_chromium(base: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # A CSP refusal (an inline style without the nonce, a script) is a console error.
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            response = page.goto(f"{base}/editions/")
            assert response is not None and response.status == 200
            with page.expect_navigation():
                page.locator(f'a[href="/editions/{SLUG}/ja"]').click()
            assert page.url.endswith(f"/editions/{SLUG}/ja")
            page.wait_for_load_state("load")
            assert "地域圏と日本の絆、さらに強く" in page.locator("h1").inner_text()
            assert page.locator(".greeting").inner_text() == "ご担当者様"
            # The inline style attributes apply under the page's policy.
            color = page.locator("h1").evaluate("e => getComputedStyle(e).color")
            assert color == "rgb(31, 58, 95)"
            assert page.locator(".view-online").count() == 0
            assert errors == []
            # From an edition to its other languages, and back to the index. Followed by
            # address, not clicked: a click runs Playwright's script in the sandboxed page.
            french = page.locator(f'nav a[hreflang="fr"][href="/editions/{SLUG}/fr"]')
            page.goto(base + str(french.get_attribute("href")))
            assert "Des liens toujours plus forts" in page.locator("h1").inner_text()
            page.goto(base + str(page.locator("nav a").first.get_attribute("href")))
            assert page.url == f"{base}/editions/"
            assert page.locator(f"section[id=\"{SLUG}\"] h2").inner_text().strip()
            page.close()
        finally:
            browser.close()

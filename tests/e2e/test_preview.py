"""Preview as marketing uses it: the CLI writing files, and the web page in headless Chromium."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.contacts import Contact
from clubjapon_ops.newsletter.typography import without_phrase_breaks
from clubjapon_ops.settings import Settings, load_settings
from clubjapon_ops.store import open_store
from clubjapon_ops.store.contacts import upsert_contacts
from clubjapon_ops.web import create_preview_app
from tests.conftest import REPO, SAMPLE_CSV
from tests.fakes.wsgi import served
from tests.newsletter.conftest import SLUG

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRAFT = "2026-03-12-tokyo"
BROKEN = "2026-01-20-roubaix-with-a-rather-long-name-for-a-phone"
LONG_ADDRESS = "marie-christine.delacroix-villeneuve@hokuto-automotive-france.example.com"
BROWSER_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBJAPON_")}
    env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(SAMPLE_CSV)})
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return tmp_path


def test_preview_writes_html_text_and_eml_for_a_stored_contact(home: Path) -> None:
    assert cli(home, "sync").returncode == 0
    out = home / "out"
    result = cli(home, "preview", SLUG, "--contact", "Haruto.Sato@hokuto.example.com",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    paths = [Path(line.split()[-1]) for line in result.stdout.splitlines()[1:]]
    assert sorted(p.suffix for p in paths) == [".eml", ".html", ".txt"]
    assert all(p.parent == out and p.is_file() for p in paths)
    eml = next(p for p in paths if p.suffix == ".eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert str(message["To"]) == "佐藤 陽翔 <haruto.sato@hokuto.example.com>"
    text = next(p for p in paths if p.suffix == ".txt").read_text(encoding="utf-8")
    assert text.startswith("佐藤様")


def test_preview_check_passes_then_fails_on_a_broken_template(home: Path) -> None:
    ok = cli(home, "preview", SLUG, "--check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 error(s)" in ok.stdout
    template = home / "templates/newsletter/email.html.j2"
    template.write_text(template.read_text().replace(
        "<body", '<img src="http://x.example/a.png"><body'), encoding="utf-8")
    bad = cli(home, "preview", SLUG, "--check")
    assert bad.returncode == 1
    assert "img-alt" in bad.stdout and "link-scheme" not in bad.stdout


def test_preview_of_an_unknown_edition_says_which_exist(home: Path) -> None:
    result = cli(home, "preview", "2031-01-01-nowhere", "--lang", "fr")
    assert result.returncode == 2
    assert f"editions: {SLUG}" in result.stderr


@pytest.fixture
def server(home: Path) -> Iterator[tuple[str, Settings]]:
    settings = load_settings(home, environ={"CLUBJAPON_CSV_PATH": str(SAMPLE_CSV)})
    store = open_store(settings.database_url)
    jobs.crm_sync(settings, store)
    # A long but ordinary address: the contact <select> is as wide as its widest option, and
    # on a machine whose fallback font is wider (no Noto CJK) the sample ones were enough.
    with store.transaction() as conn:
        upsert_contacts(conn, [Contact(email=LONG_ADDRESS, source="csv", first_name="Marie",
                                       language="fr")])
    # waitress, as 'preview --serve' runs it.
    with served(create_preview_app(settings, lambda: store), threads=4) as url:
        yield url, settings
    store.close()


def test_preview_page_http(server: tuple[str, Settings]) -> None:
    import requests

    base, _ = server
    page = requests.get(f"{base}/preview/{SLUG}?lang=ja", timeout=10)
    assert page.status_code == 200
    assert "クラブ・ジャポン・オー＝ド＝フランス：第3回会合" in page.text
    # No error; the offline rules may warn about the layout (caniemail gaps, charset).
    assert 'id="problems"' in page.text and '<li class="error">' not in page.text
    assert requests.get(f"{base}/preview/{SLUG}?lang=xx", timeout=10).status_code == 400
    missing = requests.get(f"{base}/preview/{SLUG}?contact=ghost@example.com", timeout=10)
    assert missing.status_code == 404
    index = requests.get(f"{base}/", timeout=10, allow_redirects=False)
    assert index.status_code == 200 and f'id="edition-{SLUG}"' in index.text


def test_preview_reflects_edits_on_reload(server: tuple[str, Settings]) -> None:
    import requests

    base, settings = server
    path = settings.root / "config/editions" / f"{SLUG}.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "Ever stronger ties between the Region and Japan", "Edited headline"), encoding="utf-8")
    html = requests.get(f"{base}/preview/{SLUG}/email.html?lang=en", timeout=10).text
    assert "Edited headline" in html
    broken = path.read_text(encoding="utf-8").replace("number: 3\n", "")
    path.write_text(broken, encoding="utf-8")
    page = requests.get(f"{base}/preview/{SLUG}?lang=en", timeout=10)
    assert page.status_code == 500 and "number: missing: add it" in page.text


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (see .ci/run)")
def test_preview_in_headless_chromium(server: tuple[str, Settings], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    base, settings = server
    shots = Path(os.environ.get("CLUBJAPON_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        try:
            for lang, marker in (("fr", "Des liens toujours plus forts"),
                                 ("ja", "地域圏と日本の絆、さらに強く")):
                for width, viewport in (("desktop", 1280), ("mobile", 375)):
                    page = browser.new_page(viewport={"width": viewport, "height": 900})
                    errors: list[str] = []
                    page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                    # A CSP refusal (a style or script without the nonce) is a console error.
                    page.on("console", lambda m, errors=errors: errors.append(m.text)
                            if m.type == "error" else None)
                    response = page.goto(f"{base}/preview/{SLUG}?lang={lang}&width={width}")
                    assert response is not None and response.status == 200
                    page.wait_for_load_state("load")
                    assert page.locator("#error").count() == 0
                    assert errors == []
                    frame = page.frame_locator("#email")
                    assert marker in without_phrase_breaks(frame.locator("h1").inner_text())
                    if lang == "ja":
                        assert "様" in frame.locator(".greeting").inner_text()
                        assert "クラブ・ジャポン" in page.locator("#subject").inner_text()
                    page.screenshot(path=str(shots / f"preview-{lang}-{width}.png"),
                                    full_page=False)
                    overflow = page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth")
                    assert overflow <= 0, f"{lang} {width}: page overflows by {overflow}px"
                    if width == "mobile":
                        inner = page.frames[1]
                        email_overflow = inner.evaluate(
                            "document.documentElement.scrollWidth - window.innerWidth")
                        assert email_overflow <= 0, f"{lang}: email overflows by {email_overflow}px"
                    page.close()
            # The index, with a draft and a broken file whose error is one long unbroken line.
            editions = settings.root / "config/editions"
            ready = (editions / f"{SLUG}.yaml").read_text(encoding="utf-8")
            (editions / f"{DRAFT}.yaml").write_text(ready.replace(
                "status: ready", "status: draft").replace("date: 2025-11-04", "date: 2026-03-12"),
                encoding="utf-8")
            (editions / f"{BROKEN}.yaml").write_text(f"number: 4\n{'x' * 120}: 1\n",
                                                      encoding="utf-8")
            for width, viewport in (("desktop", 1280), ("mobile", 375)):
                page = browser.new_page(viewport={"width": viewport, "height": 900})
                errors.clear()
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                page.on("console", lambda m, errors=errors: errors.append(m.text)
                        if m.type == "error" else None)
                response = page.goto(f"{base}/")
                assert response is not None and response.status == 200
                page.wait_for_load_state("load")
                assert errors == []
                assert page.locator(f"#edition-{DRAFT} .status.draft").is_visible()
                assert "invalid" in page.locator(f"#edition-{BROKEN}").inner_text()
                page.screenshot(path=str(shots / f"index-{width}.png"), full_page=True)
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"index {width}: page overflows by {overflow}px"
                with page.expect_navigation():
                    page.click(f"#edition-{SLUG} a >> text=ja")
                assert "地域圏と日本の絆" in without_phrase_breaks(
                    page.frame_locator("#email").locator("h1").inner_text())
                with page.expect_navigation():
                    page.click("#to-index")
                assert page.locator("#editions").is_visible()
                page.close()
            # The contact switch is a script: under the CSP it runs only with the nonce.
            page = browser.new_page()
            page.goto(f"{base}/preview/{SLUG}?lang=fr")
            with page.expect_navigation():
                page.select_option("#contact", LONG_ADDRESS)
            assert "contact=marie-christine.delacroix-villeneuve%40" in page.url
            assert "Marie" in page.locator("#text").inner_text()
            page.close()
        finally:
            browser.close()

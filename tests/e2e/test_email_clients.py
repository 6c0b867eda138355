"""The real edition, every language, in headless Chromium as mail clients show it.

Each message is loaded as sent (inlined styles plus the <style> block) and as the clients
that strip <style> show it (SFR and La Poste webmail, Gmail with non-Google accounts), at
phone and desktop widths: nothing may be wider than the screen or stick out of its cell,
no text is under 14 px on a phone, and the details a client may get wrong are checked in
the browser's computed styles rather than in our own source.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from clubjapon_ops.contacts import Contact
from clubjapon_ops.newsletter.render import PersonalMessage
from clubjapon_ops.newsletter.service import load_newsletter
from clubjapon_ops.settings import load_settings
from tests.conftest import REPO
from tests.e2e.test_preview import BROWSER_FLAGS, CHROMIUM, LONG_ADDRESS
from tests.newsletter.conftest import SLUG

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium")]

LANGS = ("fr", "en", "ja")
WIDTHS = (320, 375, 600, 800)
PHONE = 480  # at or under this width, no text below 14 px
NAVY = "rgb(31, 58, 95)"
POSTAL = "Club Japon des Hauts-de-France; 151 avenue du Président Hoover; 59555 Lille Cedex"
# What clients that strip the <style> block do: the inlined styles are all that is left.
_STYLE_BLOCK = re.compile(r"<style\b.*?</style>", re.S | re.I)

# Every check runs in the page: layout boxes and computed styles are the browser's own.
MEASURE = """() => {
  const out = {scrollWidth: document.documentElement.scrollWidth, viewport: innerWidth,
               outside: [], overflowing: [], small: []};
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden'
      && getComputedStyle(el).opacity !== '0';
  };
  const name = (el) => el.tagName.toLowerCase() + (el.className ? '.' + el.className : '')
    + ' "' + (el.textContent || '').trim().slice(0, 30) + '"';
  const container = document.querySelector('.container').getBoundingClientRect();
  for (const el of document.querySelectorAll('.container *')) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    // Its box inside its cell (a cell inside its table) and inside the 600 px container.
    const holder = el.tagName === 'TD' ? el.closest('table') : el.parentElement.closest('td');
    const h = holder.getBoundingClientRect();
    for (const [box, what] of [[h, 'its ' + holder.tagName.toLowerCase()],
                               [container, 'the container']]) {
      const left = box.left - r.left, right = r.right - box.right;
      if (left > 0.5 || right > 0.5)
        out.outside.push(
          `${name(el)} sticks out of ${what} by ${Math.max(left, right).toFixed(1)} px`);
    }
    // Content wider than its own box (a long word or address) spills without moving it.
    if (getComputedStyle(el).display === 'block' && el.scrollWidth > el.clientWidth + 1)
      out.overflowing.push(`${name(el)}: content ${el.scrollWidth} px in ${el.clientWidth} px`);
    const ownText = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (ownText && size < 14) out.small.push(`${name(el)}: ${size} px`);
  }
  const pre = document.querySelector('.preheader');
  const wrapper = document.querySelector('body > .wrapper');
  const club = document.querySelector('.footer-club');
  const quote = document.querySelector('.quote-text');
  // The preheader's colour against the first background behind it.
  let behind = pre.parentElement;
  while (behind && getComputedStyle(behind).backgroundColor === 'rgba(0, 0, 0, 0)')
    behind = behind.parentElement;
  out.preheader = {height: pre.getBoundingClientRect().height,
                   display: getComputedStyle(pre).display, color: getComputedStyle(pre).color,
                   background: behind ? getComputedStyle(behind).backgroundColor : 'none'};
  out.wrapper = wrapper === null ? null : {
    lang: wrapper.getAttribute('lang'), dir: wrapper.getAttribute('dir'),
    first: document.body.firstElementChild === wrapper};
  out.clubColour = getComputedStyle(club).color;
  out.quoteStyle = getComputedStyle(quote).fontStyle;
  return out;
}"""


@pytest.fixture(scope="module")
def messages() -> dict[str, PersonalMessage]:
    """The real edition, one reader per language, with the longest address we know."""
    settings = load_settings(REPO, environ={"CLUBJAPON_POSTAL_ADDRESS": POSTAL})
    newsletter = load_newsletter(settings, SLUG)
    return {lang: newsletter.personalise(Contact(
        email=LONG_ADDRESS, source="test", first_name="Marie-Christine", last_name="佐藤",
        language=lang)) for lang in LANGS}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def measure(browser: Any, html: str, width: int) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.route("**/*", lambda route: route.abort())  # the images: no network in tests
        page.set_content(html, wait_until="domcontentloaded")
        return dict(page.evaluate(MEASURE))
    finally:
        page.close()


@pytest.mark.parametrize("style", [True, False], ids=["with-style", "style-stripped"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("lang", LANGS)
def test_the_email_fits_and_reads_at_every_width(
    browser: Any, messages: dict[str, PersonalMessage], lang: str, width: int, style: bool
) -> None:
    html = messages[lang].html
    if not style:
        html = _STYLE_BLOCK.sub("", html)
        assert "<style" not in html
    m = measure(browser, html, width)
    assert m["scrollWidth"] <= m["viewport"], \
        f"{m['scrollWidth'] - m['viewport']} px of horizontal scrolling"
    assert m["outside"] == []
    assert m["overflowing"] == []
    if width <= PHONE:
        assert m["small"] == []
    # The club's name in the footer: navy, not the grey of the other footer lines.
    assert m["clubColour"] == NAVY
    # The preheader is hidden, and not by painting it the colour of the background.
    pre = m["preheader"]
    assert pre["height"] == 0 and pre["display"] == "none", pre
    assert pre["color"] != pre["background"], pre
    assert m["wrapper"] == {"lang": lang, "dir": "ltr", "first": True}
    # Kana and kanji are never slanted: no synthetic italic.
    assert m["quoteStyle"] == ("normal" if lang == "ja" else "italic")


# caniemail: the Gmail iOS app, and the Android app with a Google account, drop <wbr> and
# overflow-wrap and put word-wrap: break-word on every element; word-break is kept.
_WBR = re.compile(r"<wbr\s*/?>", re.I)
_OVERFLOW_WRAP = re.compile(r"overflow-wrap\s*:\s*[^;\"'}]*;?", re.I)
_START_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)\b([^>]*)>")
_STYLE_ATTR = re.compile(r"""\sstyle\s*=\s*(["'])""", re.I)


def gmail_app(html: str) -> str:
    """The message as the Gmail apps show it (caniemail's css-overflow-wrap, css-word-wrap)."""
    html = _OVERFLOW_WRAP.sub("", _WBR.sub("", html))

    def break_word(tag: re.Match[str]) -> str:
        if tag.group(1).lower() in ("html", "head", "meta", "title", "style"):
            return tag.group()
        styled = _STYLE_ATTR.search(tag.group())
        if styled is None:
            return tag.group()[:-1] + ' style="word-wrap:break-word">'
        return (tag.group()[:styled.end()] + "word-wrap:break-word;"
                + tag.group()[styled.end():])

    return _START_TAG.sub(break_word, html)


def test_the_gmail_simulation_does_what_the_apps_do() -> None:
    html = '<p style="overflow-wrap:anywhere;color:red">a<wbr>b<wbr\n>c</p><br>'
    assert gmail_app(html) == ('<p style="word-wrap:break-word;color:red">abc</p>'
                               '<br style="word-wrap:break-word">')


@pytest.mark.parametrize("width", (320, 375))
@pytest.mark.parametrize("lang", LANGS)
def test_the_email_fits_in_the_gmail_apps(
    browser: Any, messages: dict[str, PersonalMessage], lang: str, width: int
) -> None:
    # Issue 23: keep-all Japanese held together only by <wbr> made one word of a whole
    # paragraph there, 1,116 px wide on a 375 px phone.
    html = gmail_app(messages[lang].html)
    assert "<wbr" not in html and "overflow-wrap" not in html
    m = measure(browser, html, width)
    assert m["scrollWidth"] <= m["viewport"], \
        f"{m['scrollWidth'] - m['viewport']} px of horizontal scrolling"
    assert m["outside"] == []
    assert m["overflowing"] == []


# Kinsoku: no line starts with these (closing punctuation, the prolonged sound mark and
# the small kana; JIS X 4051's line-start prohibitions, strict set).
NO_LINE_START = "、。，．・：；？！）」』】〕〉》ーぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々"
LINE_STARTS = """(bad) => {
  const forbidden = new Set([...bad]);
  const blockOf = (node) => {
    let el = node.parentElement;
    while (el && !['block', 'list-item', 'table-cell'].includes(getComputedStyle(el).display))
      el = el.parentElement;
    return el;
  };
  const out = [], lastTop = new Map(), range = document.createRange();
  const walker = document.createTreeWalker(document.querySelector('.container'),
                                           NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const block = blockOf(node), text = node.textContent;
    for (let i = 0; block && i < text.length; i++) {
      if (/[\\s\\u2060\\u200b]/.test(text[i])) continue;
      range.setStart(node, i); range.setEnd(node, i + 1);
      const rects = range.getClientRects();
      if (!rects.length) continue;
      const top = rects[0].top, before = lastTop.get(block);
      // A character lower than the one before it in the same block starts a line.
      if (before !== undefined && top > before + 2 && forbidden.has(text[i]))
        out.push(`a line starts with ${text[i]}: "${text.slice(Math.max(0, i - 8), i + 4)}"`);
      lastTop.set(block, top);
    }
  }
  return out;
}"""


@pytest.mark.parametrize("width", (320, 340, 375, 414, 600))
def test_no_japanese_line_starts_with_what_kinsoku_forbids(
    browser: Any, messages: dict[str, PersonalMessage], width: int
) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.route("**/*", lambda route: route.abort())
        page.set_content(messages["ja"].html, wait_until="domcontentloaded")
        assert page.evaluate(LINE_STARTS, NO_LINE_START) == []
    finally:
        page.close()

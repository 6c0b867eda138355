"""The Japanese HTML part in headless Chromium at phone widths: no line breaks inside a phrase.

Where Chromium breaks each line is read from the layout itself: the line box of every
character (Range.getClientRects), grouped by the block that holds it. A break is fine
between two of BudouX's phrases (its model, asked here), at a space, or inside a phrase
wider than the whole line (``overflow-wrap: anywhere`` is there for those).
"""

from __future__ import annotations

import itertools
from typing import Any

import budoux
import pytest

from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS, load_newsletter
from clubjapon_ops.newsletter.textwrap_cjk import display_width
from clubjapon_ops.newsletter.typography import GLUED_PHRASE
from clubjapon_ops.settings import load_settings
from tests.conftest import REPO
from tests.e2e.test_preview import BROWSER_FLAGS, CHROMIUM
from tests.newsletter.conftest import SLUG

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None,
                       reason="no Chromium: apt-get install chromium (see .ci/run)"),
]
PARSER = budoux.load_default_japanese_parser()

# Per block (the nearest ancestor that is not display: inline): its text as written (text
# nodes joined, U+200B left out), and for each visible character its index in that text,
# the top and bottom of its line box and its width; and the width lines have there.
LAYOUT = r"""
() => {
  const blocks = new Map();
  const range = document.createRange();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    let block = node.parentElement;
    while (getComputedStyle(block).display === 'inline') block = block.parentElement;
    if (!blocks.has(block)) {
      const cs = getComputedStyle(block);
      blocks.set(block, {text: [], chars: [], avail:
        block.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)});
    }
    const entry = blocks.get(block);
    let offset = 0;
    for (const ch of node.data) {
      const here = offset;
      offset += ch.length;
      if (ch === '\u200b') continue;
      const index = entry.text.length;
      entry.text.push(ch);
      if (/\s/.test(ch)) continue;
      range.setStart(node, here);
      range.setEnd(node, here + ch.length);
      const rect = range.getClientRects()[0];
      if (!rect || rect.width === 0) continue;
      entry.chars.push([index, rect.top, rect.bottom, rect.width]);
    }
  }
  return [...blocks.values()].filter(e => e.chars.length).map(
    e => ({text: e.text.join(''), chars: e.chars, avail: e.avail}));
}
"""


def phrase_spans(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for phrase in PARSER.parse(text):
        spans.append((pos, pos + len(phrase)))
        pos += len(phrase)
    return spans


def breaks_inside_phrases(block: dict[str, Any], longest: int | None = None) -> list[str]:
    """Line breaks of one block that fall inside a phrase narrower than the line (and of at
    most ``longest`` columns)."""
    text, chars = block["text"], block["chars"]
    spans = phrase_spans(text)
    starts = {start for start, _ in spans}
    found = []
    for (ia, top_a, bottom_a, _), (ib, top_b, _, _) in itertools.pairwise(chars):
        if top_b < (top_a + bottom_a) / 2:
            continue  # same line
        if ib != ia + 1 or ib in starts:
            continue  # at a space, or between two phrases
        if text[ia] == "-" and text[ia - 1].isascii():
            continue  # after the hyphen of a Latin compound (Hauts-/de-France), as in fr
        start, end = next(span for span in spans if span[0] <= ia < span[1])
        width = sum(c[3] for c in chars if start <= c[0] < end)
        if width > block["avail"] + 0.5:
            continue  # the phrase alone is wider than the line
        if longest is not None and display_width(text[start:end]) > longest:
            continue
        found.append(f"{text[max(start, ia - 8):ia + 1]}/{text[ib:min(end, ib + 8)]}")
    return found


def html_of(lang: str) -> str:
    newsletter = load_newsletter(load_settings(REPO, environ={}), SLUG)
    return newsletter.personalise(SAMPLE_CONTACTS[lang]).html


def layout(html: str, width: int) -> list[dict[str, Any]]:
    """The blocks of ``html`` laid out by Chromium in a window ``width`` px wide."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.set_content(html, wait_until="load")
            blocks: list[dict[str, Any]] = page.evaluate(LAYOUT)
            page.close()
        finally:
            browser.close()
    return blocks


def lines_of(block: dict[str, Any]) -> list[str]:
    """The visible characters of a block, line by line."""
    lines: list[str] = []
    last_bottom = None
    for index, top, bottom, _ in block["chars"]:
        if last_bottom is None or top >= last_bottom - 1:
            lines.append("")
        lines[-1] += block["text"][index]
        last_bottom = bottom
    return lines


@pytest.mark.parametrize("width", [320, 375])
def test_french_punctuation_never_starts_a_line(width: int) -> None:
    """Before: "avec un objectif / : renforcer" (an ordinary space before the colon)."""
    blocks = layout(html_of("fr"), width)
    lines = [line for block in blocks for line in lines_of(block)]
    assert len(lines) > 60  # the layout was read, and it wraps
    assert [line for line in lines if line[0] in ":;!?»"] == []
    assert [line for line in lines if line[-1] == "«"] == []


def archive_page_of(lang: str) -> str:
    newsletter = load_newsletter(load_settings(REPO, environ={}), SLUG)
    return newsletter.renderer.render_web_page(newsletter.edition, lang)  # type: ignore[arg-type]


def japanese_blocks(html: str, width: int) -> list[dict[str, Any]]:
    return [b for b in layout(html, width) if any("\u3040" <= c <= "\u9fff" for c in b["text"])]


@pytest.mark.parametrize("width", [320, 375])
def test_no_phrase_is_broken_at_phone_width_on_the_archive_page(width: int) -> None:
    # The public page keeps BudouX's phrases (<wbr>, keep-all): no mail client rewrites it.
    japanese = japanese_blocks(archive_page_of("ja"), width)
    assert len(japanese) >= 20  # the layout was read
    wrapped = [b for b in japanese if len({round(c[1]) for c in b["chars"]}) > 1]
    assert len(wrapped) >= 10  # and lines do wrap at this width
    inside = [found for block in japanese for found in breaks_inside_phrases(block)]
    assert inside == [], "\n".join(inside)


@pytest.mark.parametrize("width", [320, 375])
def test_the_emails_headings_keep_their_phrases(width: int) -> None:
    # In the email, paragraphs break as mail clients break Japanese (issue 23); a heading,
    # a label or the masthead keeps each phrase whole with U+2060, which no client drops
    # (up to GLUED_PHRASE columns: longer, glued, it could be wider than a phone's column).
    short = [b for b in japanese_blocks(html_of("ja"), width) if len(b["text"].strip()) <= 40]
    assert len(short) >= 10  # the layout was read
    inside = [found for block in short
              for found in breaks_inside_phrases(block, longest=GLUED_PHRASE)]
    assert inside == [], "\n".join(inside)

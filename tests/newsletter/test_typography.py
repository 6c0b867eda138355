"""Typography as a rendering step: French non-breaking spaces, Japanese phrases kept whole.

The references are not ours: the French rules are those of the Lexique des règles
typographiques en usage à l'Imprimerie nationale (U+202F before ; ! ? », after «; U+00A0
before : and, as issue 14 asks, inside numbers), and a Japanese phrase is what BudouX's
own model says it is (``budoux.load_default_japanese_parser``), asked here directly.
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import budoux
import pytest

from clubjapon_ops.newsletter import textwrap_cjk
from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS, Newsletter, load_newsletter
from clubjapon_ops.newsletter.textwrap_cjk import display_width, wrap
from clubjapon_ops.newsletter.typography import (
    JA_EMAIL,
    KEEP_ALL,
    NBSP,
    NNBSP,
    french,
    typeset,
    typeset_html,
    without_phrase_breaks,
)
from clubjapon_ops.settings import Settings, load_settings
from tests.conftest import REPO
from tests.newsletter.conftest import SLUG, edit

PARSER = budoux.load_default_japanese_parser()
# An ordinary space where French wants a non-breaking one, or none where it wants one.
ORDINARY = re.compile(r" [:;!?»]|« |[^\s;!?«(][;!?]")


def shipped() -> Newsletter:
    return load_newsletter(load_settings(REPO, environ={}), SLUG)


def visible_text(html: str) -> str:
    """The text of an HTML document as a reader sees it: no tags, styles, comments."""
    html = re.sub(r"<(style|script)\b.*?</\1>|<!--.*?-->", " ", html, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", "", html))


def ordinary_spaces(text: str) -> list[str]:
    """Where French rules are not applied (URLs, which never get them, left out)."""
    text = re.sub(r"(?:https?://|mailto:)\S+", "URL", text)
    return [text[max(0, m.start() - 12):m.end() + 3] for m in ORDINARY.finditer(text)]


def phrase_ends(text: str) -> set[int]:
    """Offsets between BudouX's phrases (and the ends of the text)."""
    ends, pos = {0}, 0
    for phrase in PARSER.parse(text):
        pos += len(phrase)
        ends.add(pos)
    return ends


# French, rule by rule ----------------------------------------------------------------

@pytest.mark.parametrize(("before", "after"), [
    ("rigide ? Non", f"rigide{NNBSP}? Non"),
    ("vraiment !", f"vraiment{NNBSP}!"),
    ("d’abord ; ensuite", f"d’abord{NNBSP}; ensuite"),
    ("« Bonjour »", f"«{NNBSP}Bonjour{NNBSP}»"),
    ("un objectif : renforcer", f"un objectif{NBSP}: renforcer"),
    ("10 000 emplois et 1 250 000 euros", f"10{NBSP}000 emplois et 1{NBSP}250{NBSP}000 euros"),
    # French writes the space even where the author did not.
    ("Une question? Une idée!", f"Une question{NNBSP}? Une idée{NNBSP}!"),
    ("d’abord; ensuite", f"d’abord{NNBSP}; ensuite"),
    ("Quoi?!", f"Quoi{NNBSP}?!"),
    ("≈ 10 000 emplois", f"≈{NBSP}10{NBSP}000 emplois"),
    # The colon too (the review: "Note: 10/10" was left), only where a sign ends a word:
    # a code ("ABC;DEF") and a ratio ("3:2") stay as written.
    ("Note: 10/10", f"Note{NBSP}: 10/10"),
    ("Code promo: ABC;DEF", f"Code promo{NBSP}: ABC;DEF"),
    ("un ratio de 3:2", "un ratio de 3:2"),
    ("(rappel):", f"(rappel){NBSP}:"),
])
def test_french_spaces(before: str, after: str) -> None:
    assert french(before) == after
    assert french(after) == after  # idempotent


@pytest.mark.parametrize("untouched", [
    "https://club-japon.example.org/editions/?a=1;b=2!",
    "mailto:club-japon@example.org?subject=Club%20Japon",
    "écrire à club-japon@example.org",
    "rendez-vous à 10:30, puis 14:05",
    "le 4 novembre 2025",
    "en 2025 200 entreprises",  # a year then a number: not one number
    "\ue000unsubscribe_url\ue001",
    "(?) et «À COMPLÉTER»",
    "inscription sur club-japon.example.fr/agenda?lang=fr;x=1",  # no scheme: still a URL
])
def test_french_rules_leave_urls_addresses_times_and_slots_alone(untouched: str) -> None:
    assert french(untouched) == untouched


def test_french_rules_apply_to_french_only() -> None:
    for lang in ("en", "ja"):
        assert typeset("Reminder : what now ? « quote »", lang) == (
            "Reminder : what now ? « quote »")
        assert typeset_html("<p>What now ?</p>", lang) == "<p>What now ?</p>"


def test_french_html_sets_text_nodes_only() -> None:
    html = (
        '<!DOCTYPE html><html><head><title>Bilan : 2025</title>'
        '<style>a:hover { color: red; } p::before { content: "?"; }</style></head>'
        '<body><!-- note : commentaire ? -->'
        '<a href="https://x.example/?a=1;b=2" title="Vraiment ?">Vraiment ?</a>'
        '<p>Tom &amp; Jerry ; &nbsp;? &#39;x&#39;! 10 000</p>'
        '<!--[if mso]><v:roundrect><center>Écrire : ici</center></v:roundrect><![endif]-->'
        "</body></html>"
    )
    out = typeset_html(html, "fr")
    assert "<title>Bilan\u00a0: 2025</title>" in out
    assert '<style>a:hover { color: red; } p::before { content: "?"; }</style>' in out
    assert "<!-- note : commentaire ? -->" in out
    assert '<a href="https://x.example/?a=1;b=2" title="Vraiment ?">' in out
    assert f">Vraiment{NNBSP}?</a>" in out
    assert f"<p>Tom &amp; Jerry{NNBSP}; &nbsp;? ’x’{NNBSP}! 10{NBSP}000</p>" in out
    assert f"<center>Écrire{NBSP}: ici</center>" in out  # Outlook shows this one
    assert typeset_html(out, "fr") == out


def test_the_shipped_french_edition_is_set(newsletter_fr: tuple[str, str, str]) -> None:
    """Before: 11 ordinary spaces in the HTML, 15 in the text part, 1 in the subject."""
    html, text, subject = newsletter_fr
    assert ordinary_spaces(visible_text(html)) == []
    assert ordinary_spaces(text) == []
    assert ordinary_spaces(subject) == []
    assert f"Hauts-de-France{NBSP}: retour" in subject
    assert f"rigide{NNBSP}? Déconstruire" in visible_text(html)
    assert f"«{NNBSP}Le Japon" in visible_text(html)
    assert f"un objectif{NBSP}: renforcer" in text
    assert f"habitants.{NNBSP}»" in text
    # A colon never starts a line of the text part ("avec un objectif / : renforcer").
    assert not re.search(r"^[ >]*[:;!?»]", text, flags=re.M)
    # Never in attributes, URLs or the stylesheet.
    for value in re.findall(r'(?:href|src|style|class)="([^"]*)"', html):
        assert NBSP not in value and NNBSP not in value
    for style in re.findall(r"<style\b.*?</style>", html, flags=re.S):
        assert NBSP not in style and NNBSP not in style
    for url in re.findall(r"(?:https://|mailto:)\S+", text):
        assert NBSP not in url and NNBSP not in url


@pytest.fixture(scope="module")
def newsletter_fr() -> tuple[str, str, str]:
    message = shipped().personalise(SAMPLE_CONTACTS["fr"])
    return message.html, message.text, message.subject


def test_the_preheader_is_set() -> None:
    rendered = shipped().rendered["fr"]
    assert f"franco-japonaise{NBSP}: l’essentiel" in rendered.preheader
    assert rendered.preheader in visible_text(rendered.html.statics[0])


def test_a_greeting_is_set_once_per_language(project_settings: Settings) -> None:
    strings = project_settings.root / "templates" / "newsletter" / "strings.yaml"
    edit(strings, 'greeting_named: "Bonjour {first_name},"',
         'greeting_named: "Bonjour {first_name} !"')
    newsletter = load_newsletter(project_settings, SLUG)
    message = newsletter.personalise(SAMPLE_CONTACTS["fr"])
    assert f"Bonjour Camille{NNBSP}!" in message.text
    assert f"Bonjour Camille{NNBSP}!" in message.html


def test_english_and_japanese_subjects_are_left_as_written() -> None:
    newsletter = shipped()
    for lang in ("en", "ja"):
        assert newsletter.rendered[lang].subject == newsletter.edition.subject[lang]


# Japanese, text part ---------------------------------------------------------------

def wrap_points(wrapped: str, flat: str) -> list[int]:
    """Offsets in ``flat`` where ``wrapped`` (the same text, wrapped) starts a new line."""
    points, i, j = [], 0, 0
    while i < len(wrapped):
        if j < len(flat) and wrapped[i] == flat[j]:
            i, j = i + 1, j + 1
            continue
        assert wrapped[i] == "\n", (wrapped[i - 20:i + 20], flat[j - 20:j + 20])
        points.append(j)
        i += 1
        while j < len(flat) and flat[j] == " ":  # the space the line ended on
            j += 1
        while wrapped[i] in " >" and not (wrapped[i] == flat[j] and flat[j] not in " >"):
            i += 1  # the continuation indent ("   ", "  > ")
    return points


@pytest.fixture(scope="module")
def ja_text_parts() -> tuple[str, str]:
    """The shipped Japanese text part, wrapped and (wrapping off) flat."""
    wrapped = shipped().personalise(SAMPLE_CONTACTS["ja"]).text
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textwrap_cjk, "WIDTH", 10**6)
        flat = shipped().personalise(SAMPLE_CONTACTS["ja"]).text
    return wrapped, flat


def test_the_japanese_text_part_breaks_only_between_phrases(
    ja_text_parts: tuple[str, str],
) -> None:
    """Before: 14 of its 22 wrapped line breaks fell inside a phrase ("イノベーショ/ン")."""
    wrapped, flat = ja_text_parts
    points = wrap_points(wrapped, flat)
    assert len(points) >= 15  # it does wrap
    inside = []
    for k in points:
        start, end = flat.rfind("\n", 0, k) + 1, flat.find("\n", k)
        line = flat[start:end]
        at = k - start
        if at not in phrase_ends(line) and " " not in line[at - 1:at + 1]:
            inside.append(f"{line[max(0, at - 8):at]}/{line[at:at + 8]}")
    assert inside == []
    for line in wrapped.split("\n"):
        # Lines the template does not wrap (a label and its URL) aside.
        assert display_width(line) <= 72 or re.search(r"(https://|mailto:)\S", line), line


MIXED = ("Les membres du Club Japon des Hauts-de-France se réunissent à 日本 : voir "
         "https://club-japon.example.org/editions/2025-11-04-lille/ja pour le programme "
         "et écrire à club-japon@example.org. クラブ・ジャポン（Club Japon）の会合は"
         "リールで開催されました。詳細はhttps://club-japon.example.org/をご覧ください。")


@pytest.mark.parametrize("width", [20, 24, 31, 40, 55, 72])
def test_mixed_text_never_splits_a_latin_word_or_url(width: int) -> None:
    """Before: one CJK character made the wrapper cut "Cl/ub" and "https://club-/japon"."""
    out = wrap(MIXED, width)
    pieces = set(" ".join(out.split("\n")).split()) | set("".join(out.split("\n")).split())
    for word in re.findall(r"[0-9A-Za-zÀ-ÿ][0-9A-Za-zÀ-ÿ./:@%?=&_-]*", MIXED):
        assert any(word in line for line in out.split("\n")), (word, out)
    assert pieces  # the wrapped text is there
    for line in out.split("\n"):
        assert display_width(line) <= width or re.search(rf"\S{{{width // 2},}}", line)
    # Nothing lost or reordered: the wrapped text is the input with line breaks for spaces.
    assert re.sub(r"\s+", "", out) == re.sub(r"\s+", "", MIXED)


def test_a_phrase_longer_than_the_line_is_cut_between_characters_only() -> None:
    out = wrap("オー＝ド＝フランス地域圏議会議長のメッセージ", 10)
    assert all(display_width(line) <= 10 for line in out.split("\n"))
    assert "".join(out.split("\n")) == "オー＝ド＝フランス地域圏議会議長のメッセージ"
    assert not any(line[0] in textwrap_cjk.NO_LINE_START for line in out.split("\n"))


def test_a_long_japanese_heading_wraps_between_phrases() -> None:
    from clubjapon_ops.newsletter.render import _environment

    env = _environment(REPO / "templates", autoescape=False)
    heading = "地域圏と日本の絆、さらに強く" * 4
    out = env.from_string("{{ h | heading }}").render(h=heading, lang="ja")
    *lines, rule = out.split("\n")
    assert len(lines) > 1 and set(rule) == {"="}
    assert len(rule) == max(display_width(line) for line in lines)
    pos = 0
    for line in lines[:-1]:
        pos += len(line)
        assert pos in phrase_ends(heading)


# Japanese, HTML ----------------------------------------------------------------------

def test_the_japanese_html_marks_phrases_and_keeps_them_whole() -> None:
    """The archive page: a <wbr> between phrases, keep-all, U+2060 around punctuation."""
    newsletter = shipped()
    html = newsletter.renderer.render_web_page(newsletter.edition, "ja")
    assert "地域圏と<wbr>日本の<wbr>絆、<wbr>さらに<wbr>強く</h1>" in html
    # Inside a phrase, U+2060 holds full-width punctuation to its neighbours.
    assert "リール・\u2060オペラ座" in html  # none before "・": no line starts with it
    h1 = re.search(r"<h1\b[^>]*>", html)
    assert h1 is not None and KEEP_ALL in h1.group()
    # Every body line stays under RFC 5322's 998 octets, so the part can travel as 8bit.
    assert max(len(line.encode()) for line in html.split("\n")) < 998
    # The phrases are BudouX's, on the text as written.
    lead = re.search(r'<p class="lead"[^>]*>(.*?)</p>', html, flags=re.S)
    assert lead is not None
    phrases = re.split(r"<wbr\s*>", lead.group(1).replace("\u2060", ""))
    text = "".join(phrases)
    cuts = {sum(map(len, phrases[:i])) for i in range(len(phrases) + 1)}
    assert cuts <= phrase_ends(text)
    # BudouX's boundaries left out are inside a number or a Latin word ("202/5年").
    left_out = phrase_ends(text) - cuts
    assert all(text[k - 1].isascii() and text[k].isascii() for k in left_out), left_out
    # English text is left as written (the English email holds no other language).
    english = shipped().personalise(SAMPLE_CONTACTS["en"]).html
    assert typeset_html(english, "en") == english


def test_the_japanese_email_breaks_as_mail_clients_do() -> None:
    """Issue 23: the Gmail apps drop <wbr> and overflow-wrap; keep-all then made a
    paragraph one word. The email breaks Japanese normally, with strict kinsoku; a heading
    keeps its phrases whole with U+2060, a character no client drops."""
    html = shipped().personalise(SAMPLE_CONTACTS["ja"]).html
    wj = "\u2060"
    glued = "".join(wj.join(phrase) for phrase in ("地域圏と", "日本の", "絆、", "さらに", "強く"))
    h1 = re.search(r"(<h1\b[^>]*>)(.*?)</h1>", html)
    assert h1 is not None and h1.group(2) == glued
    assert JA_EMAIL in h1.group(1)
    assert "keep-all" not in html and "overflow-wrap:anywhere" not in html
    # A paragraph is the text as written: no <wbr>, no U+2060 (searching the mail finds it).
    lead = re.search(r'<p class="lead"[^>]*>(.*?)</p>', html, flags=re.S)
    assert lead is not None and lead.group(1) == (
        "2025年11月4日、リール・オペラ座にてクラブ・ジャポン・オー＝ド＝フランスの第3回会合が"
        "開催されました。議員、企業経営者、専門家、関係機関の代表が集まり、午前中に二つのラウンド"
        "テーブルが行われました。信頼、イノベーション、友好を基盤に、地域圏と日本の結びつきを"
        "さらに強めることが目的です。")
    # Every body line stays under RFC 5322's 998 octets, so the part can travel as 8bit.
    assert max(len(line.encode()) for line in html.split("\n")) < 998


def test_phrase_breaks_leave_slots_whole() -> None:
    # Nothing pads around a slot any more (the base64 alignment went with base64 bodies):
    # the text next to one gets <wbr> like any other, and the slot stays one marker.
    out = typeset_html('<p>このメールは、お客様のアドレス \ue000email\ue001 が'
                       "クラブ・ジャポンの連絡先に登録されています。</p>"
                       '<a href="\ue000unsubscribe_url\ue001">'
                       "配信を停止する手続きはこちら</a>", "ja", web=True)
    assert "が<wbr>クラブ" in out and "\u200b" not in out
    assert "\ue000email\ue001" in out and 'href="\ue000unsubscribe_url\ue001"' in out


def test_without_phrase_breaks_gives_back_the_text() -> None:
    html = shipped().personalise(SAMPLE_CONTACTS["ja"]).html
    assert "地域圏と日本の絆、さらに強く" in without_phrase_breaks(html)


def test_render_step_runs_once_per_language(monkeypatch: pytest.MonkeyPatch) -> None:
    """Personalising never typesets: the cost stays in the per-language render."""
    import clubjapon_ops.newsletter.render as render

    calls: list[str] = []
    real = render.typeset_html
    monkeypatch.setattr(render, "typeset_html",
                        lambda html, lang, **kw: calls.append(lang) or real(html, lang, **kw))
    newsletter = shipped()
    assert sorted(calls) == ["en", "fr", "ja"]
    for _ in range(5):
        for contact in SAMPLE_CONTACTS.values():
            newsletter.personalise(contact).html  # noqa: B018
    assert sorted(calls) == ["en", "fr", "ja"]


def test_the_archive_page_is_set_too(tmp_path: Path) -> None:
    newsletter = shipped()
    page = newsletter.renderer.render_web_page(newsletter.edition, "fr")
    assert f"un objectif{NBSP}: renforcer" in visible_text(page)
    page = newsletter.renderer.render_web_page(newsletter.edition, "ja")
    assert "<wbr>" in page


# A quotation kept in its own language --------------------------------------------------

def test_each_text_follows_the_language_it_is_marked_in() -> None:
    # The review's case: typography followed the email's language, not the quotation's.
    french_quote = '<table lang="fr"><tr><td>« Le Japon : un partenaire ! »</td></tr></table>'
    english_quote = '<table lang="en-GB"><tr><td>“Japan: a partner!”</td></tr></table>'
    japanese_quote = ('<table lang="ja"><tr><td class="q">日本はオー＝ド＝フランスの'
                      "誠実なパートナーです。</td></tr></table>")
    body = f"<body><p>Bilan : 2025</p>{french_quote}{english_quote}{japanese_quote}</body>"

    fr = typeset_html(f'<html lang="fr">{body}</html>', "fr")
    assert f"Bilan{NBSP}: 2025" in fr
    assert f"«{NNBSP}Le Japon{NBSP}: un partenaire{NNBSP}!{NNBSP}»" in fr
    assert "“Japan: a partner!”" in fr  # English inside a French email: as written
    cell = re.search(r'<td class="q"[^>]*>(.*?)</td>', fr)
    assert cell is not None and JA_EMAIL in cell.group(0) and "\u2060" in cell.group(1)
    web = typeset_html(f'<html lang="fr">{body}</html>', "fr", web=True)
    cell = re.search(r'<td class="q"[^>]*>(.*?)</td>', web)
    assert cell is not None and KEEP_ALL in cell.group(0) and "<wbr>" in cell.group(1)

    ja = typeset_html(f'<html lang="ja">{body}</html>', "ja")
    assert f"«{NNBSP}Le Japon{NBSP}: un partenaire{NNBSP}!{NNBSP}»" in ja
    assert "Bilan : 2025" in ja  # unmarked text is the email's language
    en = typeset_html(f'<html lang="en">{body}</html>', "en")
    assert f"«{NNBSP}Le Japon" in en and "“Japan: a partner!”" in en
    assert typeset_html(fr, "fr") == fr

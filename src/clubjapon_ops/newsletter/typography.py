"""Typography as a rendering step, once per language: French spaces, Japanese phrases.

Editions are written with ordinary spaces; the renderer sets them here, in the HTML part,
the text part, the subject and the preheader, so nobody types U+202F by hand in YAML and
nothing of this runs per contact.

French, after the Lexique des règles typographiques en usage à l'Imprimerie nationale
(ponctuation: « espace fine insécable » before ; ! ? and inside guillemets, « espace
insécable » before the colon) and issue 14 (U+00A0 inside numbers: "10 000").
Japanese (issue 23): the email breaks lines as mail clients do for Japanese, with
``word-break: normal; line-break: strict`` (kinsoku: no line starts with 、。ー or a small
kana) on the element holding the text, and no <wbr>: the Gmail apps drop <wbr> and
``overflow-wrap``, so a keep-all paragraph became one unbreakable word there (1,116 px wide
on a 375 px phone). Only a short text (a heading, a label, the masthead) keeps its BudouX
phrases whole, glued with U+2060, a character every client keeps. The public archive page,
which no mail client touches, keeps phrases (<wbr> and ``word-break: keep-all``).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from html import escape as html_escape
from html import unescape

from jinja2 import pass_context
from jinja2.runtime import Context

from clubjapon_ops.newsletter import textwrap_cjk
from clubjapon_ops.newsletter.htmlspec import VOID_ELEMENTS
from clubjapon_ops.newsletter.textwrap_cjk import (
    ATOMIC,
    NO_LINE_END,
    NO_LINE_START,
    display_width,
    is_wide,
    phrase_breaks,
)

NBSP, NNBSP, WJ = "\u00a0", "\u202f", "\u2060"
KEEP_ALL = "word-break:keep-all;overflow-wrap:anywhere"
# The email's Japanese: ordinary CJK line breaking, with the strict kinsoku set.
JA_EMAIL = "word-break:normal;line-break:strict"
# A Japanese text node up to this many columns (a heading, a label: 40 characters) keeps
# its phrases whole in the email, each phrase of at most GLUED_PHRASE columns: glued, a
# phrase never gets wider than a 320 px phone's column (256 px) at 26 px, the title's size.
_SHORT_TEXT, GLUED_PHRASE = 80, 18

# What typography never touches is swapped for one private-use character while the rules
# run: _OPAQUE for URLs, addresses, slots, times and entities, _BLANK for an entity that
# is a space (&nbsp;). A sentinel already in the text is kept the same way, so the swap
# back stays in step.
_OPAQUE, _BLANK = "\ue010", "\ue011"
_ENTITY = r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);"
_KEEP = ATOMIC.pattern + r"|\b\d{1,2}:\d{2}\b|[\ue010\ue011]"
_KEEP_TEXT = re.compile(_KEEP)
_KEEP_HTML = re.compile(_ENTITY + "|" + _KEEP)
_SENTINEL = re.compile("[\ue010\ue011]")

_SPACES_TEXT, _SPACES_HTML = r"[ \t]+", r"[ \t\r\n]+"
# French writes a space before ; ! ? and : even where the author did not: insert one after a
# letter, a digit or a closing mark, not after a space, another ; ! ?, an opening bracket,
# and only where the sign ends a word ("ABC;DEF", a code, and "3:2" stay as written).
_ENDS_WORD = r"(?:[\s)\]»”’.,…]|$)"
_MISSING = re.compile(r"(?<=[^\s;!?«(\[{<\ue011'\"/\-–—])(?=[;!?](?:[;!?]|" + _ENDS_WORD
                      + "))")
_MISSING_COLON = re.compile(r"(?<=[^\s:;!?«(\[{<\ue011'\"/\-–—])(?=:" + _ENDS_WORD + ")")
# A number in groups of three: "10 000", "1 250 000" (not a year after a day: "4 2025").
_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d])")
# A sign written before a number stays with it: "≈ 10 000", "± 5".
_SIGN = re.compile(r"(?<=[≈~±])[ ](?=\d)")


def _mask(text: str, keep: re.Pattern[str]) -> tuple[str, list[str]]:
    kept: list[str] = []

    def hide(match: re.Match[str]) -> str:
        kept.append(match.group())
        is_entity = match.group().startswith("&")
        return _BLANK if is_entity and unescape(match.group()).isspace() else _OPAQUE

    return keep.sub(hide, text), kept


def _unmask(text: str, kept: list[str]) -> str:
    values = iter(kept)
    return _SENTINEL.sub(lambda _: next(values), text)


# Keyboard punctuation made typographic: curly apostrophes and quotes, "..." an ellipsis,
# " - " between words an en dash. Never in what _KEEP masks (URLs, addresses, slots,
# times, entities) nor inside `code`.
# An address's local part may hold an apostrophe (o'brien@...), which ATOMIC's does not.
_CODE = r"`[^`\n]*`|[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_KEEP_PUNCT_TEXT = re.compile(_CODE + "|" + _KEEP)
_KEEP_PUNCT_HTML = re.compile(_CODE + "|" + _ENTITY + "|" + _KEEP)
# Autoescape writes a quote in a text node as an entity; there it may be the character.
_QUOTE_ENTITY = re.compile(r"&(?:#39|#0*39|#[xX]0*27|#34|#0*34|#[xX]0*22|quot|apos);")
_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
# A quote opens at the start or after a space or an opening mark, before a non-space;
# any other straight quote closes.
_OPENS = r"(?:(?<=^)|(?<=[\s(\[{\u2013\u2014\u00a0\u202f]))"
_OPEN_DOUBLE = re.compile(_OPENS + r'"(?=\S)', re.M)
_OPEN_SINGLE = re.compile(_OPENS + r"'(?=\w)", re.M)
_EN_DASH = re.compile(r"(?<=[\w»”’)\]…\ue010]) - (?=[\w«“‘(\[\ue010])")


def punctuation(text: str, lang: str, *, html: bool = False) -> str:
    """Curly apostrophes and quotes (« » in French), … for "...", – for " - " between words,
    in French and English; ``html`` for a text node."""
    if lang not in ("fr", "en"):
        return text
    if html:
        text = _QUOTE_ENTITY.sub(lambda m: unescape(m.group()), text)
    masked, kept = _mask(text, _KEEP_PUNCT_HTML if html else _KEEP_PUNCT_TEXT)
    masked = masked.replace("...", "…")
    masked = _APOSTROPHE.sub("’", masked)
    if lang == "fr":
        masked = re.sub(_OPENS + r'"[ \t]*(?=\S)', "«" + NNBSP, masked, flags=re.M)
        masked = re.sub(r'[ \t]*"', NNBSP + "»", masked)
        masked = masked.replace("'", "’")  # French quotes with « », never with '
    else:
        masked = _OPEN_DOUBLE.sub("“", masked).replace('"', "”")
        masked = _OPEN_SINGLE.sub("‘", masked).replace("'", "’")
    masked = _EN_DASH.sub(" – ", masked)
    return _unmask(masked, kept)


def french(text: str, *, html: bool = False) -> str:
    """Set French punctuation and non-breaking spaces; ``html`` for a text node (entities,
    any white space)."""
    text = punctuation(text, "fr", html=html)
    masked, kept = _mask(text, _KEEP_HTML if html else _KEEP_TEXT)
    spaces = _SPACES_HTML if html else _SPACES_TEXT
    masked = re.sub(spaces + r"(?=[;!?»])", NNBSP, masked)
    masked = re.sub(spaces + r"(?=:)", NBSP, masked)
    masked = re.sub(r"(?<=«)" + spaces, NNBSP, masked)
    masked = _MISSING.sub(NNBSP, masked)
    masked = _MISSING_COLON.sub(NBSP, masked)
    masked = _THOUSANDS.sub(lambda m: m.group().replace(" ", NBSP), masked)
    masked = _SIGN.sub(NBSP, masked)
    return _unmask(masked, kept)


def typeset(text: str, lang: str) -> str:
    """Typography for a plain string of one language (subject, preheader, text part)."""
    return french(text) if lang == "fr" else punctuation(text, lang)


# Markup the text-node walk steps over. Outlook's conditional comments hold HTML that
# Outlook shows (a VML button's label): its text gets the French rules, nothing else.
_MARKUP = re.compile(
    r"(?P<cond><!--\[if [^\]]*\]>)(?!<!--)(?P<inner>.*?)(?P<endif><!\[endif\]-->)"
    r"|<!--.*?-->"
    r"|(?P<rawopen><(?P<raw>style|script|title|textarea)\b[^>]*>)(?P<rawtext>.*?)"
    r"(?P<rawclose></(?P=raw)\s*>)"
    r"|<![^>]*>"
    r"|(?P<tag></?(?P<name>[A-Za-z][A-Za-z0-9:-]*)[^\"'>]*(?:(?:\"[^\"]*\"|'[^']*')[^\"'>]*)*>)",
    re.S | re.I,
)
_STYLE_ATTR = re.compile(r"""(\sstyle\s*=\s*)(["'])(.*?)\2""", re.S | re.I)


def _phrases_html(node: str) -> str:
    """A text node with a break opportunity between its Japanese phrases."""
    out, pos = [], 0
    for m in _KEEP_HTML.finditer(node):
        out.append(_join_phrases(node[pos:m.start()]))
        out.append(m.group())
        pos = m.end()
    out.append(_join_phrases(node[pos:]))
    return "".join(out)


def _email_ja(node: str) -> str:
    """A Japanese text node for the email: phrases glued in a short text, none of <wbr>.

    A long one (a paragraph) gets a <wbr> between two phrases every _EMAIL_FOLD octets
    only, where _fold may cut its line; a client that drops <wbr> loses nothing.
    """
    masked, kept = _mask(node, _KEEP_HTML)
    if display_width(masked) <= _SHORT_TEXT:
        cuts = [0, *phrase_breaks(masked), len(masked)]
        glued = "".join(_glue_all(masked[a:b]) for a, b in itertools.pairwise(cuts))
        return _unmask(glued, kept)
    if len(masked.encode("utf-8")) <= _EMAIL_FOLD:
        return node
    out, used, pos = [], 0, 0
    for cut in [*phrase_breaks(masked), len(masked)]:
        piece = masked[pos:cut]
        used += len(piece.encode("utf-8"))
        out.append(piece)
        if used > _EMAIL_FOLD and cut < len(masked):
            out.append("<wbr>")
            used = 0
        pos = cut
    return _unmask("".join(out), kept)


_WORD_END = re.compile(r"(?<=[・\s])")


def _glue_all(phrase: str) -> str:
    """A phrase that no line breaks inside: U+2060 between its characters.

    A longer phrase (a name: クラブ・ジャポン・オー＝ド＝フランス) is glued word by word,
    a line may break after its ・; a word still too long is left to the browser.
    """
    glued = []
    for word in _WORD_END.split(phrase):
        if display_width(word) > GLUED_PHRASE:
            glued.append(word)
            continue
        out = word[:1]
        for before, after in itertools.pairwise(word):
            if not (before.isspace() or after.isspace() or WJ in (before, after)
                    or _SENTINEL.match(before) or _SENTINEL.match(after)):
                out += WJ
            out += after
        glued.append(out)
    return "".join(glued)


def _join_phrases(text: str) -> str:
    cuts = [0, *phrase_breaks(text), len(text)]
    return "<wbr>".join(_glue(text[a:b]) for a, b in itertools.pairwise(cuts))


def _is_wide_symbol(char: str) -> bool:
    return is_wide(char) and unicodedata.category(char)[0] not in "LN"


def _glue(phrase: str) -> str:
    """A phrase with U+2060 on each side of its full-width punctuation and symbols.

    ``word-break: keep-all`` keeps letters together, but Chromium still breaks around
    "・" and "＝" ("リール・/オペラ座", "オー＝ド/＝フランス"); a word joiner forbids that.
    """
    out = phrase[:1]
    for before, after in itertools.pairwise(phrase):
        # Not before closing marks nor after opening ones: no browser breaks there anyway.
        if ((_is_wide_symbol(before) and before not in NO_LINE_END)
                or (_is_wide_symbol(after) and after not in NO_LINE_START)) and not (
                before.isspace() or after.isspace() or WJ in (before, after)):
            out += WJ
        out += after
    return out


def _add_style(tag: str, declarations: str) -> str:
    match = _STYLE_ATTR.search(tag)
    if match is None:
        end = len(tag) - (2 if tag.endswith("/>") else 1)
        return f'{tag[:end]} style="{declarations}"{tag[end:]}'
    value = match.group(3)
    if "word-break" in value:
        return tag  # set already (typeset twice, or by the template)
    sep = "" if not value.strip() or value.rstrip().endswith(";") else ";"
    return tag[:match.end(3)] + sep + declarations + tag[match.end(3):]


def _walk(html: str, lang: str, web: bool = False) -> str:
    """Each text node set by the rules of its own language: the document's, or that of the
    nearest element with a lang attribute (a quotation kept in its original language).

    French: non-breaking spaces (in <title> and Outlook's conditional comments too).
    Japanese: on a web page, a break opportunity between BudouX phrases and keep-all on the
    element holding the text; in the email, see _email_ja and JA_EMAIL. Tags, styles,
    scripts and other comments are never touched.
    """
    parts: list[str] = []
    # Open elements: name, index of the start tag in parts, the language inside it.
    open_tags: list[tuple[str, int, str]] = []
    styled: set[int] = set()
    pos = 0

    def here() -> str:
        return open_tags[-1][2] if open_tags else lang

    def text(node: str) -> None:
        if here() == "fr":
            node = french(node, html=True)
        elif here() == "en":
            node = punctuation(node, "en", html=True)
        elif here() == "ja" and any(is_wide(c) for c in node):
            if open_tags:
                styled.add(open_tags[-1][1])
            node = _phrases_html(node) if web else _email_ja(node)
        parts.append(node)

    for m in _MARKUP.finditer(html):
        text(html[pos:m.start()])
        pos = m.end()
        if m.group("cond") and here() == "fr":
            parts.append(m.group("cond") + _walk(m.group("inner"), "fr", web)
                         + m.group("endif"))
            continue
        if m.group("raw") and m.group("raw").lower() == "title" and here() == "fr":
            parts.append(m.group("rawopen") + french(m.group("rawtext"), html=True)
                         + m.group("rawclose"))
            continue
        parts.append(m.group())
        if not m.group("tag"):
            continue
        name = m.group("name").lower()
        if m.group().startswith("</"):
            names = [n for n, _, _ in open_tags]
            if name in names:
                del open_tags[len(names) - 1 - names[::-1].index(name):]
        elif name not in VOID_ELEMENTS and not m.group().endswith("/>"):
            said = _LANG_ATTR.search(m.group())
            inside = said.group(2).split("-")[0].lower() if said else here()
            open_tags.append((name, len(parts) - 1, inside))
    text(html[pos:])
    for i in styled:
        parts[i] = _add_style(parts[i], KEEP_ALL if web else JA_EMAIL)
    return "".join(parts)


_LANG_ATTR = re.compile(r"""\slang\s*=\s*(["']?)([A-Za-z]{2,3}(?:-[A-Za-z0-9]+)*)\1""")


# A body line may be 998 octets (RFC 5322); a longer one makes the whole part go base64
# instead of 8bit. A long Japanese paragraph grows by its <wbr> and style, so its line is
# cut inside a <wbr> tag ("<wbr\n>"): white space inside a tag is not text, it shows nothing.
_LONG_LINE, _FOLD_AFTER = 900, 600
# Text octets between two of the email's fold points (its inlined style takes ~300 more).
_EMAIL_FOLD = 450


def _fold(line: str) -> str:
    if len(line.encode("utf-8")) <= _LONG_LINE:
        return line
    out, used = [], 0
    for i, piece in enumerate(line.split("<wbr>")):
        if i:
            out.append("<wbr\n>" if used > _FOLD_AFTER else "<wbr>")
            used = 0 if used > _FOLD_AFTER else used
        out.append(piece)
        used += len(piece.encode("utf-8")) + 5
    return "".join(out)


_BREAK_MARKS = re.compile(r"<wbr\s*/?>|[\u200b\u2060]")


def without_phrase_breaks(html: str) -> str:
    """The HTML without the marks put between and inside Japanese phrases (to search it)."""
    return _BREAK_MARKS.sub("", html)


def typeset_html(html: str, lang: str, *, web: bool = False) -> str:
    """Typography for a rendered HTML document of one language; tags and styles untouched.

    Each text node follows the language it is in (``lang``, or a lang attribute around it).
    ``web``: a page for browsers (the public archive), where Japanese keeps its phrases.
    """
    return "\n".join(_fold(line) for line in _walk(html, lang, web).split("\n"))


@pass_context
def wrap_filter(
    context: Context, text: str, width: int | None = None, indent: str = "", first: str = ""
) -> str:
    """The text part's ``wrap`` filter: typeset for the template's language, then wrap."""
    return textwrap_cjk.wrap(typeset(str(text), context.get("lang", "")), width, indent, first)


@pass_context
def heading_filter(context: Context, text: str) -> str:
    """The text part's ``heading`` filter: typeset, wrapped at phrases, underlined."""
    lines = textwrap_cjk.wrap(typeset(str(text), context.get("lang", "")))
    width = max(display_width(line) for line in lines.split("\n"))
    return f"{lines}\n{'=' * min(textwrap_cjk.WIDTH, width)}"


def web_phrases(text: str) -> str:
    """``text`` escaped for HTML, a <wbr> between its Japanese phrases, glued as in the email.

    For web pages, whose own stylesheet sets ``word-break: keep-all`` on Japanese (their CSP
    refuses style attributes).
    """
    # A break is allowed after "・" too: a long katakana name (クラブ・ジャポン・オー＝ド＝
    # フランス) is one BudouX phrase, wider than a phone's line.
    pieces = re.split(r"(?<=・)", text)
    return "<wbr>".join(_phrases_html(html_escape(p, quote=True))
                        for p in pieces if p)

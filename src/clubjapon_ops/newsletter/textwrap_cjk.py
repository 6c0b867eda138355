"""Wrap plain text for the text/plain part: Japanese between phrases, Latin between words.

Japanese has no spaces to break on, and breaking between any two characters splits words
("イノベーショ/ン"). BudouX (Google's phrase segmenter, the same model browsers' users get
from its JavaScript version) gives the phrase boundaries; a line breaks there, at spaces,
and around URLs, never inside a Latin word, a URL or an e-mail address, and the kinsoku rules
(no closing punctuation at a line's start, no opening bracket at its end) still hold.
"""

from __future__ import annotations

import functools
import re
import textwrap
import unicodedata

import budoux

WIDTH = 72
# Characters that must not start a line in Japanese typography (kinsoku shori, short list).
NO_LINE_START = frozenset(
    "、。，．・：；？！）」』】〕ー〉》’”々ぁぃぅぇぉっゃゅょァィゥェォッャュョ")
# Characters that must not end one: opening brackets and quotes.
NO_LINE_END = frozenset("（「『【〔〈《［｛‘“([{«")
# Spaces that glue (French typography puts them before ; ! ? : » and inside numbers).
NO_BREAK_SPACES = frozenset("\u00a0\u202f\u2060\ufeff")
# Spans a line never breaks inside: the renderer's slot markers, URLs (with or without their
# scheme), e-mail addresses.
# A URL ends at the first non-ASCII character: Japanese runs on right after one ("…/をご覧").
ATOMIC = re.compile(
    r"\ue000[a-z_]*\ue001"
    r"|(?:[A-Za-z][A-Za-z0-9+.-]*://|mailto:|tel:|www\.)[!#-;=?-~]+"
    # A web address written without its scheme: a domain name, then a path.
    r"|(?<![A-Za-z0-9.@-])[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/[!#-;=?-~]*"
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)
_CONTROL_SPACE = re.compile(r"[\t\n\r\f\v]")


def _cell_width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns the text takes on a terminal or in an inbox list: CJK characters count double."""
    return sum(_cell_width(c) for c in text)


def is_wide(char: str) -> bool:
    """True for a CJK (full-width) character."""
    return _cell_width(char) == 2


def _is_cjk(text: str) -> bool:
    return any(is_wide(c) for c in text)


@functools.cache
def _parser() -> budoux.Parser:
    return budoux.load_default_japanese_parser()


def may_break(text: str, k: int) -> bool:
    """Whether kinsoku and Latin words allow a line break between text[k-1] and text[k]."""
    if not 0 < k < len(text):
        return False
    before, after = text[k - 1], text[k]
    if after in NO_LINE_START or before in NO_LINE_END:
        return False
    if before in NO_BREAK_SPACES or after in NO_BREAK_SPACES:
        return False
    # Two narrow, non-space characters: inside a Latin word, a number or a URL.
    return not (not is_wide(before) and not is_wide(after)
                and not before.isspace() and not after.isspace())


def phrase_breaks(text: str) -> list[int]:
    """Offsets between BudouX's Japanese phrases where a line may break (none in Latin text)."""
    if not _is_cjk(text):
        return []
    out, pos = [], 0
    for phrase in _parser().parse(text)[:-1]:
        pos += len(phrase)
        if may_break(text, pos):
            out.append(pos)
    return out


def _break_points(text: str) -> set[int]:
    """Where a line may break without a space: between phrases and around atomic spans."""
    points: set[int] = set()
    pos = 0
    for match in ATOMIC.finditer(text):
        points.update(pos + k for k in phrase_breaks(text[pos:match.start()]))
        points.update(k for k in (match.start(), match.end()) if may_break(text, k))
        pos = match.end()
    points.update(pos + k for k in phrase_breaks(text[pos:]))
    return points


def _tokens(text: str) -> list[tuple[str, str]]:
    """Cut text into (spaces before, unbreakable token) pairs."""
    points = _break_points(text)
    out: list[tuple[str, str]] = []
    sep = tok = ""
    for i, char in enumerate(text):
        if char == " ":
            if tok:
                out.append((sep, tok))
                sep, tok = "", ""
            sep += char
            continue
        if i in points and tok:
            out.append((sep, tok))
            sep, tok = "", ""
        tok += char
    if tok:
        out.append((sep, tok))
    return out


def _split_long(token: str) -> list[str]:
    """A token wider than a line, cut between its CJK characters (never in a Latin run)."""
    inside = {k for m in ATOMIC.finditer(token) for k in range(m.start() + 1, m.end())}
    pieces, start = [], 0
    for k in range(1, len(token)):
        if k not in inside and may_break(token, k):
            pieces.append(token[start:k])
            start = k
    pieces.append(token[start:])
    return pieces


def wrap(text: str, width: int | None = None, indent: str = "", first: str = "") -> str:
    """Wrap to ``width`` columns; Japanese breaks between phrases, Latin between words."""
    width = WIDTH if width is None else width
    if not _is_cjk(text):
        return textwrap.fill(
            text, width=width, initial_indent=first, subsequent_indent=indent,
            break_long_words=False, break_on_hyphens=False,
        )
    room = width - max(display_width(first), display_width(indent))
    tokens: list[tuple[str, str]] = []
    for sep, tok in _tokens(_CONTROL_SPACE.sub(" ", text)):
        if display_width(tok) <= room:
            tokens.append((sep, tok))
            continue
        # Only a phrase longer than a whole line is cut inside, and then between characters.
        pieces = _split_long(tok)
        tokens.extend([(sep, pieces[0])] + [("", p) for p in pieces[1:]])
    lines: list[str] = []
    line, used, fresh = first, display_width(first), True
    for sep, tok in tokens:
        w = display_width(tok)
        if fresh:
            line, used, fresh = line + tok, used + w, False
        elif used + len(sep) + w <= width:
            line, used = line + sep + tok, used + len(sep) + w
        else:
            lines.append(line.rstrip())
            line, used = indent + tok, display_width(indent) + w
    lines.append(line.rstrip())
    return "\n".join(lines)

"""Wrap plain text for the text/plain part, Japanese included (no spaces to break on)."""

from __future__ import annotations

import textwrap
import unicodedata

WIDTH = 72
# Characters that must not start a line in Japanese typography (kinsoku shori, short list).
_NO_LINE_START = set("、。，．・：；？！）」』】〕ー〉》’”々ぁぃぅぇぉっゃゅょァィゥェォッャュョ")


def _cell_width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns the text takes on a terminal or in an inbox list: CJK characters count double."""
    return sum(_cell_width(c) for c in text)


def _is_cjk(text: str) -> bool:
    return any(_cell_width(c) == 2 for c in text)


def wrap(text: str, width: int = WIDTH, indent: str = "", first: str = "") -> str:
    """Wrap to ``width`` columns; CJK text breaks between characters, others between words."""
    if not _is_cjk(text):
        return textwrap.fill(
            text, width=width, initial_indent=first, subsequent_indent=indent,
            break_long_words=False, break_on_hyphens=False,
        )
    lines: list[str] = []
    line, used = first, len(first)
    for char in text:
        w = _cell_width(char)
        if used + w > width and line.strip() and char not in _NO_LINE_START:
            lines.append(line.rstrip())
            line, used = indent, len(indent)
            if char == " ":
                continue
        line += char
        used += w
    lines.append(line.rstrip())
    return "\n".join(lines)

"""Find text coloured like its background, from inline styles and bgcolor attributes.

Spam filters score such text as hidden (SpamAssassin's HTML_FONT_LOW_CONTRAST), and a
reader cannot see it. Only what the rendered HTML says inline counts: css-inline has
already moved the <style> rules that apply everywhere onto the elements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from clubjapon_ops.newsletter.htmlspec import VOID_ELEMENTS

Rgb = tuple[int, int, int]
# Below this WCAG contrast ratio text is as good as invisible (1 is the same colour).
SAME_COLOUR_RATIO = 1.5
_INVISIBLE = str.maketrans("", "", "\u034f\u200c\u200b\u00a0\u2007\u00ad\ufeff")
_NAMED: dict[str, Rgb] = {
    "white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0),
    "green": (0, 128, 0), "blue": (0, 0, 255), "gray": (128, 128, 128),
    "grey": (128, 128, 128), "silver": (192, 192, 192), "navy": (0, 0, 128),
    "yellow": (255, 255, 0), "orange": (255, 165, 0),
}
_SKIPPED = {"head", "style", "script", "title"}
_DECLARATION = re.compile(r"([a-z-]+)\s*:\s*([^;]*)", re.I)
_RGB = re.compile(r"rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*([\d.]+%?)\s*)?\)", re.I)
_HEX = re.compile(r"#([0-9a-f]{3}|[0-9a-f]{6})\b", re.I)


def parse_colour(value: str) -> Rgb | None:
    """An opaque sRGB colour from a CSS or attribute value, or None (unknown, transparent)."""
    value = value.replace("!important", "").strip().lower()
    if match := _HEX.search(value):
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    if match := _RGB.search(value):
        alpha = match.group(4)
        if alpha is not None:
            try:
                opacity = float(alpha.rstrip("%"))
            except ValueError:
                return None  # "rgba(0,0,0,.)": a client ignores it, and so do we
            if opacity < (100 if "%" in alpha else 1):
                return None  # see-through: what shows depends on what is below
        return int(match.group(1)), int(match.group(2)), int(match.group(3))
    for word in value.split():
        if word in _NAMED:
            return _NAMED[word]
    return None


def _luminance(rgb: Rgb) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: Rgb, b: Rgb) -> float:
    """The WCAG 2 contrast ratio of two colours, 1 to 21."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@dataclass(frozen=True)
class SameColour:
    """Text drawn in (nearly) the colour of its background."""

    line: int
    text: str
    colour: Rgb
    background: Rgb
    ratio: float


class _Walk(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        # (tag, text colour, background colour) of each open element; the page starts as
        # black on white, as clients show it.
        self.stack: list[tuple[str, Rgb, Rgb]] = [("", (0, 0, 0), (255, 255, 255))]
        self.skip = 0
        self.found: list[SameColour] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skip += 1
        if tag in VOID_ELEMENTS:
            return
        _, colour, background = self.stack[-1]
        values = dict(attrs)
        if bgcolor := parse_colour(values.get("bgcolor") or ""):
            background = bgcolor
        if tag == "font" and (font := parse_colour(values.get("color") or "")):
            colour = font
        for name, value in _DECLARATION.findall(values.get("style") or ""):
            name = name.lower()
            if name == "color":
                colour = parse_colour(value) or colour
            elif name in ("background-color", "background"):
                background = parse_colour(value) or background
        self.stack.append((tag, colour, background))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_ELEMENTS:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skip = max(0, self.skip - 1)
        if tag in VOID_ELEMENTS:
            return
        # Close up to the matching element (HTML lets some end tags be left out).
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        text = data.translate(_INVISIBLE).strip()
        if self.skip or not text:
            return
        _, colour, background = self.stack[-1]
        ratio = contrast_ratio(colour, background)
        if ratio < SAME_COLOUR_RATIO:
            self.found.append(SameColour(self.getpos()[0], text, colour, background, ratio))


def same_colour_text(html: str) -> list[SameColour]:
    """Every run of visible characters whose colour is (nearly) its background's."""
    walk = _Walk()
    walk.feed(html)
    walk.close()
    return walk.found


def hex_colour(rgb: Rgb) -> str:
    """#rrggbb."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)

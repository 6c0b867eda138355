"""Which HTML and CSS features of a rendered message Outlook for Windows or Gmail lack.

The support data is a trimmed copy of caniemail.com's (data/caniemail.json, see
data/SOURCE.md); this module only finds what the HTML uses and looks it up.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser
from importlib import resources
from typing import Any

DATA = "caniemail.json"
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_AT_RULE = re.compile(r"@([a-z-]+)", re.I)
_DECLARATION = re.compile(r"([a-z-]+)\s*:\s*([^;{}]*)", re.I)
_BLOCK = re.compile(r"([^{}]*)\{([^{}]*)\}")
_RESULTS = {"n": "not supported", "a": "partially supported"}


@cache
def support_data() -> dict[str, Any]:
    """The vendored caniemail data, read once."""
    text = resources.files("clubjapon_ops.newsletter").joinpath("data", DATA).read_text(
        encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class _Uses(HTMLParser):
    """Elements, attributes, inline declarations and <style> text of one document.

    Conditional comments (<!--[if mso]>) are comments here: what only Outlook reads is
    written for Outlook on purpose.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: set[str] = set()
        self.attributes: set[str] = set()
        self.declarations: list[tuple[str, str]] = []
        self.style_text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            if name == "style" and value:
                self.declarations += _declarations(value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style_text.append(data)


def _declarations(css: str) -> list[tuple[str, str]]:
    return [(p.lower(), v.strip()) for p, v in _DECLARATION.findall(css)]


@dataclass(frozen=True)
class Usage:
    """What a document uses, in the terms the support data is written in."""

    elements: frozenset[str]
    attributes: frozenset[str]
    declarations: tuple[tuple[str, str], ...]
    css: str  # every inline style and <style> block, comments removed
    selectors: str
    at_rules: frozenset[str]
    media: str  # the conditions of @media rules
    html: str

    @classmethod
    def of(cls, html: str) -> Usage:
        """Scan one HTML document."""
        scan = _Uses()
        scan.feed(html)
        scan.close()
        sheet = _COMMENT.sub("", "\n".join(scan.style_text))
        declarations = list(scan.declarations)
        selectors = []
        for selector, body in _BLOCK.findall(sheet):
            selectors.append(selector)
            declarations += _declarations(body)
        inline = ";".join(f"{p}:{v}" for p, v in scan.declarations)
        return cls(
            frozenset(scan.elements), frozenset(scan.attributes), tuple(declarations),
            sheet + "\n" + inline, "\n".join(selectors),
            frozenset(a.lower() for a in _AT_RULE.findall(sheet)),
            " ".join(re.findall(r"@media([^{]*)\{", sheet, re.I)), html,
        )

    def uses(self, slug: str, detect: dict[str, Any]) -> bool:
        """Whether the document uses the feature that ``detect`` describes."""
        if "properties" in detect:
            return any(p in detect["properties"] for p, _ in self.declarations)
        if "value" in detect:
            name, value = detect["value"]
            return any(p == name and re.fullmatch(value, v.replace("!important", "").strip(),
                                                  re.I)
                       for p, v in self.declarations)
        if "elements" in detect:
            return any(e in self.elements for e in detect["elements"])
        if "attributes" in detect:
            return any(a in self.attributes for a in detect["attributes"])
        if "at_rule" in detect:
            return detect["at_rule"] in self.at_rules
        if "media_feature" in detect:
            return detect["media_feature"] in self.media
        if "selector" in detect:
            return detect["selector"] in self.selectors
        if "pattern" in detect:
            where = self.html if slug.startswith("html-") else self.css
            return re.search(detect["pattern"], where, re.I) is not None
        return False


@dataclass(frozen=True)
class Unsupported:
    """A feature the document uses and clients that do not support it (fully)."""

    slug: str
    title: str
    url: str
    clients: tuple[tuple[str, str, str], ...]  # (client, result in words, note)

    def describe(self) -> str:
        """One line: the feature, each client and how it fares, the caniemail page."""
        said = "; ".join(f"{client}: {result}" + (f" ({note})" if note else "")
                         for client, result, note in self.clients)
        return f"{self.title}: {said}. {self.url}"


def _note(text: str, limit: int = 120) -> str:
    text = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", text).replace("`", "")
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def unsupported(html: str) -> list[Unsupported]:
    """The features of ``html`` that Outlook for Windows or Gmail lack, per caniemail."""
    data = support_data()
    usage = Usage.of(html)
    found = []
    for slug, feature in data["features"].items():
        if not usage.uses(slug, feature["detect"]):
            continue
        clients = []
        for client, support in feature["support"].items():
            result, *refs = support["result"].split()
            if result not in _RESULTS:
                continue  # supported (with a note) or never tested
            notes = [_note(feature["notes"][r[1:]]) for r in refs
                     if r[1:] in feature["notes"]]
            clients.append((client, _RESULTS[result], " ".join(notes)))
        if clients:
            found.append(Unsupported(slug, feature["title"], feature["url"], tuple(clients)))
    return found

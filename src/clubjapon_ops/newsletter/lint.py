"""Check a rendered edition before anyone sees it: size, images, links, leftovers, subject."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from clubjapon_ops.newsletter.content import Lang
from clubjapon_ops.newsletter.render import PersonalMessage
from clubjapon_ops.newsletter.textwrap_cjk import display_width

GMAIL_CLIP_BYTES = 102 * 1024
SUBJECT_WARN_WIDTH = 80
SUBJECT_ERROR_WIDTH = 100
_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|[\ue000\ue001]|\bUndefined\b")
_SAFE_SCHEMES = ("https://", "mailto:")
_FILLER = str.maketrans("", "", "\u034f\u200c\u00a0")


@dataclass(frozen=True)
class Problem:
    """One finding: how serious, which rule, where, and what."""

    level: str  # "error" or "warning"
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message} [{self.rule}]"


class _Scan(HTMLParser):
    """Collect images, links and the preheader text, with their line numbers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[tuple[int, dict[str, str | None]]] = []
        self.links: list[tuple[int, str]] = []
        self.preheader = ""
        self._in_preheader = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        values = dict(attrs)
        if tag == "img":
            self.images.append((line, values))
        if tag in ("a", "area") and "href" in values:
            self.links.append((line, (values["href"] or "").strip()))
        classes = (values.get("class") or "").split()
        if self._in_preheader:
            self._in_preheader += 1
        elif tag == "div" and "preheader" in classes:
            self._in_preheader = 1

    def handle_endtag(self, tag: str) -> None:
        if self._in_preheader:
            self._in_preheader -= 1

    def handle_data(self, data: str) -> None:
        if self._in_preheader:
            self.preheader += data


def lint_message(message: PersonalMessage) -> list[Problem]:
    """Check one personalised message (one language) against every rule."""
    lang = message.lang
    html, text = message.html, message.text
    problems: list[Problem] = []

    def add(level: str, rule: str, where: str, msg: str) -> None:
        problems.append(Problem(level, rule, f"{lang} {where}", msg))

    size = len(html.encode("utf-8"))
    if size >= GMAIL_CLIP_BYTES:
        add("error", "html-size", "html", f"{size / 1024:.0f} KB: Gmail clips messages over 102 KB")
    scan = _Scan()
    scan.feed(html)
    scan.close()
    for line, attrs in scan.images:
        if not (attrs.get("alt") or "").strip():
            src = attrs.get("src")
            add("error", "img-alt", f"html line {line}", f"image {src!r} has no alt text")
    for line, href in scan.links:
        if not href.startswith(_SAFE_SCHEMES):
            add("error", "link-scheme", f"html line {line}",
                f"link {href[:60]!r} is not an absolute https: or mailto: URL")
    for part, body in (("html", html), ("text", text)):
        for match in _LEFTOVER.finditer(body):
            line = body.count("\n", 0, match.start()) + 1
            add("error", "leftover", f"{part} line {line}",
                f"unresolved template text {match.group()!r}")
        if message.unsubscribe_url not in body:
            add("error", "unsubscribe", part, "no visible unsubscribe link")
    width = display_width(message.subject)
    if width > SUBJECT_ERROR_WIDTH:
        add("error", "subject-length", "subject", f"{width} columns; keep it near 80")
    elif width > SUBJECT_WARN_WIDTH:
        add("warning", "subject-length", "subject", f"{width} columns; inboxes cut after ~80")
    # The preheader is followed by invisible filler that keeps body text out of the preview.
    if not scan.preheader.translate(_FILLER).strip():
        add("error", "preheader", "html", "no preheader text")
    return problems


def lint_messages(messages: dict[Lang, PersonalMessage]) -> list[Problem]:
    """Check one sample message per language."""
    return [problem for message in messages.values() for problem in lint_message(message)]

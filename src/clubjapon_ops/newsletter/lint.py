"""Check a rendered edition before anyone sees it: size, images, links, leftovers, subject,
client support, charset position, same-colour text, postal address, header lines."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser

from clubjapon_ops.mail_limits import MAX_ENCODED_WORD, MAX_HEADER_LINE
from clubjapon_ops.newsletter.content import Lang
from clubjapon_ops.newsletter.contrast import hex_colour, same_colour_text
from clubjapon_ops.newsletter.email_support import unsupported
from clubjapon_ops.newsletter.render import PersonalMessage
from clubjapon_ops.newsletter.textwrap_cjk import display_width

GMAIL_CLIP_BYTES = 102 * 1024
SUBJECT_WARN_WIDTH = 80
SUBJECT_ERROR_WIDTH = 100
_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|[\ue000\ue001]|\bUndefined\b")
_SAFE_SCHEMES = ("https://", "mailto:")
_FILLER = str.maketrans("", "", "\u034f\u200c\u00a0")
# The HTML standard's encoding sniffing reads the first 1024 bytes for <meta charset>.
CHARSET_WINDOW = 1024
_META_CHARSET = re.compile(rb"<meta\b[^>]*\bcharset\s*=[^>]*>", re.I)
_ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
POSTAL_SETTING = "CLUBJAPON_POSTAL_ADDRESS"


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
        add("error", "html-size", "html", f"the email is {size / 1024:.0f} KB and Gmail clips "
            "messages over 102 KB: shorten the edition's texts or move sections to the next")
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
        add("error", "subject-length", "subject", f"the subject is {width} columns wide, more "
            f"than the {SUBJECT_ERROR_WIDTH} allowed: shorten it to about {SUBJECT_WARN_WIDTH}")
    elif width > SUBJECT_WARN_WIDTH:
        add("warning", "subject-length", "subject", f"the subject is {width} columns wide and "
            f"inboxes cut it after about {SUBJECT_WARN_WIDTH}: shorten it")
    # The preheader is followed by invisible filler that keeps body text out of the preview.
    if not scan.preheader.translate(_FILLER).strip():
        add("error", "preheader", "html", "no preheader text")
    return problems


def charset_problem(html: str) -> str | None:
    """Why the <meta charset> is not where browsers look for it, or None when it is."""
    data = html.encode("utf-8")
    match = _META_CHARSET.search(data)
    if match is None:
        return "no <meta charset>: a browser opening the file may guess the encoding wrong"
    if match.end() > CHARSET_WINDOW:
        return (f"<meta charset> ends at byte {match.end()}, past the first {CHARSET_WINDOW} "
                "bytes where browsers look for it: put it first in <head>")
    return None


def header_problems(mime: bytes) -> list[str]:
    """Header lines carrying RFC 2047 encoded words longer than 76 characters, and encoded
    words longer than 75 (RFC 2047 §2)."""
    found = []
    head = mime.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        words = _ENCODED_WORD.findall(line)
        if not words:
            continue
        name = line.split(b":", 1)[0].decode("ascii", "replace") if line[:1] not in b" \t" \
            else "a folded line"
        if len(line) > MAX_HEADER_LINE:
            found.append(f"{name}: a line of {len(line)} characters carries encoded words; "
                         f"RFC 2047 allows {MAX_HEADER_LINE}")
        for word in words:
            if len(word) > MAX_ENCODED_WORD:
                found.append(f"{name}: an encoded word of {len(word)} characters; RFC 2047 "
                             f"allows {MAX_ENCODED_WORD}")
    return found


def _visible(html: str) -> str:
    """The text of an HTML document, tags dropped and entities decoded."""
    return unescape(re.sub(r"<[^>]*>", " ", html))


# What typography puts into a line (non-breaking spaces before French punctuation, breaks
# between Japanese phrases) and what wrapping does to it: none of it changes the address.
_NOT_COMPARED = re.compile(r"[\s\u00a0\u202f\u200b\u2060]+")


def _comparable(text: str) -> str:
    return _NOT_COMPARED.sub("", text)


def lint_rendering(message: PersonalMessage, *, mime: bytes | None = None,
                   postal_address: tuple[str, ...] = ()) -> list[Problem]:
    """What the offline rules find in one message: charset, same-colour text, the postal
    address in both parts, encoded header lines."""
    problems: list[Problem] = []
    lang = message.lang
    if reason := charset_problem(message.html):
        problems.append(Problem("warning", "charset", f"{lang} html", reason))
    for found in same_colour_text(message.html):
        shown = found.text if len(found.text) <= 40 else found.text[:39] + "…"
        problems.append(Problem(
            "warning", "same-colour", f"{lang} html line {found.line}",
            f"text {shown!r} is {hex_colour(found.colour)} on {hex_colour(found.background)} "
            f"(contrast {found.ratio:.2f}): spam filters score hidden text "
            "(SpamAssassin HTML_FONT_LOW_CONTRAST)"))
    if postal_address:
        for part, body in (("html", _comparable(_visible(message.html))),
                           ("text", _comparable(message.text))):
            missing = [line for line in postal_address if _comparable(line) not in body]
            if missing:
                problems.append(Problem(
                    "error", "postal-address", f"{lang} {part}",
                    f"the footer does not show the postal address ({POSTAL_SETTING}): "
                    f"{', '.join(repr(m) for m in missing)} missing"))
    if mime is not None:
        problems += [Problem("error", "header-lines", f"{lang} headers", text)
                     for text in header_problems(mime)]
    return problems


def postal_address_problem(postal_address: tuple[str, ...], *,
                           for_send: bool) -> Problem | None:
    """A missing postal address: an error for a send that leaves this machine."""
    if postal_address:
        return None
    return Problem("error" if for_send else "warning", "postal-address", "settings",
                   f"{POSTAL_SETTING} is not set: a marketing email must show the sender's "
                   "postal address (a real send refuses to go without it)")


def client_support(messages: dict[Lang, PersonalMessage]) -> list[Problem]:
    """Features of the HTML that Outlook for Windows or Gmail do not support (caniemail).

    About the house template, not an edition: nobody writing an edition can change them,
    and the layout is built to degrade (tables for Outlook, inline styles for Gmail without
    <style>), so they are measured once in the project's own tests
    (tests/newsletter/test_template_support.py) and never shown by the lint. One per feature,
    naming the languages that use it.
    """
    by_slug: dict[str, tuple[list[str], str, str]] = {}
    partial: dict[str, list[str]] = {}
    for lang, message in messages.items():
        for found in unsupported(message.html):
            missing = [c for c in found.clients if c[1] == "not supported"]
            if missing:
                said = "; ".join(f"not supported in {client}" + (f" ({note})" if note else "")
                                 for client, _, note in missing)
                langs, _, _ = by_slug.setdefault(found.slug, ([], f"{found.title}: {said}",
                                                               found.url))
                langs.append(lang)
            if len(missing) < len(found.clients):
                partial.setdefault(found.title, []).append(lang)
    problems = [Problem("warning", "client-support", f"{', '.join(langs)} html",
                        f"{text} {url}") for langs, text, url in by_slug.values()]
    if partial:
        problems.append(Problem(
            "warning", "client-support", "html",
            "partly supported in Outlook for Windows or Gmail (see caniemail.com): "
            + ", ".join(sorted(partial))))
    return problems


def lint_messages(messages: dict[Lang, PersonalMessage], *,
                  mimes: dict[Lang, bytes] | None = None,
                  postal_address: tuple[str, ...] = (), for_send: bool = False) -> list[Problem]:
    """Check one sample message per language, and what applies to all of them once; what
    the house template does on purpose (client_support) is not among them."""
    problems = [problem for message in messages.values() for problem in lint_message(message)]
    for lang, message in messages.items():
        problems += lint_rendering(message, mime=(mimes or {}).get(lang),
                                   postal_address=postal_address)
    if address := postal_address_problem(postal_address, for_send=for_send):
        problems.append(address)
    return most_serious_first(problems)


def most_serious_first(problems: list[Problem]) -> list[Problem]:
    """Errors before warnings, each kind in the order found."""
    return sorted(problems, key=lambda p: p.level != "error")


def summary(problems: list[Problem]) -> str:
    """One line for a list of findings: '1 error, 2 warnings: the first of them'."""
    errors = sum(p.level == "error" for p in problems)
    warnings = len(problems) - errors
    counts = (f"{errors} error{'s' if errors != 1 else ''}, "
              f"{warnings} warning{'s' if warnings != 1 else ''}")
    if not problems:
        return f"{counts}: nothing to fix"
    first = most_serious_first(problems)[0]
    return f"{counts}; first: {first.where}: {first.message}"

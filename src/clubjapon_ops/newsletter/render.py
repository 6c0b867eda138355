"""Render an edition once per language, then personalise per contact by filling slots.

Jinja2 and css-inline run once per language. What varies per contact (greeting, address,
unsubscribe link) is rendered as a slot marker, and the result is split into static chunks
around the markers; personalising is then a join of chunks and escaped values, so its cost
does not depend on the template or the stylesheet.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import css_inline
import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError
from markupsafe import escape

from clubjapon_ops.contacts import Contact
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.links import LinkRewriter
from clubjapon_ops.newsletter.model import Edition, Lang, QuoteSection
from clubjapon_ops.newsletter.textwrap_cjk import is_wide
from clubjapon_ops.newsletter.typography import (
    heading_filter,
    typeset,
    typeset_html,
    wrap_filter,
)
from clubjapon_ops.newsletter.urls import for_language

TEMPLATES_DIR = Path("templates")
HTML_TEMPLATE = "newsletter/email.html.j2"
TEXT_TEMPLATE = "newsletter/email.txt.j2"
STRINGS_FILE = Path("newsletter") / "strings.yaml"

# Private-use code points: they never occur in real content, survive Jinja's autoescape
# and css-inline untouched, and mark where a contact's values go.
_OPEN, _CLOSE = "\ue000", "\ue001"
_SLOT = re.compile(f"{_OPEN}([a-z_]+){_CLOSE}")
# "reader": what a consenting reader's links carry after their token (newsletter/links.py).
SLOTS = ("greeting", "email", "unsubscribe_url", "reader")
_QUOTES = {"fr": ("« ", " »"), "en": ("“", "”"), "ja": ("「", "」")}
_COLON = {"fr": " : ", "en": ": ", "ja": "："}
_LIST_SEP = {"fr": ", ", "en": ", ", "ja": "、"}
_PARENS = {"fr": ("(", ")"), "en": ("(", ")"), "ja": ("（", "）")}
# Between a sentence and what follows it (a link, an address): Japanese puts no space.
_SPACE = {"fr": " ", "en": " ", "ja": ""}


def slot_marker(name: str) -> str:
    """Where a contact's value goes in a rendered part (a name of SLOTS)."""
    return f"{_OPEN}{name}{_CLOSE}"


@dataclass(frozen=True)
class Compiled:
    """A rendered part cut around its slots: statics[0] slot[0] statics[1] slot[1] ...

    The statics are the same for every contact: the transports encode them once per
    edition and put each contact's values between them.
    """

    statics: tuple[str, ...]
    slots: tuple[str, ...]

    @classmethod
    def split(cls, rendered: str) -> Compiled:
        """Cut a rendered part at its slot markers."""
        parts = _SLOT.split(rendered)
        return cls(tuple(parts[0::2]), tuple(parts[1::2]))

    def fill(self, values: Mapping[str, str]) -> str:
        """Join the statics with the slot values (already escaped for this part)."""
        out = [self.statics[0]]
        for slot, static in zip(self.slots, self.statics[1:], strict=True):
            out += (values[slot], static)
        return "".join(out)


@dataclass(frozen=True)
class RenderedLanguage:
    """One language of an edition, rendered and inlined, waiting for a contact."""

    lang: Lang
    subject: str
    preheader: str
    html: Compiled
    text: Compiled


@dataclass(frozen=True)
class PersonalMessage:
    """The newsletter for one contact: the rendered language plus this contact's values."""

    email: str
    display_name: str
    rendered: RenderedLanguage
    plain_values: Mapping[str, str]
    html_values: Mapping[str, str]

    @property
    def lang(self) -> Lang:
        """The language this contact reads the edition in."""
        return self.rendered.lang

    @property
    def subject(self) -> str:
        """The subject line in the contact's language."""
        return self.rendered.subject

    @property
    def unsubscribe_url(self) -> str:
        """This contact's unsubscribe link (also in both parts)."""
        return self.plain_values["unsubscribe_url"]

    @property
    def html(self) -> str:
        """The HTML part as the contact receives it."""
        return self.rendered.html.fill(self.html_values)

    @property
    def text(self) -> str:
        """The plain-text part as the contact receives it."""
        return self.rendered.text.fill(self.plain_values)


def load_strings(templates_dir: Path) -> dict[str, dict[str, Any]]:
    """Read the interface strings of every language."""
    path = templates_dir / STRINGS_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of languages")
    return data


def format_date(strings: Mapping[str, Any], edition: Edition) -> str:
    """Write the edition date the way the language writes dates (ja: with the weekday)."""
    d = edition.date
    weekdays = strings.get("weekdays")
    return str(strings["date_format"]).format(
        day=d.day, month=strings["months"][d.month - 1], year=d.year,
        weekday=weekdays[d.weekday()] if weekdays else "",
    )


def _ordinal_en(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _environment(templates_dir: Path, *, autoescape: bool) -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,
    )
    # Language-aware (they read ``lang`` from the context): typography, then wrapping.
    env.filters["wrap"] = wrap_filter
    env.filters["heading"] = heading_filter
    return env


class Renderer:
    """Jinja2 environment and css-inline, configured once for the templates folder."""

    def __init__(self, templates_dir: Path, *, public_url: str, mail_from_address: str,
                 postal_address: tuple[str, ...] = ()) -> None:
        self.templates_dir = templates_dir
        self.public_url = public_url
        self.mail_from_address = mail_from_address
        self.postal_address = postal_address
        # Two environments rather than one choosing by file name: the HTML part escapes
        # every value whatever its template is called; the text part is not HTML.
        self.env = _environment(templates_dir, autoescape=True)
        self.text_env = _environment(templates_dir, autoescape=False)
        self.strings = load_strings(templates_dir)
        self.inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        # Set for a send: links go through the click redirect (newsletter/links.py). Never
        # for previews, test copies or the public archive, whose links go straight.
        self.links: LinkRewriter | None = None

    def context(self, edition: Edition, lang: Lang, *, web_page: bool = False) -> dict[str, Any]:
        """Everything the templates may use for one language (``web_page``: the archive's)."""
        if lang not in self.strings:
            raise ConfigError(f"{self.templates_dir / STRINGS_FILE}: no strings for {lang!r}")
        plain = for_language(edition, lang)  # a URL given per language: this one's
        # The click rewriter knows the edition's own sections (by identity): a section copied
        # to make its per-language URL plain is still that link.
        original = {id(copy): section for copy, section in zip(plain.sections,
                                                                edition.sections, strict=True)}
        edition = plain
        t = self.strings[lang]
        venue = edition.venue[lang]
        label = str(t["edition_label"]).format(
            number=edition.number, ordinal=_ordinal_en(edition.number),
            date=format_date(t, edition), venue=venue,
        )
        # A button without a URL writes to the club (its From address) about this edition.
        mailto = f"mailto:{self.mail_from_address}?subject=Club%20Japon%20{edition.slug}"
        open_quote, close_quote = _QUOTES[lang]

        def paren(text: str) -> str:
            return f"{_PARENS[lang][0]}{text}{_PARENS[lang][1]}"

        return {
            "edition": edition,
            "lang": lang,
            "t": t,
            "L": lambda texts: texts[lang],
            "slot": slot_marker,
            "edition_label": label,
            "opening": _own_or_house(edition.opening, t, "opening", lang),
            "closing": _own_or_house(edition.closing, t, "closing", lang),
            "cta_url": lambda section: section.url or mailto,
            "tracked": lambda section, url: (
                url if web_page or self.links is None
                else self.links(original.get(id(section), section), url, lang)),
            "list_sep": _LIST_SEP[lang],
            "public_url": self.public_url,
            "open_quote": open_quote,
            "close_quote": close_quote,
            "colon": _COLON[lang],
            "space": _SPACE[lang],
            "paren": paren,
            "quotes": lambda of: _QUOTES[of],
            "quote_lang": lambda section: quote_language(section, lang),
            "attribution": lambda section: attribution(section, lang),
            "mailto_address": mailto_address,
            "postal_lines": self.postal_address,
            "dir": "ltr",  # fr, en and ja all read left to right
            "view_online_url": archive_url(self.public_url, edition.slug, lang),
            # The public archive page: no reader, so no address and no unsubscribe link.
            "web_page": web_page,
            "archive_nav": None,
        }

    def render_web_page(self, edition: Edition, lang: Lang,
                        nav: Mapping[str, Any] | None = None) -> str:
        """The HTML part as the public archive shows it: the generic greeting, no reader.

        ``nav``: the archive's links, ``index`` (a URL) and ``languages`` ((code, name, URL)).
        """
        ctx = self.context(edition, lang, web_page=True)
        ctx["archive_nav"] = nav
        try:
            html = self.env.get_template(HTML_TEMPLATE).render(ctx)
        except TemplateError as exc:
            raise ConfigError(f"{_template_location(exc)}: {lang}: {exc.message or exc}") from None
        anonymous = str(escape(typeset(self.strings[lang]["greeting_anonymous"], lang)))
        # The template still marks the greeting slot; any other slot gets nothing.
        return Compiled.split(self._finish(html, lang, web=True)).fill(
            {"greeting": anonymous, "email": "", "unsubscribe_url": "", "reader": ""})

    def _finish(self, html: str, lang: Lang, web: bool = False) -> str:
        """A rendered HTML part as it goes out: CSS inlined, the charset first in <head>,
        and the typography of its languages (once per language, never per contact);
        ``web`` for the archive page, which mail clients never rewrite."""
        return typeset_html(charset_first(self.inliner.inline(html)), lang, web=web)

    def render_language(self, edition: Edition, lang: Lang) -> RenderedLanguage:
        """Render both parts of one language, inline the CSS, and split at the slots."""
        ctx = self.context(edition, lang)
        try:
            html = self.env.get_template(HTML_TEMPLATE).render(ctx)
            text = self.text_env.get_template(TEXT_TEMPLATE).render(ctx)
        except TemplateError as exc:
            raise ConfigError(f"{_template_location(exc)}: {lang}: {exc.message or exc}") from None
        # Typography on the whole part: what the templates add around the edition's words
        # (" : ", guillemets) is set too. The text filters did the wrapped text.
        inlined = self._finish(html, lang)
        return RenderedLanguage(
            lang=lang,
            subject=typeset(edition.subject[lang], lang),
            preheader=typeset(edition.preheader[lang], lang),
            html=Compiled.split(inlined),
            text=Compiled.split(typeset(text, lang)),
        )


_HEAD_STYLE = re.compile(r"<head>(<style>.*?</style>)\s*", re.S)


def charset_first(html: str) -> str:
    """Move the <style> css-inline keeps at the top of <head> to its end.

    A browser looks for <meta charset> in the first 1024 bytes only; css-inline's
    keep_at_rules puts the @media rules before it, which pushes it past that.
    """
    match = _HEAD_STYLE.search(html)
    if match is None:
        return html
    head_end = html.find("</head>", match.end())
    if head_end < 0:
        return html
    return (html[:match.start()] + "<head>" + html[match.end():head_end] + match.group(1)
            + "\n" + html[head_end:])


def _own_or_house(
    own: Mapping[Lang, str] | None, strings: Mapping[str, Any], key: str, lang: Lang
) -> str:
    """The edition's text for ``lang``, or, left out or blank, the house's (may be empty)."""
    text = (own or {}).get(lang, "")
    return text.strip() or str(strings.get(key, "")).strip()


def quote_language(section: QuoteSection, lang: Lang) -> Lang:
    """The language a quotation is shown in: the original where its words are kept as said.

    An edition keeps a quotation untranslated by giving every language the original text;
    it is then marked up in the original language, and not called a translation.
    """
    original = section.original_language
    if section.text.get(lang) == section.text.get(original):
        return original
    return lang


def attribution(section: QuoteSection, lang: Lang) -> str:
    """Who said a quotation, punctuated as the reader's language does."""
    author, role = section.author[lang], section.role[lang]
    if lang == "ja":
        return f"——{author}（{role}）"
    return f"— {author}, {role}"


def mailto_address(url: str) -> str:
    """The address of a mailto: link, without its query (?subject=...)."""
    return unquote(urlsplit(url).path)


def archive_url(public_url: str, slug: str, lang: str) -> str:
    """The public page of one language of an edition: PUBLIC_URL/editions/SLUG/LANG."""
    return f"{public_url}/editions/{slug}/{lang}"


def _template_location(exc: TemplateError) -> str:
    """Name the template file and line of a Jinja error (syntax or undefined variable)."""
    filename, line = getattr(exc, "filename", None), getattr(exc, "lineno", None)
    # Errors at render time carry no location; Jinja puts template frames in the traceback.
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            filename, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    return f"{filename or 'templates'}{f':{line}' if line else ''}"


def _in_japanese_script(name: str) -> bool:
    """True for a name written in kanji or kana (高橋, けんじ), not in Latin letters."""
    return any(is_wide(c) and unicodedata.category(c).startswith("L") for c in name)


def with_sama(name: str) -> str:
    """A name with 様: "高橋様", and after a name in Latin letters a space ("Takahashi 様").

    The space is U+00A0, so 様 never starts a line alone.
    """
    return f"{name}様" if is_wide(name[-1]) else f"{name}\u00a0様"


def greeting(strings: Mapping[str, Any], contact: Contact, lang: Lang) -> str:
    """Greet by name where one is known; in Japanese by family name with 様.

    A given name in Japanese script is not used alone in French or English ("Dear 健二,"
    reads as intimate, or rude): the family name with 様 where the CRM has it, else the
    greeting without a name. A language with a formal greeting by full name
    (``greeting_full``: English's "Dear Kenji Takahashi,") uses it where the CRM has both
    names; the CRM does not say Mr or Ms, so the given name comes with the family name.
    """
    first, last = contact.first_name, contact.last_name
    if lang == "ja":
        name = last or first
        return str(strings["greeting_named"]).format(name=with_sama(name)) if name else str(
            strings["greeting_anonymous"])
    if first and _in_japanese_script(first):
        if last:
            return str(strings["greeting_family"]).format(name=with_sama(last))
        return str(strings["greeting_anonymous"])
    if first and last and "greeting_full" in strings:
        return str(strings["greeting_full"]).format(first_name=first, last_name=last)
    if first:
        return str(strings["greeting_named"]).format(first_name=first)
    return str(strings["greeting_anonymous"])


def display_name(contact: Contact) -> str:
    """The name for the To header: given and family name, family first for Japanese readers."""
    parts = [contact.first_name, contact.last_name]
    if contact.language == "ja":
        parts.reverse()
    return " ".join(p for p in parts if p)


# The unsubscribe link of a contact and their ledger row (None before a row exists): the
# link names the row, never the address (delivery/tokens.py).
UnsubscribeLink = Callable[[Contact, int | None], str]


class Personaliser:
    """Fill one edition's rendered languages for each contact."""

    def __init__(
        self,
        edition: Edition,
        rendered: Mapping[Lang, RenderedLanguage],
        strings: Mapping[str, Mapping[str, Any]],
        unsubscribe_url: UnsubscribeLink,
        reader_part: Callable[[Contact, int], str] | None = None,
    ) -> None:
        self.edition = edition
        # What a reader's links carry after their token, given their ledger row (consent).
        self.reader_part = reader_part
        self.rendered = rendered
        # The greetings' words are typeset once per language here, not per contact.
        self.strings = {lang: _typeset_greetings(s, lang) for lang, s in strings.items()}
        self.unsubscribe_url = unsubscribe_url

    def language_for(self, contact: Contact) -> Lang:
        """The contact's language if the edition has it, else the edition's primary one."""
        lang = contact.language
        return lang if lang in self.rendered else self.edition.primary_language  # type: ignore[return-value]

    def personalise(self, contact: Contact, row: int | None = None) -> PersonalMessage:
        """Build the subject and both parts for one contact, whose ledger row is ``row``
        (None: a preview, a check or a test copy, before any row exists)."""
        lang = self.language_for(contact)
        part = self.rendered[lang]
        url = self.unsubscribe_url(contact, row)
        plain = {
            "greeting": greeting(self.strings[lang], contact, lang),
            "email": contact.email,
            "unsubscribe_url": url,
            "reader": (self.reader_part(contact, row)
                       if self.reader_part is not None and row is not None else ""),
        }
        return PersonalMessage(
            email=contact.email,
            display_name=display_name(contact),
            rendered=part,
            plain_values=plain,
            html_values={k: str(escape(v)) for k, v in plain.items()},
        )


def _typeset_greetings(strings: Mapping[str, Any], lang: str) -> Mapping[str, Any]:
    greetings = {key: typeset(str(strings[key]), lang)
                 for key in ("greeting_named", "greeting_full", "greeting_anonymous",
                            "greeting_family")
                 if key in strings}
    return {**strings, **greetings}


def render_edition(renderer: Renderer, edition: Edition) -> dict[Lang, RenderedLanguage]:
    """Render every language of the edition once."""
    return {lang: renderer.render_language(edition, lang) for lang in edition.languages}

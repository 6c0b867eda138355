"""The edition content model: metadata plus an ordered list of typed sections.

Nothing here knows any particular event: an edition is made of generic sections (text,
figures, quote, panels, list, image, cta) in the order the file lists them.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from clubjapon_ops.listnames import BadListName, clean_list_name

Lang = Literal["fr", "en", "ja"]
LANGS: tuple[Lang, ...] = ("fr", "en", "ja")
Status = Literal["draft", "ready"]

# A text in each of the edition's languages; unknown keys fail validation (Lang is closed).
Localized = dict[Lang, str]
# Texts an edition may give for some languages only: the others get the house's words.
OPTIONAL_TEXTS = frozenset({"opening", "closing"})


def _https(url: str) -> str:
    if not url.startswith("https://"):
        raise ValueError("expected an absolute https:// URL")
    return url


def _https_or_mailto(url: str) -> str:
    if not url.startswith(("https://", "mailto:")):
        raise ValueError("expected an absolute https:// URL or a mailto: address")
    return url


# The patterns are for editors (the JSON Schema); the validators give the readable message.
HttpsUrl = Annotated[str, AfterValidator(_https), Field(json_schema_extra={"pattern": "^https://"})]
LinkUrl = Annotated[
    str, AfterValidator(_https_or_mailto),
    Field(json_schema_extra={"pattern": "^(https://|mailto:)"}),
]


# A URL may differ by language like any text (a registration form per language): one
# address for every language, or one per language (the lint then wants each of them).
# Tagged by shape, so that an error names the field as the file does (url.en), not every
# member of the union; the loader drops these tags from the locations it shows.
URL_TAGS = ("url-for-all", "url-per-language")


def _url_shape(value: object) -> str:
    return URL_TAGS[1] if isinstance(value, dict) else URL_TAGS[0]


HttpsUrls = Annotated[
    Annotated[HttpsUrl, Tag(URL_TAGS[0])] | Annotated[dict[Lang, HttpsUrl], Tag(URL_TAGS[1])],
    Discriminator(_url_shape),
]
LinkUrls = Annotated[
    Annotated[LinkUrl, Tag(URL_TAGS[0])] | Annotated[dict[Lang, LinkUrl], Tag(URL_TAGS[1])],
    Discriminator(_url_shape),
]

# What an image file under config/editions/media/ may be: the formats every mail client
# shows. SVG is not one of them, and it can carry scripts.
MEDIA_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
_MEDIA_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_. -]*")


def _media_name(name: str) -> str:
    """A file name under config/editions/media/: relative, no '..', an allowed image type."""
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"{name!r} is not a file name under config/editions/media/: write it relative to "
            "that folder, like photos/table-ronde.jpg, without '..', '/' first or '\\'")
    if not all(_MEDIA_PART.fullmatch(p) for p in parts):
        raise ValueError(
            f"{name!r}: use letters, digits, '-', '_', '.' and spaces in image file names")
    suffix = name[name.rfind("."):].lower() if "." in parts[-1] else ""
    if suffix == ".svg":
        raise ValueError(
            f"{name!r}: SVG images are not allowed (mail clients do not show them, and they "
            "can carry scripts): export it as PNG")
    if suffix not in MEDIA_SUFFIXES:
        raise ValueError(
            f"{name!r}: an image file must be PNG, JPEG, GIF or WebP "
            "(.png, .jpg, .jpeg, .gif, .webp)")
    return name


MediaName = Annotated[str, AfterValidator(_media_name)]


def url_in(value: str | dict[Lang, str], lang: Lang) -> str:
    """The plain URL one language reads: the same for all, or that language's own."""
    return value if isinstance(value, str) else value[lang]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _list_name(name: str) -> str:
    try:
        cleaned = clean_list_name(name)
    except BadListName as exc:
        raise ValueError(str(exc)) from None
    if not cleaned:
        raise ValueError("expected a list name, found an empty one")
    return cleaned


# A CRM list as `clubjapon-ops lists` shows it; case and accents do not matter.
ListName = Annotated[str, AfterValidator(_list_name)]
ListNames = Annotated[list[ListName], Field(min_length=1)]


class Audience(_Strict):
    """Who gets the edition: on any of ``lists`` and on none of ``exclude_lists``, reading one
    of ``languages``; every field may be left out. A suppressed reader is never in it."""

    lists: list[ListName] = Field(
        default=[], description="A reader on any of these CRM lists; left out: every reader.")
    exclude_lists: list[ListName] = Field(
        default=[], description="Readers on any of these lists are left out.")
    languages: list[Lang] = Field(
        default=[], description="Only readers of these languages; left out: every language.")


class _Section(_Strict):
    """What every section may say: the lists of readers who see it."""

    only_for: ListNames | None = Field(
        default=None, description="Shown only to readers on any of these CRM lists.")
    except_for: ListNames | None = Field(
        default=None, description="Hidden from readers on any of these CRM lists.")


class TextSection(_Section):
    """A heading and one or more paragraphs."""

    type: Literal["text"]
    heading: Localized
    paragraphs: list[Localized] = Field(min_length=1)


class Figure(_Strict):
    """A headline figure: the number as written in each language, and what it counts."""

    value: Localized
    label: Localized


class FiguresSection(_Section):
    """Value and label pairs side by side, under an optional heading."""

    type: Literal["figures"]
    heading: Localized | None = None
    items: list[Figure] = Field(min_length=1)


class QuoteSection(_Section):
    """A quotation, exact in its original language; the others say they are translations."""

    type: Literal["quote"]
    heading: Localized | None = None
    text: Localized
    author: Localized
    role: Localized
    original_language: Lang = Field(
        description="The language the words were said in; the other languages are "
                    "marked as translated from it.")


class Speaker(_Strict):
    """Someone who spoke in a panel."""

    name: Localized
    role: Localized | None = None


class Panel(_Strict):
    """One titled discussion: its title (exact, in the original), a summary, its speakers."""

    title: Localized
    summary: Localized | None = None
    speakers: list[Speaker] = []


class PanelsSection(_Section):
    """Numbered discussions (round tables, talks) under one heading."""

    type: Literal["panels"]
    heading: Localized | None = None
    items: list[Panel] = Field(min_length=1)


class ListSection(_Section):
    """A heading and short items: inline on one line, or one bullet per item."""

    type: Literal["list"]
    heading: Localized
    items: list[Localized] = Field(min_length=1)
    style: Literal["inline", "bullets"] = "bullets"


class ImageSection(_Section):
    """An image: a file under config/editions/media/ or an https URL, alt text in every
    language, its size as shown, an optional link."""

    type: Literal["image"]
    file: MediaName | None = Field(
        default=None,
        description="A PNG, JPEG, GIF or WebP file under config/editions/media/ (like "
                    "photos/table-ronde.jpg): published with the edition, its size read "
                    "from the file.")
    url: HttpsUrls | None = Field(
        default=None, description="An image already online (https://), instead of file.")
    alt: Localized
    width: int | None = Field(
        default=None, ge=1, le=600,
        description="Width shown, in pixels (at most 600); with file, read from it.")
    height: int | None = Field(
        default=None, ge=1, description="Height shown, in pixels; with file, read from it.")
    link: HttpsUrls | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImageSection:
        if (self.file is None) == (self.url is None):
            raise ValueError("give the image either file: (a file under "
                             "config/editions/media/) or url: (https://...), one of them")
        if self.file is None and (self.width is None or self.height is None):
            raise ValueError("an image given by url needs its width and height in pixels")
        return self


class CtaSection(_Section):
    """A button: an optional sentence, its label and where it leads."""

    type: Literal["cta"]
    text: Localized | None = None
    label: Localized
    url: LinkUrls | None = Field(
        default=None,
        description="https:// or mailto:, or one per language; absent, a mailto: link to "
                    "the club's From address.")


Section = Annotated[
    TextSection | FiguresSection | QuoteSection | PanelsSection | ListSection | ImageSection
    | CtaSection,
    Field(discriminator="type"),
]
SECTION_CLASSES: dict[str, type[BaseModel]] = {
    "text": TextSection, "figures": FiguresSection, "quote": QuoteSection,
    "panels": PanelsSection, "list": ListSection, "image": ImageSection, "cta": CtaSection,
}
SECTION_TYPES = tuple(SECTION_CLASSES)


class EditionFile(_Strict):
    """What an edition file holds: metadata, then its sections in reading order."""

    number: int = Field(ge=1)
    date: date
    status: Status = Field(description="draft: preview only; ready: can be sent.")
    public: bool = Field(
        default=False,
        description="true: listed in the public archive once ready, even if this database "
                    "did not send it (an edition sent from elsewhere or before the ledger).")
    languages: list[Lang] = Field(min_length=1)
    venue: Localized
    city: Localized
    subject: Localized
    preheader: Localized
    title: Localized
    summary: Localized
    # The letter's first and last words around its content, in the languages that have them.
    opening: Localized | None = Field(
        default=None,
        description="The words after the greeting, per language; a language left out or "
                    "empty gets the house's (ja: 平素より大変お世話になっております。…).")
    closing: Localized | None = Field(
        default=None,
        description="The words before the footer, per language; a language left out or "
                    "empty gets the house's (ja: 今後ともどうぞよろしくお願い申し上げます。).")
    sections: list[Section] = Field(min_length=1)
    audience: Audience | None = Field(
        default=None,
        description="Who gets the edition; left out: every subscribed reader.")


class Edition(EditionFile):
    """One edition of the club's newsletter, named by its file's stem."""

    slug: str

    @property
    def primary_language(self) -> Lang:
        """The first language listed: the one the club writes in."""
        return self.languages[0]

    @property
    def is_draft(self) -> bool:
        """True while the edition is a draft: it can be previewed, not sent."""
        return self.status == "draft"

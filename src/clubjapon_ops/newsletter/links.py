"""The links of an edition that clicks are counted on, and how the renderer rewrites them.

A link is named by (edition, language, key): the key is the index of its section in the
edition file, so it stays the same in every variant (sections hidden from some readers keep
their index) and whatever URL each language gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from clubjapon_ops.newsletter.model import CtaSection, Edition, ImageSection, Lang

# (edition slug, language, link key) -> the URL a message carries instead of the link's own.
LinkHref = Callable[[str, str, str], str]


@dataclass(frozen=True)
class EditionLink:
    """One https link of one language of an edition: its key, what it says, where it leads."""

    key: str
    label: str
    url: str


def _in(value: Any, lang: Lang) -> str | None:
    """A field that is one URL or one per language (a mapping), in ``lang``."""
    if isinstance(value, Mapping):
        value = value.get(lang)
    return value if isinstance(value, str) else None


def section_link(section: Any, lang: Lang) -> tuple[str, str] | None:
    """(label, url) of a section's counted link in ``lang``, or None (mailto:, no link)."""
    if isinstance(section, CtaSection):
        url, label = _in(section.url, lang), section.label.get(lang, "")
    elif isinstance(section, ImageSection):
        url, label = _in(section.link, lang), section.alt.get(lang, "")
    else:
        return None
    if not url or not url.startswith("https://"):
        return None
    return label, url


def edition_links(edition: Edition, lang: Lang) -> list[EditionLink]:
    """The counted links of one language, in reading order."""
    found = []
    for index, section in enumerate(edition.sections):
        link = section_link(section, lang)
        if link is not None:
            found.append(EditionLink(str(index), *link))
    return found


class LinkRewriter:
    """Turns a section's link into its redirect URL, for one edition (and its variants)."""

    def __init__(self, edition: Edition, href: LinkHref, reader_slot: str = "") -> None:
        self.slug = edition.slug
        # Variants keep the very section objects of the edition: their index is found by id.
        self.keys = {id(section): str(index) for index, section in enumerate(edition.sections)}
        self.href = href
        self.reader_slot = reader_slot

    def __call__(self, section: Any, url: str, lang: Lang) -> str:
        """The URL the message carries for ``url``, the link of ``section`` in ``lang``."""
        key = self.keys.get(id(section))
        if key is None or not url.startswith("https://"):
            return url  # mailto: and anything else go as they are
        return self.href(self.slug, lang, key) + self.reader_slot

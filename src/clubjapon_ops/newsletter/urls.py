"""Per-language URLs made plain: what one language's readers are sent to.

An edition may give any URL (an image, its link, a button) once for every language or once
per language. Rendering goes through :func:`for_language`, so every template, and whatever
later rewrites an edition's links (per edition, language and link), sees one plain string.
"""

from __future__ import annotations

from pydantic import BaseModel

from clubjapon_ops.newsletter.model import CtaSection, Edition, ImageSection, Lang, url_in

# The URL fields of each section type that may be given per language.
URL_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {
    ImageSection: ("url", "link"),
    CtaSection: ("url",),
}


def for_language(edition: Edition, lang: Lang) -> Edition:
    """The edition with every per-language URL replaced by ``lang``'s own, a plain string."""
    sections = []
    changed = False
    for section in edition.sections:
        update = {
            name: url_in(value, lang)
            for name in URL_FIELDS.get(type(section), ())
            if isinstance(value := getattr(section, name), dict)
        }
        if update:
            changed = True
            section = section.model_copy(update=update)
        sections.append(section)
    return edition.model_copy(update={"sections": sections}) if changed else edition

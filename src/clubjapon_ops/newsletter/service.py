"""Wire an edition for use: load it, render every language once, and personalise.

Checking an edition as it will be sent (its MIME message included) is delivery's:
clubjapon_ops.delivery.newsletter_check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr

from clubjapon_ops.contacts import Contact
from clubjapon_ops.newsletter.audience import Conditions, Variant, edition_variant
from clubjapon_ops.newsletter.content import (
    EDITIONS_DIR,
    Edition,
    Lang,
    edition_path,
    load_edition,
)
from clubjapon_ops.newsletter.links import LinkHref, LinkRewriter
from clubjapon_ops.newsletter.media import with_published_images
from clubjapon_ops.newsletter.render import (
    TEMPLATES_DIR,
    Personaliser,
    PersonalMessage,
    RenderedLanguage,
    Renderer,
    UnsubscribeLink,
    render_edition,
    slot_marker,
)
from clubjapon_ops.settings import Settings

# Fictitious readers for previews when the store has no contact of a language.
SAMPLE_CONTACTS: dict[str, Contact] = {
    "fr": Contact(email="camille.martin@example.com", source="sample", first_name="Camille",
                  last_name="Martin", company="Exemple SAS", language="fr"),
    "en": Contact(email="emily.clarke@example.com", source="sample", first_name="Emily",
                  last_name="Clarke", company="Example Ltd", language="en"),
    "ja": Contact(email="sato.haruto@example.com", source="sample", first_name="陽翔",
                  last_name="佐藤", company="株式会社サンプル", language="ja"),
}


@dataclass
class Newsletter:
    """An edition rendered in all its languages, ready to personalise."""

    edition: Edition
    renderer: Renderer
    rendered: dict[Lang, RenderedLanguage]
    personaliser: Personaliser
    # Sections shown to part of the audience: one personaliser per variant, rendered once
    # at its first reader (render once per language and combination of conditions).
    _variants: dict[Variant, Personaliser] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    conditions: Conditions = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.conditions = Conditions(self.edition)

    def personalise(self, contact: Contact, on_lists: frozenset[str] = frozenset(),
                    row: int | None = None) -> PersonalMessage:
        """The message for one contact, who is on these lists (keys; none when not given),
        sent from ledger row ``row`` (None: not sent, a preview or a check)."""
        if not self.conditions.rules:
            return self.personaliser.personalise(contact, row)
        return self.variant(self.conditions.variant(on_lists)).personalise(contact, row)

    def variant(self, variant: Variant) -> Personaliser:
        """The personaliser of one variant, its languages rendered on first use."""
        found = self._variants.get(variant)
        if found is None:
            with self._lock:  # sending lanes are threads: render each variant once
                found = self._variants.get(variant)
                if found is None:
                    edition = edition_variant(self.edition, variant)
                    found = Personaliser(edition, render_edition(self.renderer, edition),
                                         self.renderer.strings,
                                         self.personaliser.unsubscribe_url,
                                         self.personaliser.reader_part)
                    self._variants[variant] = found
        return found


def placeholder_unsubscribe_url(settings: Settings) -> UnsubscribeLink:
    """The link shown where no signing key is configured: the unsubscribe page, no token."""
    return lambda contact, row: f"{settings.public_url}/unsubscribe"


def make_renderer(settings: Settings) -> Renderer:
    """A renderer over the project's templates folder."""
    return Renderer(
        settings.root / TEMPLATES_DIR,
        public_url=settings.public_url,
        mail_from_address=parseaddr(settings.mail_from)[1],
        postal_address=settings.postal_address,
    )


def find_edition(settings: Settings, slug: str, image_base: str | None = None) -> Edition:
    """Load an edition by slug, its image files published; ConfigError names the file,
    field and line when invalid.

    ``image_base``: what the images' URLs start with before /media/ (default
    CLUBJAPON_PUBLIC_URL, where readers fetch them; a preview uses its own server or folder).
    """
    path = edition_path(settings.root, slug)  # UnknownEdition is a ConfigError
    base = settings.public_url if image_base is None else image_base
    return with_published_images(settings.root, path, load_edition(path), base)


def publish_images(settings: Settings, edition: Edition) -> Edition:
    """An edition loaded otherwise (the archive's), its image files published and linked; a
    file removed since it was sent shows its last published copy, else no image."""
    path = settings.root / EDITIONS_DIR / f"{edition.slug}.yaml"
    return with_published_images(settings.root, path, edition, settings.public_url,
                                 archived=True)


def load_newsletter(
    settings: Settings,
    slug: str,
    unsubscribe_url: UnsubscribeLink | None = None,
    links: LinkHref | None = None,
    reader_part: Callable[[Contact, int], str] | None = None,
    image_base: str | None = None,
) -> Newsletter:
    """Load and render an edition by slug; ConfigError names what is wrong.

    ``links``: the redirect URL of each link (a send); ``reader_part``: what a consenting
    reader's links add (consent mode). Without them links go straight to their target.
    ``image_base``: see find_edition (a preview shows the images published on this machine).
    """
    edition = find_edition(settings, slug, image_base)
    renderer = make_renderer(settings)
    if links is not None:
        renderer.links = LinkRewriter(edition, links,
                                      slot_marker("reader") if reader_part else "")
    rendered = render_edition(renderer, edition)
    personaliser = Personaliser(
        edition, rendered, renderer.strings,
        unsubscribe_url or placeholder_unsubscribe_url(settings), reader_part,
    )
    return Newsletter(edition, renderer, rendered, personaliser)

"""The visible marks a new edition carries where a text is still to be written."""

from __future__ import annotations

from clubjapon_ops.newsletter.model import Lang

# Loud on purpose: in a preview, a test copy or the lint, nobody can miss one.
PLACEHOLDERS: dict[Lang, str] = {"fr": "«À COMPLÉTER»", "en": "TO COMPLETE", "ja": "要記入"}


def placeholder_in(text: str) -> str | None:
    """The placeholder a text still holds, in whichever language, or None."""
    return next((mark for mark in PLACEHOLDERS.values() if mark in text), None)

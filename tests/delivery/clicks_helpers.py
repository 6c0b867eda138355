"""An edition with counted links (an image link, an https button), for the click tests."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import yaml

SLUG = "2025-11-04-lille"
# What a link URL may hold and must come back with unchanged: a quote, a space, non-ASCII
# and, padded, 2,000 characters in all.
_ODD = "https://inscription.example.org/salon?titre=l'été 2026&q=\"日本\"&x="
ODD_URL = _ODD + "a" * (2000 - len(_ODD))
PHOTOS_URL = "https://photos.example.org/2025/lille"
CLICK = re.compile(r"https://club-japon\.example\.org/r/[A-Za-z0-9_.\-]+")


def add_links(home: Path) -> None:
    """Give the sample edition an image with a link and an https button (before its mailto:)."""
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sections"][-1:-1] = [
        {"type": "image", "url": "https://photos.example.org/2025/lille.jpg",
         "alt": {"fr": "Les photos", "en": "The photos", "ja": "写真"},
         "width": 600, "height": 300, "link": PHOTOS_URL},
        {"type": "cta", "label": {"fr": "S'inscrire", "en": "Register", "ja": "申し込む"},
         "url": ODD_URL},
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")


def read_eml(path: Path) -> EmailMessage:
    """A message of the outbox, parsed."""
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of a message."""
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return text, html


def click_links(message: EmailMessage) -> tuple[list[str], list[str]]:
    """The click redirects of the text part and of the HTML part, in order."""
    text, html = parts(message)
    return CLICK.findall(text), CLICK.findall(html)

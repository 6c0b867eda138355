"""An XSS payload, and ways to push it into an edition, a contact and a page check."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from clubjapon_ops.contacts import Contact
from clubjapon_ops.newsletter.content import LANGS
from clubjapon_ops.store import Store
from clubjapon_ops.store.contacts import upsert_contacts

PAYLOAD = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
POISONED = "poisoned@example.com"


def _poison(node: Any) -> Any:
    if isinstance(node, dict):
        if node and set(node) <= set(LANGS):  # a localized text
            return {k: f"{v} {PAYLOAD}" for k, v in node.items()}
        return {k: _poison(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_poison(v) for v in node]
    return node


def poison_edition(path: Path) -> None:
    """Append the payload to every text of the edition, and put it in every URL it has."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data = _poison(data)
    for section in data["sections"]:
        if section["type"] == "cta":
            section["url"] = f"https://club.example.org/?q={PAYLOAD}"
    data["sections"].insert(0, {
        "type": "image", "url": f"https://club.example.org/h.png?{PAYLOAD}",
        "alt": {lang: PAYLOAD for lang in data["languages"]}, "width": 600, "height": 300,
        "link": f"https://club.example.org/?l={PAYLOAD}"})
    data["sections"].append({
        "type": "panels", "items": [{
            "title": {lang: PAYLOAD for lang in data["languages"]},
            "speakers": [{"name": {lang: PAYLOAD for lang in data["languages"]},
                          "role": {lang: PAYLOAD for lang in data["languages"]}}]}]})
    data["sections"].append({
        "type": "list", "heading": {lang: PAYLOAD for lang in data["languages"]},
        "items": [{lang: PAYLOAD for lang in data["languages"]}]})
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def poison_contact(store: Store, language: str = "fr") -> Contact:
    """Store a contact whose every free-text field is the payload."""
    contact = Contact(email=POISONED, source="csv", first_name=PAYLOAD, last_name=PAYLOAD,
                      company=PAYLOAD, language=language, attributes={"jobtitle": PAYLOAD})
    with store.transaction() as conn:
        upsert_contacts(conn, [contact])
    return contact


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if any(n.startswith("on") for n in names) or (tag == "img" and ("src", "x") in attrs):
            self.found.append(self.get_starttag_text() or tag)


def injected(html: str) -> list[str]:
    """The elements the payload made (an <img src=x> or any on* handler): none is wanted."""
    parser = _Elements()
    parser.feed(html)
    return parser.found

"""List names as a CRM writes them, and the key they are matched by (no case, no accents)."""

from __future__ import annotations

import re
import unicodedata

# A list name is a few words; a cell of thousands of characters is a pasted note or garbage.
MAX_LIST_NAME = 200
MAX_LISTS_CELL = 2000
# How a sync notes a record whose lists it could not read (the contact itself is kept).
LISTS_SKIPPED = "lists skipped"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
_SEPARATORS = re.compile(r"[|;,]")


class BadListName(ValueError):
    """A list name (or a cell of them) that cannot be used; the message says why."""


def list_key(name: str) -> str:
    """The key two spellings of a list share: 'Membres', 'membres' and 'MEMBRES ' alike,
    'Partenaires é' and 'partenaires e' too."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _SPACES.sub(" ", text).strip().casefold()


def clean_list_name(value: object) -> str:
    """A list name as written (NFC, spaces trimmed); BadListName when it cannot be one."""
    if not isinstance(value, str):
        raise BadListName(f"list name is a {type(value).__name__}, expected text")
    if _CONTROL.search(value):
        raise BadListName("list name contains control characters")
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", value)).strip()
    if len(text) > MAX_LIST_NAME:
        raise BadListName(f"list name longer than {MAX_LIST_NAME} characters")
    return text


def split_list_cell(cell: str) -> list[str]:
    """The list names of a CSV cell, separated by '|', ';' or ','; BadListName for the cell."""
    if len(cell) > MAX_LISTS_CELL:
        raise BadListName(f"lists cell longer than {MAX_LISTS_CELL} characters")
    names: dict[str, str] = {}
    for part in _SEPARATORS.split(cell):
        if part.strip():
            name = clean_list_name(part)
            names.setdefault(list_key(name), name)
    return list(names.values())

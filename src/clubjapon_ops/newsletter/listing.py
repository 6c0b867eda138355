"""One line per edition file for 'edition list' and the preview index: what it is, or why not.

Each edition's ledger tally beside it is the store's: clubjapon_ops.store.tallies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.content import (
    EDITIONS_DIR,
    list_editions,
    load_edition,
    project_relative,
)


@dataclass(frozen=True)
class EditionLine:
    """An edition as listed: its metadata, or the first error of its file."""

    slug: str
    date: str = ""
    status: str = "invalid"
    languages: tuple[str, ...] = ()
    error: str | None = None


def edition_lines(root: Path) -> list[EditionLine]:
    """Every edition file, oldest first; a malformed one is listed with its first error."""
    lines = []
    for slug in list_editions(root):
        path = root / EDITIONS_DIR / f"{slug}.yaml"
        try:
            edition = load_edition(path)
        except ConfigError as exc:
            first = (str(exc).splitlines() or [""])[0]  # an edition error is a line a mistake
            lines.append(EditionLine(slug, error=project_relative(first, root)))
            continue
        lines.append(EditionLine(slug, edition.date.isoformat(), edition.status,
                                 tuple(edition.languages)))
    return lines

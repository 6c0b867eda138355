"""The preview's front page as data: each edition as 'edition list' sees it, newest first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from clubjapon_ops.errors import ClubJaponError
from clubjapon_ops.newsletter.listing import EditionLine, edition_lines
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.tallies import Tally, ledger_tallies


@dataclass(frozen=True)
class IndexRow:
    """One edition of the index, with its ledger tally when a store has one."""

    line: EditionLine
    tally: Tally | None


def index_rows(
    settings: Settings, open_store: Callable[[], Store], relative: Callable[[str], str]
) -> list[IndexRow]:
    """Every edition file, newest first; ``relative`` strips paths from an error message."""
    # The same listing as 'edition list', so the two never disagree on what is broken.
    lines = edition_lines(settings.root)
    try:
        counts = ledger_tallies(settings, open_store, [line.slug for line in lines])
    except ClubJaponError:
        counts = {}  # no store (yet, or not now): the editions are still worth listing
    rows = []
    for line in reversed(lines):  # slugs start with the date: newest last when sorted
        if line.error:
            line = replace(line, error=relative(line.error))
        rows.append(IndexRow(line, counts.get(line.slug)))
    return rows

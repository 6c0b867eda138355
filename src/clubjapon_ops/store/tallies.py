"""Each edition's ledger rows, planned and sent, for 'edition list' and the preview index."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.location import is_sqlite, sqlite_file


@dataclass(frozen=True)
class Tally:
    """An edition's ledger rows: all of them (planned) and those sent."""

    planned: int
    sent: int


def ledger_tallies(
    settings: Settings, open_store: Callable[[], Store], slugs: list[str]
) -> dict[str, Tally]:
    """Planned and sent rows of the editions the ledger has; none, and no file made, where
    no database is yet."""
    url = make_url(settings.database_url)
    if is_sqlite(url):
        file = sqlite_file(url)
        if file is None or not (settings.root / file).exists():
            return {}  # listing editions is no reason to create a database
    with open_store().transaction() as conn:
        counts = {slug: ledger.ledger_counts(conn, slug) for slug in slugs}
    return {slug: Tally(sum(by_state.values()), by_state.get(ledger.SENT, 0))
            for slug, by_state in counts.items() if by_state}

"""The edition's audience at send time: planned in SQL, checked again at each claim, and the
lists each claimed reader is on (which variant of the edition they get)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from clubjapon_ops.newsletter.audience import audience_keys, condition_keys
from clubjapon_ops.newsletter.model import Edition
from clubjapon_ops.store.deliveries import Claimed
from clubjapon_ops.store.lists import (
    AudienceQuery,
    in_audience,
    leave_audience,
    memberships_of,
    rejoin_audience,
)


def audience_query(edition: Edition) -> AudienceQuery | None:
    """The edition's audience block as the store tests it; None without one."""
    keys = audience_keys(edition)
    return None if keys is None else AudienceQuery(keys.lists, keys.exclude, keys.languages)


class AudienceGate:
    """Who of the claimed rows is still in the audience, and on which condition lists."""

    def __init__(self, edition: Edition) -> None:
        self.query = audience_query(edition)
        self.where = in_audience(self.query)  # the condition plan() and the claims add
        self.conditions = condition_keys(edition)
        self._on_lists: dict[str, frozenset[str]] = {}

    def admit(self, conn: Connection, claimed: list[Claimed]) -> list[Claimed]:
        """The claimed rows still in the audience (the others become 'left'), their lists
        looked up in the same transaction."""
        if self.query is not None and claimed:
            left = leave_audience(conn, [c.id for c in claimed], self.where)
            claimed = [c for c in claimed if c.id not in left]
        self._on_lists = (memberships_of(conn, [c.contact.email for c in claimed],
                                         self.conditions) if self.conditions else {})
        return claimed

    def rejoin(self, conn: Connection, edition: str) -> int:
        """Rows left earlier whose reader is back in the audience: pending again."""
        return rejoin_audience(conn, edition, self.where) if self.query is not None else 0

    def lists_of(self, email: str) -> frozenset[str]:
        """The condition lists (keys) a claimed reader is on."""
        return self._on_lists.get(email, frozenset())

"""The lists half of a CRM sync: memberships stored with their contacts, then the lists the
CRM has (and no longer has) once the pass is whole."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from clubjapon_ops.contacts import Contact
from clubjapon_ops.crm.base import CrmList
from clubjapon_ops.errors import AuthError
from clubjapon_ops.listnames import LISTS_SKIPPED, BadListName, clean_list_name, list_key
from clubjapon_ops.store import Store
from clubjapon_ops.store.lists import (
    SeenList,
    contact_ids,
    crm_contact_ids,
    replace_list_members,
    replace_memberships,
    retire_missing,
    save_lists,
)
from clubjapon_ops.store.types import utcnow

log = logging.getLogger(__name__)


@dataclass
class ListsReport:
    """What a sync did to lists: how many it saw, and the lists the CRM no longer has."""

    seen: dict[str, str] = field(default_factory=dict)  # key: name as written
    warnings: list[str] = field(default_factory=list)
    memberships: int = 0  # contacts whose memberships were replaced
    cells_skipped: list[str] = field(default_factory=list)  # 'line 7: why', the first few

    def skipped(self, ref: str, reason: str) -> None:
        """Note a record whose lists could not be read (the contact itself was kept)."""
        if reason.startswith(LISTS_SKIPPED) and len(self.cells_skipped) < 20:
            self.cells_skipped.append(f"{ref}: {reason}")

    def counts(self) -> dict[str, Any]:
        """The figures a sync records (nothing when the source has no lists)."""
        if not self.seen and not self.warnings:
            return {}
        return {"lists": len(self.seen), "list_memberships": self.memberships,
                **({"lists_gone": list(self.warnings)} if self.warnings else {})}


def store_memberships(conn: Connection, source: str, batch: Iterable[Contact],
                      report: ListsReport, now: datetime) -> None:
    """Replace the memberships of the batch's contacts whose source named their lists."""
    named = {c.email: c.lists for c in batch if c.lists is not None}
    if not named:
        return
    seen: dict[str, str] = {}
    for names in named.values():
        for name in names or ():
            seen.setdefault(list_key(name), report.seen.get(list_key(name), name))
    ids = save_lists(conn, source, [SeenList(n) for n in seen.values()], now)
    report.seen.update(seen)
    by_email = contact_ids(conn, named)
    replace_memberships(conn, source, {
        by_email[email]: [ids[list_key(n)] for n in names or ()]
        for email, names in named.items() if email in by_email})
    report.memberships += len(named)


def finish_lists(store: Store, source: Any, report: ListsReport) -> None:
    """After a whole pass: record the CRM's lists and per-list memberships, retire the lists
    it no longer has, and warn about each by name."""
    now = utcnow()
    catalogue: list[CrmList] | None = getattr(source, "list_catalogue", None)
    if catalogue is None and getattr(source, "lists_complete", False):
        catalogue = [CrmList(name) for name in report.seen.values()]
    memberships = getattr(source, "list_memberships", None)
    if memberships is not None:
        try:
            _store_list_members(store, source, report, memberships(), now)
        except AuthError as exc:
            # A private app made before lists (no crm.lists.read scope): the contacts are
            # synced and sound; the lists stay as they were, and the sync says why.
            message = (f"{source.name} lists were not read, and stay as they were: {exc} "
                       "(the private app needs the crm.lists.read scope)")
            log.warning(message)
            report.warnings.append(message)
            return
        catalogue = getattr(source, "list_catalogue", None)
    if catalogue is None:
        return
    lists = [SeenList(c.name, c.crm_id) for c in catalogue]
    with store.transaction() as conn:
        save_lists(conn, source.name, lists, now)
        gone = retire_missing(conn, source.name, [s.key for s in lists], now)
    report.seen.update({s.key: s.name for s in lists})
    for lost in gone:
        message = lost.warning(source.name)
        log.warning(message)
        report.warnings.append(message)


def _store_list_members(store: Store, source: Any, report: ListsReport,
                        found: Iterable[tuple[CrmList, list[str]]], now: datetime) -> None:
    """Each list's members become those the CRM gave, a list per transaction."""
    for crm_list, members in _usable(found):
        with store.transaction() as conn:
            key = list_key(crm_list.name)
            ids = save_lists(conn, source.name, [SeenList(crm_list.name, crm_list.crm_id)], now)
            replace_list_members(conn, ids[key], crm_contact_ids(conn, source.name, members))
        report.seen[key] = crm_list.name
        report.memberships += len(members)


def _usable(found: Iterable[tuple[CrmList, list[str]]]) -> Iterator[tuple[CrmList, list[str]]]:
    """The lists whose names can be used; the others are logged and left out."""
    for crm_list, members in found:
        try:
            name = clean_list_name(crm_list.name)
        except BadListName as exc:
            log.warning("list skipped", extra={"ref": f"list {crm_list.crm_id}",
                                               "reason": str(exc)})
            continue
        yield CrmList(name, crm_list.crm_id), members

"""What every contact source provides: pages of raw records, each with its bookmark."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from clubjapon_ops.contacts import RawContact


@dataclass
class Page:
    """A batch of raw records and the bookmark that holds once they are committed."""

    records: list[RawContact]
    bookmark: str | None = None
    # Records the source itself found unusable (e.g. a CSV row with too many fields).
    rejected: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class CrmList:
    """A list as the CRM names it, with the CRM's id for it (none in a CSV export)."""

    name: str
    crm_id: str | None = None


class CrmSource(Protocol):
    """A CRM or export that yields contacts page by page.

    A CRM source may also set ``archives_missing = True`` (a complete full sync archives the
    contacts it did not return) and ``full_sync_every`` (a timedelta: how often a full sync
    runs on its own); sources without them (the CSV export) get neither.

    Lists: a record's ``lists`` names the lists it is on (None: the source does not say).
    After a pass, ``list_catalogue`` may hold every list the CRM has (then the lists it no
    longer has are retired), and ``list_memberships()`` may yield each list with the CRM ids
    of its members (a source whose records do not carry their lists: HubSpot).
    """

    name: str

    def pages(self, bookmark: str | None, *, full: bool) -> Iterator[Page]:
        """Yield pages of records changed since ``bookmark`` (everything when ``full``)."""
        ...


def record_id(item: Any) -> str | None:
    """A CRM record's id as text, or None when it has none usable (missing, empty, boolean)."""
    if not isinstance(item, dict):
        return None
    ident = item.get("id")
    if isinstance(ident, bool) or not isinstance(ident, str | int) or ident == "":
        return None
    return str(ident)


def identified(items: list[Any], provider: str,
               rejected: list[tuple[str, str]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The records of a page that are objects with an id, with that id; each other one is
    added to ``rejected`` with its position and the reason."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejected.append((f"{provider} result {index}", "record is not an object"))
            continue
        ident = record_id(item)
        if ident is None:
            rejected.append((f"{provider} result {index}", "record has no id"))
            continue
        yield ident, item

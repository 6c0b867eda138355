"""The CRM sync job: pull contacts page by page into the store, then write suppressions back."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from clubjapon_ops.contacts import Contact, normalise
from clubjapon_ops.crm import CrmSource, Page, make_source
from clubjapon_ops.crm.readahead import read_ahead
from clubjapon_ops.crm.writeback import Pusher, make_pusher
from clubjapon_ops.errors import ConfigError, Interrupted, InvalidContact
from clubjapon_ops.jobs.push import PushReport, push_suppressions
from clubjapon_ops.jobs.records import Report, run_recorded
from clubjapon_ops.jobs.sync_lists import ListsReport, finish_lists, store_memberships
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.contacts import (
    UpsertCounts,
    archive_unseen,
    mark_seen,
    seen_since,
    upsert_contacts,
)
from clubjapon_ops.store.pushes import pending_pushes
from clubjapon_ops.store.runs import (
    get_sync_state,
    save_bookmark,
    start_full_sync,
)
from clubjapon_ops.store.types import utcnow

log = logging.getLogger(__name__)

# Pages commit together once they hold this many records: one statement per batch instead
# of per page is most of the store's cost; the read-ahead and a batch are all we hold.
COMMIT_BATCH = 1000


@dataclass
class SyncReport(Report):
    """What a CRM sync did."""

    source: str
    full: bool = False
    pages: int = 0
    fetched: int = 0
    skipped: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)
    # Optional fields dropped from contacts that were kept (an over-long name), by reason.
    dropped_fields: Counter[str] = field(default_factory=Counter)
    upserts: UpsertCounts = field(default_factory=UpsertCounts)
    archived: int = 0
    bookmark: str | None = None
    push: PushReport | None = None  # the write-back after the pull, when there was one
    read_as: str | None = None  # how a CSV export was read: encoding and delimiter
    lists: ListsReport = field(default_factory=ListsReport)

    @property
    def status(self) -> str:
        """'partial' when the pull went through and some write-backs failed."""
        return self.push.status if self.push is not None else "success"

    def counts(self) -> dict[str, Any]:
        """Return the figures to record and print."""
        push = self.push.counts() if self.push is not None else {}
        return {
            "source": self.source,
            "full": self.full,
            "pages": self.pages,
            "fetched": self.fetched,
            "created": self.upserts.created,
            "updated": self.upserts.updated,
            "unchanged": self.upserts.unchanged,
            "merged": self.upserts.merged,
            "archived": self.archived,
            "skipped": self.skipped,
            "skip_reasons": dict(self.skip_reasons),
            "dropped_fields": sum(self.dropped_fields.values()),
            "dropped_field_reasons": dict(self.dropped_fields),
            **({"read_as": self.read_as} if self.read_as else {}),
            **self.lists.counts(),
            **{f"push_{k}": v for k, v in push.items() if k != "crm"},
        }


def crm_sync(
    settings: Settings,
    store: Store,
    *,
    full: bool = False,
    trigger: str = "cli",
    source: CrmSource | None = None,
    batch_size: int = COMMIT_BATCH,
    stop: threading.Event | None = None,
    pusher: Pusher | None = None,
    progress: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Pull contacts from the configured source into the store, a batch of pages at a time,
    then push the suppressions the CRM does not know yet (write-back).

    When ``stop`` is set the sync ends after the batch it is on, raising Interrupted;
    ``progress`` is called with the report after each committed batch.
    """
    chosen = source or make_source(settings)

    def work() -> SyncReport:
        report = _sync(store, chosen, full, batch_size, stop, progress)
        report.push = _push_after_sync(settings, store, chosen.name, pusher, stop)
        return report

    return run_recorded(store, "crm_sync", trigger, work)


def _push_after_sync(
    settings: Settings, store: Store, crm: str, pusher: Pusher | None,
    stop: threading.Event | None,
) -> PushReport | None:
    """Write back after a pull from a CRM API; a CSV export has nothing to write back to."""
    if pusher is None:
        if crm != settings.crm or crm not in ("hubspot", "brevo"):
            return None
        with store.transaction() as conn:
            if not pending_pushes(conn, crm):
                return None  # the usual night: no client, no setting needed
        try:
            pusher = make_pusher(settings)
        except ConfigError as exc:
            # The pull is done and sound; the write-back waits for its setting.
            log.warning("write-back skipped", extra={"reason": str(exc)})
            return None
        if pusher is None:
            return None
        try:
            return push_suppressions(settings, store, pusher, stop)
        finally:
            pusher.close()
    return push_suppressions(settings, store, pusher, stop)


def _sync(
    store: Store, source: CrmSource, full: bool, batch_size: int,
    stop: threading.Event | None = None,
    progress: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    now = utcnow()
    with store.transaction() as conn:
        state = get_sync_state(conn, source.name)
    archives = bool(getattr(source, "archives_missing", False))
    every: timedelta | None = getattr(source, "full_sync_every", None)
    resuming = archives and state.full_sync_started_at is not None
    due = (
        every is not None
        and state.bookmark is not None
        and (state.last_full_sync_at is None or now - state.last_full_sync_at >= every)
    )
    full = full or state.bookmark is None or resuming or due
    # A full sync stamps what it sees with its start time; kept across a crash, so a
    # resumed full sync archives exactly what the whole pass did not see.
    stamp: datetime | None = None
    if full and archives:
        stamp = state.full_sync_started_at or now
        if not resuming:
            with store.transaction() as conn:
                start_full_sync(conn, source.name, stamp)
    report = SyncReport(source=source.name, full=full, bookmark=state.bookmark)
    log.info("sync started", extra={"source": source.name, "full": full, "resumed": resuming,
                                    "scheduled_full": due})
    batch = _Batch()
    # The next page downloads while this batch is normalised and stored.
    pages = read_ahead(source.pages(state.bookmark, full=full))
    try:
        while True:
            try:
                page = next(pages, None)
            except BaseException:
                # Pages received in full are sound, bookmark included: keep them, then stop.
                _commit(store, source.name, stamp, batch, report)
                raise
            if page is None:
                break
            _take(page, batch, report)
            stopping = stop is not None and stop.is_set()
            if batch.records >= batch_size or stopping:
                _commit(store, source.name, stamp, batch, report)
                if progress is not None:
                    progress(report)
            if stopping:
                # After a commit is the safe point: the next sync resumes from the bookmark,
                # and a full sync stopped here archives nothing.
                raise Interrupted(f"sync stopped after page {report.pages}", report.counts())
        _commit(store, source.name, stamp, batch, report)
    finally:
        pages.close()
    report.read_as = getattr(source, "detected", None)  # known once the file was opened
    finish_lists(store, source, report.lists)
    if full:
        with store.transaction() as conn:
            if stamp is not None:
                report.archived = _archive(conn, source.name, stamp)
            save_bookmark(conn, source.name, report.bookmark, full_sync_done=True)
    log.info("sync finished", extra={"report": report.counts()})
    return report


def _take(page: Page, batch: _Batch, report: SyncReport) -> None:
    """Normalise a page into the batch; count and log what cannot be used."""
    for ref, reason in page.rejected:
        _skip(report, ref, reason)
    notes: list[str] = []
    for raw in page.records:
        try:
            batch.contacts.append(normalise(raw, notes))
            if notes:
                _dropped(report, raw.ref, notes)
        except InvalidContact as exc:
            notes.clear()
            _skip(report, exc.ref, exc.reason)
            if raw.crm_id is not None:
                batch.unusable.append(str(raw.crm_id))
    report.fetched += len(page.records) + len(page.rejected)
    batch.records += len(page.records) + len(page.rejected)
    batch.bookmark, batch.pages = page.bookmark, batch.pages + 1


@dataclass
class _Batch:
    """Pages normalised but not yet committed."""

    contacts: list[Contact] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)  # CRM ids of records we could not use
    bookmark: str | None = None
    pages: int = 0
    records: int = 0  # fetched, usable or not


def _commit(
    store: Store, source: str, stamp: datetime | None, batch: _Batch, report: SyncReport
) -> None:
    """Commit a batch's rows and the bookmark of its last page in one transaction, then empty it.

    A crash never moves one without the other, so the bookmark stands for committed rows only.
    """
    if not batch.pages:
        return
    with store.transaction() as conn:
        counts = upsert_contacts(conn, batch.contacts)
        store_memberships(conn, source, batch.contacts, report.lists, utcnow())
        if stamp is not None:
            # A record we could not use still exists in the CRM: keep its row active.
            mark_seen(conn, source, stamp, emails=[c.email for c in batch.contacts],
                      crm_ids=batch.unusable)
        save_bookmark(conn, source, batch.bookmark)
    report.upserts.add(counts)
    report.bookmark = batch.bookmark
    report.pages += batch.pages
    batch.contacts, batch.unusable, batch.pages, batch.records = [], [], 0, 0
    log.info(
        "sync progress",
        extra={"page": report.pages, "fetched": report.fetched, "skipped": report.skipped},
    )


def _archive(conn: Connection, source: str, stamp: datetime) -> int:
    """Archive what a complete full sync did not return; never when it returned nothing."""
    if not seen_since(conn, source, stamp):
        # An empty CRM is far likelier a wrong account or a broken answer than the truth.
        log.warning("full sync returned no contacts; nothing archived", extra={"source": source})
        return 0
    archived = archive_unseen(conn, source, stamp)
    if archived:
        log.info("contacts archived", extra={"source": source, "archived": archived})
    return archived


def _skip(report: SyncReport, ref: str, reason: str) -> None:
    # Log the reference (row or CRM id), never the record: it is personal data.
    log.warning("contact skipped", extra={"ref": ref, "reason": reason})
    report.skipped += 1
    report.skip_reasons[_reason_kind(reason)] += 1


def _dropped(report: SyncReport, ref: str, notes: list[str]) -> None:
    # The contact is kept; like a skip, the log names the record, never the value.
    for reason in notes:
        log.warning("contact field dropped", extra={"ref": ref, "reason": reason})
        report.dropped_fields[reason] += 1
        report.lists.skipped(ref, reason)
    notes.clear()


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: 'invalid email: <detail>' counts as 'invalid email'."""
    return reason.split(":", 1)[0]

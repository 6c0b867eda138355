"""The jobs: plain functions that the CLI and the scheduler both call, each returning a report."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from clubjapon_ops.contacts import Contact, normalise
from clubjapon_ops.crm import CrmSource, Page, make_source
from clubjapon_ops.crm.readahead import read_ahead
from clubjapon_ops.crm.writeback import Pusher, make_pusher
from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.sender import CampaignSender, SendReport
from clubjapon_ops.delivery.tokens import TokenSigner, signing_key, unsubscribe_url
from clubjapon_ops.delivery.transports import make_transport
from clubjapon_ops.delivery.transports.base import Reachable
from clubjapon_ops.errors import ConfigError, Interrupted, InvalidContact, StopRun
from clubjapon_ops.newsletter.content import resolve_edition
from clubjapon_ops.newsletter.lint import Problem
from clubjapon_ops.newsletter.service import Newsletter, check_newsletter, load_newsletter
from clubjapon_ops.processes import is_gone, process_id
from clubjapon_ops.reports import Report as Report  # re-exported: jobs.Report
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.contacts import (
    UpsertCounts,
    archive_unseen,
    mark_seen,
    seen_since,
    upsert_contacts,
)
from clubjapon_ops.store.lock import send_lock
from clubjapon_ops.store.pushes import pending_pushes
from clubjapon_ops.store.runs import (
    abandon_dead_runs,
    finish_run,
    get_sync_state,
    save_bookmark,
    start_full_sync,
    start_run,
)
from clubjapon_ops.store.types import utcnow
from clubjapon_ops.writeback import PushReport, push_suppressions

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Report)
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
            **{f"push_{k}": v for k, v in push.items() if k != "crm"},
        }


@dataclass(frozen=True)
class RunLabels:
    """What job_runs records about where a run came from, beyond its trigger."""

    declared_job: str | None = None  # the jobs/ file, when the run came from one
    attempt: int = 1


# Set by the job runner around each attempt. A context variable rather than two more keyword
# arguments on every job function: the labels only concern the record, not the work.
_labels: ContextVar[RunLabels | None] = ContextVar("run_labels", default=None)


@contextmanager
def labelled(labels: RunLabels) -> Iterator[None]:
    """Record the runs started in this block (in this thread) with these labels."""
    token = _labels.set(labels)
    try:
        yield
    finally:
        _labels.reset(token)


def run_recorded(store: Store, job: str, trigger: str, work: Callable[[], R]) -> R:
    """Run ``work`` and record its outcome in job_runs, failures included."""
    labels = _labels.get() or RunLabels()
    with store.transaction() as conn:
        # Runs of processes that were killed never recorded their end: say so now.
        if abandoned := abandon_dead_runs(conn, is_gone):
            log.warning("runs whose process was killed marked abandoned",
                        extra={"runs": abandoned})
        run_id = start_run(
            conn, job, trigger, attempt=labels.attempt, declared_job=labels.declared_job,
            runner=process_id(),
        )
    try:
        report = work()
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        # Asked to stop: what was committed is consistent, so this is not a failure.
        status = "stopped" if isinstance(exc, Interrupted | KeyboardInterrupt) else "failed"
        with store.transaction() as conn:
            finish_run(conn, run_id, status, getattr(exc, "counts", {}), error)
        raise
    with store.transaction() as conn:
        finish_run(conn, run_id, report.status, report.counts())
    return report


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
) -> SyncReport:
    """Pull contacts from the configured source into the store, a batch of pages at a time,
    then push the suppressions the CRM does not know yet (write-back).

    When ``stop`` is set the sync ends after the batch it is on, raising Interrupted.
    """
    chosen = source or make_source(settings)

    def work() -> SyncReport:
        report = _sync(store, chosen, full, batch_size, stop)
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


def crm_push(
    settings: Settings, store: Store, *, trigger: str = "cli",
    stop: threading.Event | None = None, pusher: Pusher | None = None,
) -> PushReport:
    """Push local suppressions to the CRM now, without a pull (``sync --push``)."""
    chosen = pusher or make_pusher(settings)
    if chosen is None:
        raise ConfigError(f"CLUBJAPON_CRM={settings.crm}: there is no CRM to write back to")
    try:
        return run_recorded(store, "crm_push", trigger,
                            lambda: push_suppressions(settings, store, chosen, stop))
    finally:
        if pusher is None:
            chosen.close()


def _sync(
    store: Store, source: CrmSource, full: bool, batch_size: int,
    stop: threading.Event | None = None,
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
            if stopping:
                # After a commit is the safe point: the next sync resumes from the bookmark,
                # and a full sync stopped here archives nothing.
                raise Interrupted(f"sync stopped after page {report.pages}", report.counts())
        _commit(store, source.name, stamp, batch, report)
    finally:
        pages.close()
    report.read_as = getattr(source, "detected", None)  # known once the file was opened
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
    notes.clear()


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: 'invalid email: <detail>' counts as 'invalid email'."""
    return reason.split(":", 1)[0]


@dataclass
class SendOptions:
    """How ops asked for a send."""

    limit: int | None = None
    resend_unknown: bool = False
    force: bool = False
    worker: bool = False  # one of several processes on the campaign (PostgreSQL only)


def newsletter_for_sending(settings: Settings, edition: str) -> Newsletter:
    """Load the edition with real, signed unsubscribe links."""
    slug = resolve_edition(settings.root, edition)  # tokens sign the slug, never a spelling
    signer = TokenSigner(signing_key(settings))
    return load_newsletter(
        settings, slug,
        lambda c: unsubscribe_url(settings, signer, slug, c.email, c.language),
    )


def refuse_draft(newsletter: Newsletter) -> None:
    """A draft is for previews and test copies: raise ConfigError before anything is sent."""
    edition = newsletter.edition
    if edition.is_draft:
        raise ConfigError(f"{edition.slug} is a draft: set status: ready in "
                          f"config/editions/{edition.slug}.yaml when it is")


def lint_before_send(settings: Settings, newsletter: Newsletter) -> list[Problem]:
    """Run the newsletter lint with the links this send will use."""
    return check_newsletter(settings, newsletter.edition.slug,
                            newsletter.personaliser.unsubscribe_url)


def refuse_workers_on(dialect: str) -> None:
    """Parallel senders need row locks that skip locked rows: PostgreSQL, not SQLite."""
    if dialect != "postgresql":
        raise ConfigError(
            f"--worker needs PostgreSQL (SELECT ... FOR UPDATE SKIP LOCKED); this store is "
            f"{dialect}: run a single `send` there, or set CLUBJAPON_DATABASE_URL to a "
            "postgresql+psycopg:// URL"
        )


def ensure_no_send_running(store: Store, edition: str) -> None:
    """Raise AlreadyRunning now if another process sends this edition (SQLite).

    A look before the plan is printed, so that a refused send does not show one; the send
    itself takes the lock again, which is what keeps two senders apart.
    """
    with send_lock(store, edition):
        pass


def send_campaign(
    settings: Settings,
    store: Store,
    edition: str,
    *,
    options: SendOptions | None = None,
    trigger: str = "cli",
    stop: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
    newsletter: Newsletter | None = None,
) -> SendReport:
    """Send an edition to its audience through the configured transport; record everything."""
    options = options or SendOptions()
    if options.worker:
        refuse_workers_on(store.dialect)
    newsletter = newsletter or newsletter_for_sending(settings, edition)
    refuse_draft(newsletter)  # --force skips the lint, never this
    # With force the lint decides nothing (the send command has already shown its result).
    errors = [] if options.force else [
        p for p in lint_before_send(settings, newsletter) if p.level == "error"]
    if errors:
        raise StopRun(f"lint found {len(errors)} error(s), first: {errors[0]}; "
                      "fix them or send with --force")

    def work() -> SendReport:
        builder = MimeBuilder(settings.mail_from)
        transport = make_transport(settings, builder)
        try:
            sender = CampaignSender(store, newsletter, transport, rate=settings.send_rate,
                                    error_budget=settings.error_budget, stop=stop,
                                    progress=progress, worker=options.worker,
                                    commit_every=settings.send_commit_every)
            if isinstance(transport, Reachable):
                # One session before planning: a wrong host or port stops here, at once.
                transport.check()
            report = sender.prepare(resend_unknown=options.resend_unknown)
            return sender.run(report, limit=options.limit)
        finally:
            transport.close()

    # One sender per edition on SQLite, taken before the run is recorded: a send refused
    # because another is running did nothing, and is not a failed run of that edition.
    with send_lock(store, edition):
        return run_recorded(store, "send_campaign", trigger, work)

"""The jobs: plain functions that the CLI and the scheduler both call, each returning a report."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from clubjapon_ops.contacts import Contact, normalise
from clubjapon_ops.crm import CrmSource, make_source
from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.sender import CampaignSender, SendReport
from clubjapon_ops.delivery.tokens import TokenSigner, signing_key, unsubscribe_url
from clubjapon_ops.delivery.transports import make_transport
from clubjapon_ops.errors import Interrupted, InvalidContact, StopRun
from clubjapon_ops.newsletter.lint import Problem
from clubjapon_ops.newsletter.service import Newsletter, check_newsletter, load_newsletter
from clubjapon_ops.reports import Report as Report  # re-exported: jobs.Report
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.contacts import UpsertCounts, upsert_contacts
from clubjapon_ops.store.runs import finish_run, get_sync_state, save_bookmark, start_run

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Report)


@dataclass
class SyncReport(Report):
    """What a CRM sync did."""

    source: str
    full: bool = False
    pages: int = 0
    fetched: int = 0
    skipped: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)
    upserts: UpsertCounts = field(default_factory=UpsertCounts)
    bookmark: str | None = None

    def counts(self) -> dict[str, Any]:
        """Return the figures to record and print."""
        return {
            "source": self.source,
            "full": self.full,
            "pages": self.pages,
            "fetched": self.fetched,
            "created": self.upserts.created,
            "updated": self.upserts.updated,
            "unchanged": self.upserts.unchanged,
            "merged": self.upserts.merged,
            "skipped": self.skipped,
            "skip_reasons": dict(self.skip_reasons),
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
        run_id = start_run(
            conn, job, trigger, attempt=labels.attempt, declared_job=labels.declared_job
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
    stop: threading.Event | None = None,
) -> SyncReport:
    """Pull contacts from the configured source into the store, page by page.

    When ``stop`` is set the sync ends after the page it is on, raising Interrupted.
    """
    chosen = source or make_source(settings)
    return run_recorded(store, "crm_sync", trigger, lambda: _sync(store, chosen, full, stop))


def _sync(
    store: Store, source: CrmSource, full: bool, stop: threading.Event | None = None
) -> SyncReport:
    with store.transaction() as conn:
        state = get_sync_state(conn, source.name)
    full = full or state.bookmark is None
    report = SyncReport(source=source.name, full=full, bookmark=state.bookmark)
    log.info("sync started", extra={"source": source.name, "full": full})
    for page in source.pages(state.bookmark, full=full):
        valid: list[Contact] = []
        for ref, reason in page.rejected:
            _skip(report, ref, reason)
        for raw in page.records:
            try:
                valid.append(normalise(raw))
            except InvalidContact as exc:
                _skip(report, exc.ref, exc.reason)
        report.fetched += len(page.records) + len(page.rejected)
        # The page's rows and its bookmark commit together: a crash never moves one alone.
        with store.transaction() as conn:
            counts = upsert_contacts(conn, valid)
            save_bookmark(conn, source.name, page.bookmark)
        report.upserts.add(counts)
        report.bookmark = page.bookmark
        report.pages += 1
        log.info(
            "sync progress",
            extra={"page": report.pages, "fetched": report.fetched, "skipped": report.skipped},
        )
        if stop is not None and stop.is_set():
            # Between pages is the safe point: the next sync starts again from the bookmark.
            raise Interrupted(f"sync stopped after page {report.pages}", report.counts())
    if full:
        with store.transaction() as conn:
            save_bookmark(conn, source.name, report.bookmark, full_sync_done=True)
    log.info("sync finished", extra={"report": report.counts()})
    return report


def _skip(report: SyncReport, ref: str, reason: str) -> None:
    # Log the reference (row or CRM id), never the record: it is personal data.
    log.warning("contact skipped", extra={"ref": ref, "reason": reason})
    report.skipped += 1
    report.skip_reasons[_reason_kind(reason)] += 1


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: 'invalid email: <detail>' counts as 'invalid email'."""
    return reason.split(":", 1)[0]


@dataclass
class SendOptions:
    """How ops asked for a send."""

    limit: int | None = None
    resend_unknown: bool = False
    force: bool = False


def newsletter_for_sending(settings: Settings, edition: str) -> Newsletter:
    """Load the edition with real, signed unsubscribe links."""
    signer = TokenSigner(signing_key(settings, allow_generated=settings.transport == "outbox"))
    return load_newsletter(
        settings, edition,
        lambda c: unsubscribe_url(settings, signer, edition, c.email, c.language),
    )


def lint_before_send(settings: Settings, newsletter: Newsletter) -> list[Problem]:
    """Run the newsletter lint with the links this send will use."""
    return check_newsletter(settings, newsletter.edition.slug,
                            newsletter.personaliser.unsubscribe_url)


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
    newsletter = newsletter or newsletter_for_sending(settings, edition)
    errors = [p for p in lint_before_send(settings, newsletter) if p.level == "error"]
    if errors and not options.force:
        raise StopRun(f"lint found {len(errors)} error(s), first: {errors[0]}; "
                      "fix them or send with --force")

    def work() -> SendReport:
        builder = MimeBuilder(settings.mail_from)
        transport = make_transport(settings, builder)
        try:
            sender = CampaignSender(store, newsletter, transport, rate=settings.send_rate,
                                    error_budget=settings.error_budget, stop=stop,
                                    progress=progress)
            report = sender.prepare(resend_unknown=options.resend_unknown)
            return sender.run(report, limit=options.limit)
        finally:
            transport.close()

    return run_recorded(store, "send_campaign", trigger, work)

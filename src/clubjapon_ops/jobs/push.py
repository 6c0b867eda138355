"""Write-back as a job step: process stored events, then push new suppressions to the CRM."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from clubjapon_ops.crm.writeback import Pusher, make_pusher
from clubjapon_ops.errors import AuthError, ConfigError, Interrupted, StopRun
from clubjapon_ops.jobs.records import Report, run_recorded
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.events import process_pending
from clubjapon_ops.store.pushes import DONE, KNOWN, NOT_FOUND, pending_pushes, record_push

log = logging.getLogger(__name__)
# Failures in a row after which the CRM is taken to be down: the rest waits for next time.
MAX_FAILURES_IN_A_ROW = 3


@dataclass
class PushReport(Report):
    """What one write-back did."""

    crm: str
    pushed: int = 0
    known: int = 0  # the CRM had the address opted out already
    not_found: list[str] = field(default_factory=list)  # reported, never created
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    events_processed: int = 0

    @property
    def status(self) -> str:
        """'partial' when some pushes failed (they are tried again next time)."""
        return "partial" if self.failed else "success"

    def counts(self) -> dict[str, Any]:
        """Return the figures to record and print."""
        return {"crm": self.crm, "pushed": self.pushed, "already_known": self.known,
                "not_found": len(self.not_found), "failed": self.failed,
                "events_processed": self.events_processed}


def process_events(settings: Settings, store: Store) -> int:
    """Process events stored but not processed yet (a webhook that failed half-way)."""
    with store.transaction() as conn:
        return process_pending(conn, settings.soft_bounce_limit)["processed"]


def push_suppressions(
    settings: Settings, store: Store, pusher: Pusher, stop: threading.Event | None = None
) -> PushReport:
    """Tell the CRM about every local suppression it does not know yet, each once."""
    report = PushReport(crm=pusher.name)
    report.events_processed = process_events(settings, store)
    with store.transaction() as conn:
        todo = pending_pushes(conn, pusher.name)
    in_a_row = 0
    for candidate in todo:
        if stop is not None and stop.is_set():
            # Every push so far is recorded: the next run goes on from here.
            raise Interrupted("write-back stopped", report.counts())
        outcome: str = KNOWN
        detail: str | None = "opted out in the CRM already"
        if not candidate.in_crm:
            outcome, detail = NOT_FOUND, f"not among the contacts synced from {pusher.name}"
        elif not candidate.crm_opted_out:
            try:
                outcome, detail = pusher.push(candidate.email, candidate.source), None
            except AuthError:
                raise  # a missing scope or a revoked key: every push would fail the same way
            except StopRun as exc:
                report.failed += 1
                report.errors.append(str(exc))
                in_a_row += 1
                if in_a_row >= MAX_FAILURES_IN_A_ROW:
                    log.warning("write-back paused: the CRM keeps failing",
                                extra={"crm": pusher.name, "failed": report.failed})
                    break
                continue
            in_a_row = 0
        with store.transaction() as conn:
            record_push(conn, candidate.email, pusher.name, candidate.source, outcome, detail)
        if outcome == DONE:
            report.pushed += 1
        elif outcome == KNOWN:
            report.known += 1
        else:
            report.not_found.append(candidate.email)
    log.info("write-back finished", extra={"report": report.counts()})
    return report


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

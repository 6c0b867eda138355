"""The bounce mailbox job: read, classify, match, record as events, then file the messages.

Each batch is one transaction (its events stored and processed into suppressions), then its
messages leave the folder. A run killed between the two leaves them in place: the next run
reads them again, and their events, keyed by the report and the address, are not stored
twice. A message that cannot be classified, or that ties no reader to a message we sent
('unverified'), moves to the folder Review for a person: never read again by a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from imapclient.exceptions import IMAPClientError

from clubjapon_ops.bounces import classify as c
from clubjapon_ops.bounces.mailbox import Mailbox, imap_config
from clubjapon_ops.bounces.match import Matched, Matcher, Report
from clubjapon_ops.delivery.message import message_id
from clubjapon_ops.delivery.returnpath import bounce_address
from clubjapon_ops.delivery.tokens import TokenSigner, VerpSigner, signing_key
from clubjapon_ops.errors import (
    ClubJaponError,
    ConfigError,
    Interrupted,
    RetryableError,
    StopRun,
)
from clubjapon_ops.jobs.records import Report as JobReport
from clubjapon_ops.jobs.records import run_recorded
from clubjapon_ops.printable import printable
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.events import process_pending, store_events
from clubjapon_ops.store.lock import bounce_lock

log = logging.getLogger(__name__)
BATCH = 250  # messages fetched, classified and committed at once: memory stays flat
PROGRESS_EVERY_S = 5.0
WATCH_EVERY_S = 0.1  # how often the watchdog looks at the stop flag and the clock
_RECORDED = (c.HARD, c.SOFT, c.DELAYED, c.BLOCKED, c.COMPLAINT, c.OPT_OUT)
# A report that ties no reader to a message we sent (bounces/match.py): for a person, like junk.
UNVERIFIED = "unverified"
_LEFT_IN_PLACE = (c.UNCLASSIFIED, UNVERIFIED)
VERP_OFF = ("CLUBJAPON_BOUNCE_VERP is off: a bounce counts only for the one reader whose "
            "Message-ID or signed unsubscribe link it returns, and anyone who knows an "
            "address and an edition can write such a Message-ID; set "
            "CLUBJAPON_BOUNCE_VERP=true (the bounce mailbox must take local+anything@ "
            "addresses, see docs/ops.md, 'Bounce mailbox')")
# Called for each message: its UID, its verdict, its events (None when nothing is recorded).
OnMessage = Callable[[int, c.Verdict, Matched | None], None]


@dataclass
class BounceReport(JobReport):
    """What one read of the bounce mailbox found and did."""

    dry_run: bool = False
    read: int = 0
    hard: int = 0
    soft: int = 0
    delayed: int = 0  # delay warnings: the server still tries; recorded, never suppressing
    blocked: int = 0  # refused for a policy (x.7.x): recorded, never suppressing
    complaints: int = 0
    opt_outs: int = 0
    auto_replies: int = 0
    other_reports: int = 0  # feedback reports that are no complaint (DMARC failure reports)
    unclassified: list[int] = field(default_factory=list)  # UIDs, moved to Review
    # Reports that tie no reader to a message we sent: UIDs, moved to Review.
    unverified: list[int] = field(default_factory=list)
    review: str | None = None  # the folder they went to (a dry run moves nothing)
    out_of_time: bool = False  # stopped at BOUNCE_IMAP_DEADLINE between batches
    unknown: list[str] = field(default_factory=list)  # addresses the store does not know
    events_new: int = 0
    suppressed: int = 0
    filed: int = 0  # moved to Processed, or deleted

    @property
    def status(self) -> str:
        """'partial' when some messages were left for a person (in the folder Review)."""
        return ("partial" if self.unclassified or self.unverified or self.out_of_time
                else "success")

    def counts(self) -> dict[str, Any]:
        """Return the figures to record and print."""
        return {"read": self.read, "hard": self.hard, "soft": self.soft,
                "delayed": self.delayed, "blocked": self.blocked,
                "complaints": self.complaints, "opt_outs": self.opt_outs,
                "auto_replies": self.auto_replies, "other_reports": self.other_reports,
                "unclassified": len(self.unclassified), "unverified": len(self.unverified),
                "unknown_addresses": len(self.unknown),
                "events_new": self.events_new, "suppressed": self.suppressed,
                "filed": self.filed}

    def summary(self) -> str:
        """The one line the CLI prints (control characters escaped: addresses are anyone's)."""
        return printable(self._summary())

    def _summary(self) -> str:
        unclassified = _uids(self.unclassified, self.review)
        addresses = ", ".join(self.unknown[:10])
        if len(self.unknown) > 10:
            addresses += f" and {len(self.unknown) - 10} more"
        unknown = f"{len(self.unknown)}" + (f" ({addresses})" if addresses else "")
        head = "dry run, nothing changed: " if self.dry_run else ""
        return (f"{head}read {self.read}, hard {self.hard}, soft {self.soft}, delayed "
                f"{self.delayed}, blocked {self.blocked}, complaints {self.complaints}, "
                f"opt-outs {self.opt_outs}, "
                f"auto-replies {self.auto_replies}, "
                f"other reports {self.other_reports}, unclassified {unclassified}, "
                + (f"unverified {_uids(self.unverified, self.review)}, "
                   if self.unverified else "")
                + f"unknown addresses {unknown}"
                + ("; stopped at BOUNCE_IMAP_DEADLINE, the next run reads the rest"
                   if self.out_of_time else ""))

    def count(self, kind: str, uid: int) -> None:
        """Count one message under its kind."""
        self.read += 1
        if kind in _LEFT_IN_PLACE:
            (self.unclassified if kind == c.UNCLASSIFIED else self.unverified).append(uid)
            return
        name = {c.HARD: "hard", c.SOFT: "soft", c.DELAYED: "delayed", c.BLOCKED: "blocked",
                c.COMPLAINT: "complaints",
                c.OPT_OUT: "opt_outs", c.AUTO_REPLY: "auto_replies",
                c.OTHER_REPORT: "other_reports"}[kind]
        setattr(self, name, getattr(self, name) + 1)


def _uids(uids: list[int], moved_to: str | None = None) -> str:
    """'3 (UIDs 4, 9, 12)': a count and the first twenty UIDs; '3 (moved to Review)'."""
    if uids and moved_to:
        return f"{len(uids)} (moved to {moved_to})"  # their UIDs there are new ones
    shown = ", ".join(map(str, uids[:20]))
    more = f" and {len(uids) - 20} more" if len(uids) > 20 else ""
    return f"{len(uids)}" + (f" (UIDs {shown}{more})" if shown else "")


def _matcher(settings: Settings) -> Matcher:
    try:
        key: str | None = signing_key(settings)
    except ConfigError:
        key = None  # no CLUBJAPON_SECRET: no message carried a token nor a signed link
    domain = parseaddr(settings.mail_from)[1].rsplit("@", 1)[-1]
    return Matcher(VerpSigner(key) if key else None, bounce_address(settings), domain,
                   require_verp=settings.bounce_verp, tokens=TokenSigner(key) if key else None)


def _raw_id(verdict: c.Verdict, raw: bytes) -> str:
    return verdict.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()


class _Watchdog:
    """Cuts the IMAP connection once the run is asked to stop or passes its deadline.

    A blocked read sees nothing else: a server that sends an untagged OK every 0.2 s and
    never finishes its FETCH held the run for ever, SIGTERM included (the review). Watching
    starts before the connection, so a login that never ends is cut too.
    """

    def __init__(self, stop: threading.Event | None, seconds: float) -> None:
        self.fired: str | None = None  # "stop" or "deadline"
        self.deadline = time.monotonic() + seconds
        self._stop = stop
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bounce-mailbox-watchdog",
                                        daemon=True)
        self._thread.start()

    def attach(self, sock: socket.socket) -> None:
        """The connection to cut (cut at once if the time has come already)."""
        with self._lock:
            self._sock = sock
            if self.fired is not None:
                _cut(sock)

    def _watch(self) -> None:
        while not self._done.wait(WATCH_EVERY_S):
            if self._stop is not None and self._stop.is_set():
                fired = "stop"
            elif time.monotonic() >= self.deadline:
                fired = "deadline"
            else:
                continue
            with self._lock:
                self.fired = fired
                if self._sock is not None:
                    _cut(self._sock)
            return

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self.deadline

    def close(self) -> None:
        """Stop watching."""
        self._done.set()
        self._thread.join()


def _cut(sock: socket.socket) -> None:
    """Shut a connection down from another thread: a read blocked on it ends at once."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def read_bounces(
    settings: Settings, store: Store, *, dry_run: bool = False,
    stop: threading.Event | None = None, mailbox: Mailbox | None = None,
    on_message: OnMessage | None = None, batch_size: int = BATCH,
) -> BounceReport:
    """Read the bounce mailbox once: record what it says, file what was handled."""
    config = mailbox.config if mailbox is not None else imap_config(settings)
    watchdog = _Watchdog(stop, config.deadline)
    box = mailbox
    try:
        if box is None:
            box = Mailbox(config, readonly=dry_run, on_socket=watchdog.attach)
        else:
            watchdog.attach(box.client.socket())
        return _read(settings, store, box, watchdog, dry_run=dry_run, stop=stop,
                     on_message=on_message, batch_size=batch_size)
    except (OSError, IMAPClientError, ClubJaponError) as exc:
        if isinstance(exc, Interrupted):
            raise
        if watchdog.fired == "stop":
            raise Interrupted("bounce mailbox stopped") from None
        if watchdog.fired == "deadline":
            raise StopRun(
                f"the bounce mailbox was still being read after BOUNCE_IMAP_DEADLINE="
                f"{config.deadline:g} s ({config.host}:{config.port} never "
                "finished its answer): what was read is recorded, the next run goes on"
            ) from None
        if isinstance(exc, ClubJaponError):
            raise
        raise RetryableError(f"the IMAP server at {config.host}:{config.port} "
                             "(BOUNCE_IMAP_HOST, BOUNCE_IMAP_PORT) failed in the middle of "
                             "the run: what was read is recorded, the next run goes "
                             "on") from None
    finally:
        watchdog.close()
        if mailbox is None and box is not None:
            box.close()


def _read(settings: Settings, store: Store, box: Mailbox, watchdog: _Watchdog, *,
          dry_run: bool, stop: threading.Event | None, on_message: OnMessage | None,
          batch_size: int) -> BounceReport:
    matcher = _matcher(settings)
    domain = matcher.domain
    report = BounceReport(dry_run=dry_run)
    unknown: set[str] = set()
    started = last = time.monotonic()
    if not matcher.require_verp:
        log.warning(VERP_OFF)
    uids = box.uids()
    log.info("bounce mailbox opened", extra={"folder": box.config.folder,
                                             "messages": len(uids), "dry_run": dry_run})
    for start in range(0, len(uids), batch_size):
        if stop is not None and stop.is_set():
            raise Interrupted("bounce mailbox stopped", report.counts())
        if watchdog.expired():
            log.warning("the bounce mailbox run reached BOUNCE_IMAP_DEADLINE: the next "
                        "run reads the rest", extra={"left": len(uids) - start})
            report.out_of_time = True
            break
        reports: list[Report] = []
        verdicts: list[tuple[int, c.Verdict]] = []
        for fetched in box.fetch(uids[start:start + batch_size]):
            verdict = c.classify(fetched.raw)
            verdicts.append((fetched.uid, verdict))
            if verdict.kind in _RECORDED:
                reports.append(Report(fetched.uid, _raw_id(verdict, fetched.raw), verdict,
                                      fetched.received))
        with store.transaction() as conn:
            matched = dict(zip([r.uid for r in reports], matcher.match(conn, reports),
                               strict=True))
            events = [e for m in matched.values() for e in m.events]
            if not dry_run and events:
                report.events_new += store_events(
                    conn, events, lambda edition, email: message_id(edition, email, domain))
                done = process_pending(conn, settings.soft_bounce_limit)
                report.suppressed += sum(v for k, v in done.items()
                                         if k.startswith("suppressed_"))
        handled: list[int] = []
        for uid, verdict in verdicts:
            found = matched.get(uid)
            kind = verdict.kind
            if found is not None and found.unverified:
                kind = UNVERIFIED  # to Review: a person decides
            elif found is not None and not found.events:
                kind = c.UNCLASSIFIED  # a complaint that names no one we can find
                verdict = c.Verdict(c.UNCLASSIFIED, reason="a report naming no recipient")
            report.count(kind, uid)
            if kind not in _LEFT_IN_PLACE:
                handled.append(uid)
            if found is not None:
                for address in found.unknown:
                    if address not in unknown:
                        unknown.add(address)
                        report.unknown.append(address)
            if on_message is not None:
                on_message(uid, verdict, found)
        if not dry_run and handled:
            box.finish(handled)
            report.filed += len(handled)
        filed_now = set(handled)
        aside = [uid for uid, _ in verdicts if uid not in filed_now]
        if not dry_run and aside:
            report.review = box.set_aside(aside)
        if time.monotonic() - last >= PROGRESS_EVERY_S or start + batch_size >= len(uids):
            last = time.monotonic()
            elapsed = max(last - started, 1e-6)
            log.info("bounce mailbox progress", extra={
                "done": report.read, "total": len(uids),
                "rate": round(report.read / elapsed, 1)})
    log.info("bounce mailbox read", extra={"report": report.counts()})
    return report


def bounce_mailbox(
    settings: Settings, store: Store, *, trigger: str = "cli",
    stop: threading.Event | None = None, dry_run: bool = False,
    on_message: OnMessage | None = None,
) -> BounceReport:
    """Read the bounce mailbox now, recorded in job_runs (a dry run is not recorded).

    One read at a time per database (AlreadyRunning names the other); a dry run files
    nothing and takes no lock.
    """
    if dry_run:
        return read_bounces(settings, store, dry_run=True, stop=stop, on_message=on_message)
    with bounce_lock(store):
        return run_recorded(store, "bounce_mailbox", trigger,
                            lambda: read_bounces(settings, store, stop=stop,
                                                 on_message=on_message))

"""The campaign sender: plan the audience, claim rows, send, record each outcome.

No ledger row moves before the event it stands for: a row becomes 'sending' before it is
handed over, and 'sent' (or failed, retry, unknown) only once the transport has answered.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from clubjapon_ops.delivery.audience import AudienceGate
from clubjapon_ops.delivery.ratelimit import SharedTokenBucket, TokenBucket
from clubjapon_ops.delivery.transports.base import Outgoing, Result, Status, Transport
from clubjapon_ops.errors import AuthError
from clubjapon_ops.newsletter.service import Newsletter
from clubjapon_ops.processes import is_gone, worker_id
from clubjapon_ops.reports import Report
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.contacts import add_suppression
from clubjapon_ops.store.types import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

# How long a batch may go again under its idempotency key. Brevo's guide says "The TTL for
# idempotencyKey is 30 minutes" (developers.brevo.com/docs/heterogenous-versions-batch-emails);
# its changelog said "The TTL for the idempotencyKey is 15 minutes" (developers.brevo.com/
# changelog/email-api-now-supports-idempotency). A resend past the real TTL is delivered
# twice, a batch given up too early only waits for the operator ('unknown'): trust the
# shorter, with a margin for clocks and a request in flight.
IDEMPOTENCY_VALIDITY = timedelta(minutes=12)
MAX_ATTEMPTS = 5
RETRY_DELAY = timedelta(minutes=5)
_STATE_OF = {
    Status.SENT: ledger.SENT, Status.QUEUED: ledger.SENT, Status.REJECTED: ledger.FAILED,
    Status.FAILED: ledger.FAILED, Status.RETRY: ledger.RETRY, Status.UNKNOWN: ledger.UNKNOWN,
    Status.REFUSED: ledger.RETRY,
}


@dataclass(frozen=True)
class Waiting:
    """The send waits for a provider: who, why, and when it tries again."""

    provider: str
    cause: str
    next_try_at: datetime


@dataclass
class SendReport(Report):
    """What one send run did, and the ledger after it."""

    edition: str
    transport: str
    planned: int = 0
    recovered: dict[str, int] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    skipped_suppressed: int = 0
    paused: str | None = None
    interrupted: bool = False
    ledger: dict[str, int] = field(default_factory=dict)
    waiting: int = 0  # rows left in 'retry', due again later
    waiting_until: datetime | None = None  # when the last of them becomes due
    made_due: int = 0  # retry rows made due at once (send --now)

    @property
    def status(self) -> str:
        """success, partial (something to look at, or left to send), paused or stopped."""
        if self.paused:
            return "paused"
        if self.interrupted:
            return "stopped"
        # A retry that this run sent again in the end is no failure; one still waiting is
        # counted in ``waiting``.
        bad = sum(self.outcomes[s] for s in (ledger.FAILED, ledger.UNKNOWN))
        # Unknown rows wait for the operator, retry rows for their time, whichever run left
        # them: the edition is not done, keep saying so.
        left = self.ledger.get(ledger.UNKNOWN, 0) + self.waiting
        return "partial" if bad or left else "success"

    def counts(self) -> dict[str, Any]:
        """Figures recorded in job_runs."""
        return {
            "edition": self.edition, "transport": self.transport, "planned": self.planned,
            **{k: self.outcomes.get(k, 0) for k in (ledger.SENT, ledger.FAILED, ledger.RETRY,
                                                    ledger.UNKNOWN)},
            "skipped": self.skipped_suppressed, "recovered": self.recovered,
            "paused": self.paused, "interrupted": self.interrupted,
            "waiting_retry": self.waiting,
            "waiting_until": self.waiting_until.isoformat() if self.waiting_until else None,
        }


class CampaignSender:
    """Sends one edition to its audience through one transport."""

    def __init__(
        self,
        store: Store,
        newsletter: Newsletter,
        transport: Transport,
        *,
        rate: float = 0.0,
        error_budget: int = 50,
        stop: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
        worker: bool = False,
        commit_every: int = 1,
        retry_delay: timedelta = RETRY_DELAY,
        waiting: Callable[[Waiting], None] | None = None,
    ) -> None:
        self.store = store
        # Messages per ledger transaction in a lane: 1 leaves at most one uncertain row per
        # lane after a crash; more trades that bound for throughput (see docs/ops.md, "The
        # ledger and unknown rows").
        self.commit_every = max(1, commit_every)
        self.newsletter = newsletter
        self.edition = newsletter.edition.slug
        self.transport = transport
        # On PostgreSQL several senders may share a campaign: the rate is theirs together.
        self.bucket: TokenBucket | SharedTokenBucket = (
            SharedTokenBucket(store, rate) if store.dialect == "postgresql" and rate > 0
            else TokenBucket(rate))
        # A worker is one of several processes on a campaign: when the queue looks empty it
        # settles the rows of peers that died, and goes on with those.
        self.worker_mode = worker
        self.rate = rate
        self.error_budget = error_budget
        self.stop = stop or threading.Event()
        self.progress = progress
        # Told when the send waits for a provider (an attempt that failed, a keyed batch
        # waiting for its resend): the CLI shows it on the progress line.
        self.waiting = waiting
        self.retry_delay = retry_delay
        client = getattr(transport, "client", None)
        # The provider as people know it ('Brevo'), from its API definition when it has one.
        self.provider = str(getattr(getattr(client, "api", None), "name", transport.name))
        if waiting is not None and client is not None and hasattr(client, "on_retry"):
            client.on_retry = lambda n: waiting(Waiting(self.provider, n.cause, n.next_try_at))
        self.worker = worker_id()
        self._lock = threading.Lock()
        self._last_cause: str | None = None
        self._credentials_refused = False
        self._report = SendReport(self.edition, transport.name)
        self._total = self._done = self._failures_in_a_row = 0
        self._lanes: ThreadPoolExecutor | None = None
        # SQLite has one writer at a time and a busy writer waits by sleeping (1 ms and
        # up): lanes of this process take turns on a lock instead. PostgreSQL locks rows.
        self._writing: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock() if store.dialect == "sqlite" else contextlib.nullcontext())
        self._shared: tuple[Connection, ledger.LaneLedger] | None = None
        self.audience = AudienceGate(newsletter.edition)

    def prepare(self, *, resend_unknown: bool = False, now: bool = False) -> SendReport:
        """Settle rows of interrupted runs, then plan the audience into pending rows.

        ``now``: rows waiting for a retry are due at once (after a fixed API key, say).
        """
        report = SendReport(self.edition, self.transport.name)
        with self.store.transaction() as conn:
            ledger.lock_edition(conn, self.edition)
            report.recovered = ledger.recover(conn, self.edition, is_gone)
            if resend_unknown:
                report.recovered["resent_unknown"] = ledger.resend_unknown(conn, self.edition)
            if now:
                report.made_due = ledger.make_due(conn, self.edition)
            report.planned = (ledger.plan(conn, self.edition, self.audience.where)
                              + self.audience.rejoin(conn, self.edition))
        if report.recovered:
            log.warning("rows from an interrupted send settled", extra=report.recovered)
        return report

    def run(self, report: SendReport, limit: int | None = None) -> SendReport:
        """Send pending and retry rows until done, stopped, paused or at ``limit``.

        A keyed batch that failed with no sure answer (a 5xx, a timeout) is resent by this
        same run, under its key, when due: waiting for a later run could let the key lapse.
        """
        self._report = report
        sent_before = 0
        while True:
            self._run_once(report, None if limit is None else limit - sent_before)
            sent_before = sum(report.outcomes.values())
            if (self.stop.is_set() or self._credentials_refused
                    or (limit is not None and sent_before >= limit)):
                break
            with self.store.transaction() as conn:
                due = ledger.next_keyed_retry(conn, self.edition, utcnow())
            if due is None:
                break
            self._wait_until(due)
            # A pause for failures in a row does not stop this resend: it is the one chance
            # of the batch under its key, and a provider still failing pauses it again.
            report.paused = None
        report.interrupted = self.stop.is_set()
        return report

    def _wait_until(self, due: datetime) -> None:
        """Wait (a stop ends it) until a keyed batch may go again, saying so."""
        wait = (due - utcnow()).total_seconds()
        if wait <= 0:
            return
        cause = self._last_cause or "no answer"
        log.warning("waiting to resend a batch under its idempotency key",
                    extra={"provider": self.provider, "cause": cause,
                           "next_try_at": due.isoformat(timespec="seconds")})
        if self.waiting is not None:
            self.waiting(Waiting(self.provider, cause, due))
        self.stop.wait(wait)

    def _run_once(self, report: SendReport, limit: int | None) -> SendReport:
        with self.store.transaction() as conn:
            total = min(limit or 10**12, sum(
                n for s, n in ledger.ledger_counts(conn, self.edition).items()
                if s in ledger.SENDABLE))
        self._total, self._done, self._failures_in_a_row = total, 0, 0
        # A worker goes on until the queue is empty (peers may hand rows back); a lone
        # sender stops at what was sendable when it began.
        cap = (limit or 10**12) if self.worker_mode else total
        self._report = report
        per_message = self.transport.per_message
        lease = timedelta(seconds=max(300.0, 2 * self.transport.batch_size / (self.rate or 50)))
        try:
            while not self.stop.is_set() and not report.paused and self._done < cap:
                with self.store.transaction() as conn:
                    # Claimed, not yet 'sending': each row (or chunk) becomes 'sending' only
                    # right before its own hand-over.
                    claimed = ledger.claim(
                        conn, self.edition, self.worker,
                        min(self.transport.batch_size, cap - self._done), lease,
                        state=ledger.CLAIMED)
                    # A reader taken off the audience's lists since planning is not sent it.
                    admitted = self.audience.admit(conn, claimed)
                if not claimed:
                    if self.worker_mode and self._recover_peers(report):
                        continue
                    break
                claimed = admitted
                if not claimed:
                    continue
                if per_message:
                    self._send_one_by_one(claimed)
                else:
                    for chunk in self._chunks(claimed):
                        results, key = self._send(chunk)
                        tries = {row.id: row.attempts for row in chunk}
                        outcomes = [self._outcome(r, tries[r.id], key) for r in results]
                        with self.store.transaction() as conn:
                            self._apply(conn, outcomes, results, chunk)
                        self._count(results)
                        if report.paused:
                            break
        finally:
            if self._lanes is not None:
                self._lanes.shutdown(wait=True)
                self._lanes = None
            if self._shared is not None:
                self._shared[0].close()
                self._shared = None
            with self.store.transaction() as conn:
                ledger.release(conn, self.edition, self.worker)
                # A key that lapsed meanwhile shows now ('unknown'), not at the next run.
                ledger.expire_keys(conn, self.edition, utcnow())
                report.ledger = ledger.ledger_counts(conn, self.edition)
                report.waiting, report.waiting_until = ledger.retry_window(conn, self.edition)
        return report

    def _recover_peers(self, report: SendReport) -> bool:
        """Settle rows of dead peers (gone from this host, or past their lease); True if some
        went back to the queue."""
        with self.store.transaction() as conn:
            ledger.lock_edition(conn, self.edition)
            settled = ledger.recover(conn, self.edition, is_gone)
        if not settled:
            return False
        log.warning("rows of a stopped worker settled", extra=settled)
        for key, n in settled.items():
            report.recovered[key] = report.recovered.get(key, 0) + n
        requeued = settled.get("released", 0) + settled.get(ledger.RETRY, 0)
        self._total += requeued  # for the progress bar
        return requeued > 0

    def _send_one_by_one(self, claimed: list[ledger.Claimed]) -> None:
        """Lanes in parallel, one per connection; each row is marked 'sending' in the same
        transaction that records the previous row's answer, so a crash leaves at most one
        uncertain row per lane."""
        n = self.transport.concurrency
        if self._lanes is None:
            # Long-lived lane threads: a transport keeps one connection per thread.
            self._lanes = ThreadPoolExecutor(max_workers=n, thread_name_prefix="lane")
            if self.store.dialect == "sqlite":
                conn = self.store.engine.connect()
                self._shared = (conn, ledger.LaneLedger(conn))
        for done in self._lanes.map(self._lane, [claimed[i::n] for i in range(n)]):
            del done

    @contextlib.contextmanager
    def _lane_connection(self) -> Iterator[tuple[Connection, ledger.LaneLedger]]:
        """The connection a lane records on: its own on PostgreSQL; on SQLite one shared by
        all lanes, used under the writing lock (SQLite writes one at a time anyway, and a
        connection of its own would find its page cache stale after every other lane's
        commit)."""
        if self._shared is not None:
            yield self._shared
            return
        with self.store.engine.connect() as conn:
            yield conn, ledger.LaneLedger(conn)

    def _lane(self, rows: list[ledger.Claimed]) -> None:
        pending: list[tuple[ledger.Outcome, Result, ledger.Claimed]] = []
        built: dict[int, Outgoing] = {}  # messages made ahead of their rows being marked
        step = self.commit_every
        # One connection for the whole lane (or all lanes): a pool check-out per message
        # costs more than the two UPDATEs it carries.
        with self._lane_connection() as (conn, hot):
            try:
                for start in range(0, len(rows), step):
                    if self.stop.is_set() or self._report.paused:
                        break
                    group = rows[start:start + step]
                    # Each message is made before its row is marked: a row never waits in
                    # 'sending' for a message that could not be made.
                    for row in group:
                        if row.id not in built:
                            built[row.id] = self._outgoing(row)
                    # Paced before the hand-over, not after: an unsubscribe answered while
                    # this lane waits for its turn is seen by the check below.
                    self.bucket.acquire(len(group))
                    # The previous group's answers and this group's hand-over commit together.
                    with self._writing, hot.transaction():
                        self._apply_pending(conn, pending, hot)
                        self._apply_kept_unsubscribes(conn)
                        mine = [row for row in group if hot.mark_sending(row.id, self.worker)]
                        if len(mine) < len(group):
                            self._skip_suppressed(conn, group, mine)
                    pending = []
                    # A group handed over is sent whole, even when a stop arrives meanwhile:
                    # its rows are 'sending' and must end with an answer.
                    for k, row in enumerate(mine):
                        current = built.pop(row.id)
                        # The row this lane sends next, so the transport can prepare it.
                        after = (mine[k + 1] if k + 1 < len(mine) else
                                 rows[start + step] if start + step < len(rows) else None)
                        then = self._next_message(after, built)
                        result = self._hand_over([current], then=then)[0]
                        pending.append((self._outcome(result, row.attempts), result, row))
                        self._count([result])
            finally:
                if pending:
                    with self._writing, hot.transaction():
                        self._apply_pending(conn, pending, hot)

    def _next_message(self, row: ledger.Claimed | None,
                      built: dict[int, Outgoing]) -> Outgoing | None:
        """The message a lane sends next, made now (before its row is marked) so that the
        transport can prepare it; None at the end, on a stop, or if it cannot be made."""
        if row is None or self.stop.is_set() or self._report.paused:
            return None
        if row.id not in built:
            try:
                built[row.id] = self._outgoing(row)
            except Exception:
                # The current row is 'sending' already and must go regardless; this one
                # fails again at its own turn, before its row is marked.
                return None
        return built[row.id]

    def _count(self, results: Sequence[Result]) -> None:
        with self._lock:
            for result in results:
                ok = result.status in (Status.SENT, Status.QUEUED)
                self._failures_in_a_row = 0 if ok else self._failures_in_a_row + 1
                if self._failures_in_a_row >= self.error_budget and not self._report.paused:
                    last = result.error or result.status
                    self._report.paused = (f"{self._failures_in_a_row} failures in a row "
                                           f"(last: {last}); the provider may be down")
                    log.error("send paused", extra={"reason": self._report.paused})
            self._done += len(results)
            if self.progress:
                self.progress(self._done, max(self._done, self._total))

    def _chunks(self, claimed: list[ledger.Claimed]) -> list[list[ledger.Claimed]]:
        """Rows to hand over together: a keyed batch as it was, else about a second's worth."""
        # Rows of two keys, or keyed and not, never share a hand-over: each keyed batch goes
        # as it was, under its own key.
        keyed: dict[str, list[ledger.Claimed]] = {}
        plain: list[ledger.Claimed] = []
        for row in claimed:
            (keyed.setdefault(row.batch_key, []) if row.batch_key else plain).append(row)
        step = max(1, len(plain) if self.rate <= 0 else int(self.rate))
        return [*keyed.values(), *(plain[i:i + step] for i in range(0, len(plain), step))]

    def _outgoing(self, row: ledger.Claimed) -> Outgoing:
        message = self.newsletter.personalise(row.contact,
                                              self.audience.lists_of(row.contact.email), row.id)
        return Outgoing(id=row.id, envelope_to=row.contact.email, message=message,
                        edition=self.edition)

    def _send(self, chunk: Sequence[ledger.Claimed]) -> tuple[list[Result], _Key | None]:
        """Hand a chunk over; its results, and the idempotency key it went under."""
        outgoing = [self._outgoing(row) for row in chunk]
        key = None
        used: _Key | None = None
        ids = [r.id for r in chunk]
        self.bucket.acquire(len(chunk))
        with self.store.transaction() as conn:
            self._apply_kept_unsubscribes(conn)
            mine = ledger.hand_over(conn, ids, self.worker)
            if self.transport.idempotent and mine:
                # Record the key with the hand-over: after a crash the same batch goes again
                # under the same key, and the provider drops what it already took.
                key = chunk[0].batch_key or str(uuid.uuid4())
                expires = chunk[0].key_expires
                if chunk[0].batch_key is None or expires is None:
                    # Recorded is the last moment a resend may *start*: with its retries it
                    # must end within the key's validity.
                    longest = timedelta(seconds=getattr(self.transport, "longest_call_s", 0.0))
                    expires = utcnow() + IDEMPOTENCY_VALIDITY - longest
                    ledger.set_batch_key(conn, sorted(mine), key, expires)
                used = _Key(expires, fresh=chunk[0].batch_key is None)
            if len(mine) < len(ids):
                self._skip_suppressed(conn, chunk, [r for r in chunk if r.id in mine])
            # A resend must carry its batch as it went: without some of its rows a part may
            # go under another key (delivered twice) or under one it never had (dropped).
            changed = (chunk[0].batch_key is not None and bool(mine)
                       and ledger.batch_lost_rows(conn, chunk[0].batch_key) > 0)
        if len(mine) < len(ids):
            outgoing = [o for o in outgoing if o.id in mine]
        if changed:
            log.warning("keyed batch changed before its resend: its rows are unknown",
                        extra={"rows": len(outgoing)})
            return [Result(o.id, Status.UNKNOWN, error=ledger.BATCH_CHANGED)
                    for o in outgoing], used
        return (self._hand_over(outgoing, key) if outgoing else []), used

    def _apply_kept_unsubscribes(self, conn: Connection) -> None:
        """Unsubscribes the public app answered but could not store at once (the store was
        held) are stored now, before the hand-over's check: those readers are skipped."""
        kept = self.store.pending
        if kept is not None and kept.waiting():
            kept.apply(conn)

    def _skip_suppressed(self, conn: Connection, rows: Sequence[ledger.Claimed],
                         mine: Sequence[ledger.Claimed]) -> None:
        """Rows not handed over: 'skipped' if their reader was suppressed since the claim
        (an unsubscribe answered meanwhile is honoured), else taken back by another sender."""
        handed = {row.id for row in mine}
        left = [row.id for row in rows if row.id not in handed]
        skipped = ledger.skip_suppressed_claimed(conn, left, self.worker)
        with self._lock:
            self._report.skipped_suppressed += skipped
        if skipped:
            log.info("suppressed after the claim: skipped, not sent", extra={"skipped": skipped})
        if len(left) > skipped:
            # A row whose lease ran out went to another sender: never send it from here.
            log.warning("claimed rows taken back before sending; skipped",
                        extra={"skipped": len(left) - skipped})

    def _hand_over(self, outgoing: Sequence[Outgoing], key: str | None = None,
                   then: Outgoing | None = None) -> list[Result]:
        try:
            return self.transport.send(outgoing, key, then=then)
        except AuthError as exc:
            # Refused before anything was taken: stop, and keep these for the next run, which
            # this try does not count against (it said nothing about the messages).
            with self._lock:
                self._report.paused = (f"{exc}; the messages wait: run the same command with "
                                       "--now once it is fixed")
                self._credentials_refused = True
            status = getattr(exc, "status", None)
            return [Result(o.id, Status.REFUSED, error=str(exc),
                           cause=str(status) if status else "credentials refused",
                           counts_attempt=False) for o in outgoing]
        except Exception as exc:  # the transport could not answer per message
            log.error("transport error", extra={"error": str(exc)})
            status = Status.RETRY if key else Status.UNKNOWN
            return [Result(o.id, status, error=f"transport error: {exc}") for o in outgoing]

    def _outcome(self, result: Result, attempts_before: int,
                 key: _Key | None = None) -> ledger.Outcome:
        attempts = attempts_before + (1 if result.counts_attempt else 0)
        state = _STATE_OF[result.status]
        retry_at = None
        # A refusal took nothing: a key made for this try is given up, and the batch goes
        # again under a new one. A key that went out before (a resend of a batch that may
        # have been taken) is kept whatever this try's answer: the first may count.
        clear_key = result.status == Status.REFUSED and key is not None and key.fresh
        if state == ledger.RETRY:
            if attempts >= MAX_ATTEMPTS:
                # A batch that may have been taken is not known to have failed.
                state = ledger.UNKNOWN if key is not None and not clear_key else ledger.FAILED
            else:
                retry_at = utcnow() + self.retry_delay
                if key is not None and not clear_key:
                    # Resent under its key, so due while the key may still be resent (its
                    # expiry is already the last moment a resend may start).
                    retry_at = min(retry_at, key.expires)
        with self._lock:
            self._report.outcomes[state] += 1
            if result.error:
                self._report.errors[result.error[:120]] += 1
            if result.cause:
                self._last_cause = result.cause
        return ledger.Outcome(
            id=result.id, state=state, provider_status=result.status.value,
            provider_message_id=result.provider_id, error=result.error, retry_at=retry_at,
            cause=result.cause, clear_key=clear_key, refund=not result.counts_attempt)

    def _apply_pending(
        self, conn: Connection, pending: list[tuple[ledger.Outcome, Result, ledger.Claimed]],
        hot: ledger.LaneLedger,
    ) -> None:
        if pending:
            _check_recorded(hot.record([p[0] for p in pending]), len(pending))
            self._suppress(conn, [p[1] for p in pending], [p[2] for p in pending])

    def _apply(self, conn: Connection, outcomes: Sequence[ledger.Outcome],
               results: Sequence[Result], rows: Sequence[ledger.Claimed]) -> None:
        _check_recorded(ledger.record(conn, outcomes), len(outcomes))
        self._suppress(conn, results, rows)

    def _suppress(self, conn: Connection, results: Sequence[Result],
                  rows: Sequence[ledger.Claimed]) -> None:
        """A hard bounce or an invalid recipient is not tried again, in any edition."""
        emails = {row.id: row.contact.email for row in rows}
        for result in results:
            if result.suppress:
                add_suppression(conn, emails[result.id], result.suppress, "bounce")


@dataclass(frozen=True)
class _Key:
    """The idempotency key a batch went under: until when it may be resent, and whether it
    was made for this try (no earlier try may have been taken under it)."""

    expires: datetime
    fresh: bool


def _check_recorded(written: int, answers: int) -> None:
    """Say so when answers found their rows settled by another sender (lease run out)."""
    if written < answers:
        log.warning("answers not recorded: their rows were settled by another sender",
                    extra={"not_recorded": answers - written})

"""From a classified report to events: which ledger row and reader a report is about.

Anyone can write a report naming any addresses, so a report counts only for a reader it
ties to a message we sent them, and for one reader at most: the VERP token of its return
path (it names the row, whatever the report quotes), else the signed unsubscribe link of
the message it returns, else (VERP off only: anyone who knows an address and an edition can
compute it) the returned Message-ID, ours for one edition and reader. A report tied to no
one is 'unverified': nothing is recorded, a person looks at it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from clubjapon_ops.bounces.classify import (
    BLOCKED,
    COMPLAINT,
    DELAYED,
    HARD,
    OPT_OUT,
    SOFT,
    Failure,
    Verdict,
)
from clubjapon_ops.delivery.message import message_id
from clubjapon_ops.delivery.tokens import TokenData, TokenSigner, VerpSigner, verp_token
from clubjapon_ops.events import types as t
from clubjapon_ops.events.types import Event
from clubjapon_ops.store.bounces import LedgerRow, known_emails, rows_by_email, rows_by_id

PROVIDER = "mailbox"  # events.provider of what the bounce mailbox reports
# A delay warning is recorded as 'deferred': it never suppresses, nor breaks a soft streak.
EVENT_TYPES = {HARD: t.HARD_BOUNCE, SOFT: t.SOFT_BOUNCE, DELAYED: t.DEFERRED,
               BLOCKED: t.BLOCKED, COMPLAINT: t.COMPLAINT, OPT_OUT: t.UNSUBSCRIBE}
VERP, MESSAGE_ID = "verp", "message-id"
UNSUBSCRIBE_TOKEN = "unsubscribe-token"


@dataclass(frozen=True)
class Report:
    """One message of the mailbox, classified, with where it came from."""

    uid: int
    raw_id: str  # the report's Message-ID, else a hash of its bytes: the same on every run
    verdict: Verdict
    received: datetime


@dataclass(frozen=True)
class Matched:
    """The events of one report, how each was matched, and the addresses the store lacks."""

    events: tuple[Event, ...]
    matched_by: tuple[str, ...]
    unknown: tuple[str, ...]
    # A report that ties no reader to a message we sent: anyone can write one.
    unverified: bool = False


def _through_row(data: TokenData | None, by_id: dict[int, LedgerRow]) -> TokenData | None:
    """A row token as the edition and address its ledger row holds; others as they are."""
    if data is None or data.row is None:
        return data
    row = by_id.get(data.row)
    return None if row is None else TokenData(row.edition, row.email, data.lang, row=row.id)


def _failure_of(verdict: Verdict, email: str) -> Failure:
    """The report's (first) failure, about the reader our signature names."""
    first = verdict.failures[0] if verdict.failures else None
    return Failure(email, first.kind if first else verdict.kind,
                   first.detail if first else verdict.reason)


class Matcher:
    """Matches reports to ledger rows, with the key of VERP tokens and our mail domain."""

    def __init__(self, signer: VerpSigner | None, bounce_address: str, domain: str,
                 *, require_verp: bool = False, tokens: TokenSigner | None = None) -> None:
        self.signer = signer
        self.tokens = tokens
        self.bounce_address = bounce_address
        self.domain = domain
        # Our Message-IDs are a hash of the edition and the address, both public: a forged
        # DSN "returning" one can name any reader. With VERP on, every real DSN comes back to
        # a signed return path and a Message-ID ties no one; VERP off, it ties one reader.
        self.require_verp = require_verp and signer is not None

    def _verp_row(self, verdict: Verdict) -> int | None:
        if self.signer is None:
            return None
        for address in verdict.envelope:
            token = verp_token(address, self.bounce_address)
            row = self.signer.read(token) if token else None
            if row is not None:
                return row
        return None

    def match(self, conn: Connection, reports: Sequence[Report]) -> list[Matched]:
        """The events of every report of one batch, in a few queries."""
        verp_ids = {r.uid: self._verp_row(r.verdict) for r in reports}
        signed = {r.uid: self._signed_reader(r.verdict) for r in reports}
        by_id = rows_by_id(conn, [i for i in verp_ids.values() if i is not None]
                           + [d.row for d in signed.values() if d and d.row is not None])
        # A token that names a ledger row names its reader through the row (a row that is
        # not there names nobody).
        signed = {uid: _through_row(d, by_id) for uid, d in signed.items()}
        emails = {f.address for r in reports for f in r.verdict.failures}
        emails |= {d.email for d in signed.values() if d is not None}
        by_email = rows_by_email(conn, emails)
        known = known_emails(conn, emails | {row.email for row in by_id.values()})
        return [self._one(r, by_id.get(verp_ids[r.uid] or -1), signed[r.uid], by_email, known)
                for r in reports]

    def _one(self, report: Report, verp_row: LedgerRow | None, signed: TokenData | None,
             by_email: dict[str, list[LedgerRow]], known: set[str]) -> Matched:
        verdict = report.verdict
        if verdict.kind in (COMPLAINT, OPT_OUT):
            return self._feedback(report, verp_row, signed, by_email, known)
        if verp_row is not None:
            # The token names the message: its reader, whatever address the report gives.
            tied: tuple[Failure, LedgerRow | None, str] | None = (
                _failure_of(verdict, verp_row.email), verp_row, VERP)
        else:
            tied = self._tied(verdict, signed, by_email)
        if tied is None:
            # The addresses a report lists are anyone's words (the review's forged DSN named
            # 44 readers): none is recorded, the report waits for a person.
            return Matched((), (), (), unverified=True)
        failure, row, how = tied
        event = self._event(report, failure, row, how)
        return Matched((event,), (how,), () if failure.address in known
                       else (failure.address,))

    def _tied(self, verdict: Verdict, signed: TokenData | None,
              by_email: dict[str, list[LedgerRow]]) -> tuple[Failure, LedgerRow | None,
                                                                   str] | None:
        """The one reader a report without a VERP token ties to a message we sent them."""
        if signed is not None:
            failure = next((f for f in verdict.failures if f.address == signed.email),
                           None) or _failure_of(verdict, signed.email)
            row = next((r for r in by_email.get(signed.email, [])
                        if r.edition == signed.edition), None)
            return failure, row, UNSUBSCRIBE_TOKEN
        wanted = (verdict.returned_message_id or "").strip().lower()
        if self.require_verp or not wanted:
            return None
        for failure in verdict.failures:
            for row in by_email.get(failure.address, []):
                if message_id(row.edition, failure.address, self.domain).lower() == wanted:
                    return failure, row, MESSAGE_ID
        return None

    def _feedback(self, report: Report, verp_row: LedgerRow | None, signed: TokenData | None,
                  by_email: dict[str, list[LedgerRow]], known: set[str]) -> Matched:
        """A complaint or opt-out, believed only for the reader our own signature names.

        Anyone can write a feedback report naming any number of addresses ("Original-Rcpt-
        To"), and a complaint suppresses at once: only the returned message's VERP return
        path or its signed unsubscribe link (every message we send carries one) names who
        complained. A report without either waits in the folder ('unverified').
        """
        row: LedgerRow | None = verp_row
        if verp_row is not None:
            email, how = verp_row.email, VERP
        elif signed is not None:
            email, how = signed.email, UNSUBSCRIBE_TOKEN
            row = next((r for r in by_email.get(email, []) if r.edition == signed.edition),
                       None)
        else:
            return Matched((), (), (), unverified=True)
        event = self._event(report, _failure_of(report.verdict, email), row, how)
        return Matched((event,), (how,), () if email in known else (email,))

    def _signed_reader(self, verdict: Verdict) -> TokenData | None:
        """The reader the returned message's own unsubscribe token names (a test copy's
        token names nobody's wish), or None."""
        if self.tokens is None:
            return None
        for token in verdict.returned_tokens:
            data = self.tokens.read(token)
            if data is not None and not data.test:
                return data
        return None

    def _event(self, report: Report, failure: Failure, row: LedgerRow | None,
               how: str) -> Event:
        verdict = report.verdict
        kind = EVENT_TYPES[failure.kind]
        key = hashlib.sha256(
            f"{report.raw_id}\x00{failure.address}\x00{kind}".encode()).hexdigest()
        return Event(
            provider=PROVIDER,
            event_key="sha256:" + key,
            email=failure.address,
            type=kind,
            provider_event=("arf-" if failure.kind in (COMPLAINT, OPT_OUT) else "dsn-")
            + failure.kind.replace("_", "-"),
            # The report's own Date can say anything (2099): never later than its arrival.
            occurred_at=min(verdict.date, report.received) if verdict.date else report.received,
            message_id=verdict.returned_message_id,
            reason=(failure.detail or verdict.reason or "")[:500] or None,
            raw={"uid": report.uid, "report": report.raw_id, "matched_by": how,
                 **verdict.headers},
            delivery_hint=row.id if row is not None else None,
        )

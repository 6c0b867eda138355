"""The bounce mailbox against a real IMAP server (dovecot on 127.0.0.1), loaded with real
reports: what is recorded, suppressed, filed, left in place and reported."""

from __future__ import annotations

import ssl
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import select

from clubjapon_ops.bounces.mailbox import PROCESSED, REVIEW, Mailbox, imap_config
from clubjapon_ops.delivery.message import message_id
from clubjapon_ops.delivery.tokens import TokenSigner, VerpSigner, verp_address
from clubjapon_ops.errors import AuthError, ConfigError, StopRun
from clubjapon_ops.jobs.bounces import read_bounces
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.schema import events, suppressions
from tests.bounces.conftest import (
    BOUNCES,
    EXPECTED,
    SECRET,
    add_ledger_row,
    bounce_settings,
    corpus,
    forged_dsn,
    ours,
)
from tests.dovecot import Dovecot, running_dovecot

JUNK = [
    b"this is not an email at all\r\n\xff\xfe\xfd garbage",
    corpus("sisimai/lhost-postfix-04.eml")[:300],  # a DSN cut short: only some headers
]
EDITION = "2025-11-04-lille"


def _events(store: Store) -> list[Any]:
    with store.transaction() as conn:
        return list(conn.execute(select(events).order_by(events.c.id)).all())


def _suppressed(store: Store) -> dict[str, str]:
    with store.transaction() as conn:
        return {r.email: r.source for r in conn.execute(select(suppressions))}


def test_real_reports_are_recorded_filed_and_summed_up(
        imap_settings: Settings, store: Store, dovecot: Dovecot, mailbox_user: str) -> None:
    known_hard = add_ledger_row(store, EDITION, "kijitora@example.co.jp")
    known_delayed = add_ledger_row(store, EDITION, "userx@example.cz")
    known_soft = add_ledger_row(store, EDITION, "kijitora@example.edu")
    add_ledger_row(store, EDITION, "this-local-part-does-not-exist-on-yahoo@yahoo.com")
    add_ledger_row(store, EDITION, "userunknown@bouncehammer.jp")
    # Three reports return our message to one reader (our Message-ID); the corpus's others
    # return messages we did not send, whatever addresses they name.
    tied = {"sisimai/lhost-postfix-04.eml": "kijitora@example.co.jp",
            "sisimai/lhost-exchange2007-02.eml": "kijitora@example.edu",
            "flufl/dsn_05.eml": "userx@example.cz"}
    dovecot.append(mailbox_user, [ours(corpus(n), EDITION, tied[n]) if n in tied else corpus(n)
                                  for n in sorted(EXPECTED)] + JUNK)

    report = read_bounces(imap_settings, store)

    kinds = Counter(kind for kind, _ in EXPECTED.values())
    assert report.read == len(EXPECTED) + len(JUNK)
    assert (report.hard, report.soft, report.delayed, report.blocked) == (1, 1, 1, 0)
    # Every other report ties no reader to a message we sent: unverified, nothing recorded
    # (the corpus's feedback reports too: see the complaint test after this one).
    assert report.complaints == report.opt_outs == 0
    reports = sum(kinds[k] for k in ("hard", "soft", "delayed", "complaint", "opt_out"))
    assert len(report.unverified) == reports - len(tied)
    assert report.auto_replies == kinds["auto_reply"] == 6
    assert report.other_reports == 1  # a DMARC failure report is no complaint
    assert len(report.unclassified) == 1 + len(JUNK)
    # What is left for a person moved to Review: the folder read is empty.
    left = len(report.unclassified) + len(report.unverified)
    assert dovecot.count(mailbox_user, "INBOX") == 0
    assert dovecot.count(mailbox_user, REVIEW) == left
    assert dovecot.count(mailbox_user, PROCESSED) == report.read - left
    assert report.filed == report.read - left and report.status == "partial"

    recorded = _events(store)
    assert len(recorded) == report.events_new == len(tied)
    rows = {(e.email, e.type): e for e in recorded}
    assert rows[("kijitora@example.co.jp", "hard_bounce")].delivery_id == known_hard
    assert rows[("kijitora@example.co.jp", "hard_bounce")].reason.startswith("5.1.1")
    assert rows[("kijitora@example.edu", "soft_bounce")].delivery_id == known_soft
    assert rows[("userx@example.cz", "deferred")].delivery_id == known_delayed
    assert {e.raw["matched_by"] for e in recorded} == {"message-id"}
    # One hard bounce tied to its reader: suppressed; no address a report merely names.
    assert _suppressed(store) == {"kijitora@example.co.jp": "bounce"}
    assert report.unknown == []
    assert report.summary().startswith(f"read {report.read}, hard 1, soft 1")
    assert f"unclassified 3 (moved to {REVIEW})" in report.summary()

    # Junk and unverified reports are not parsed again, run after run (the review: 23 s of
    # CPU every 15 minutes, forever).
    again = read_bounces(imap_settings, store)
    assert again.read == 0 and again.events_new == 0 and again.status == "success"
    assert len(_events(store)) == len(recorded)


@pytest.mark.parametrize(("name", "email", "suppressed"), [
    # Oracle Messaging Server gave up: 4.2.2 over quota, a soft bounce.
    ("sisimai/lhost-messagingserver-12.eml", "pseudo-local-part-kijitora-neko-nyaan@mac.com",
     True),
    # A delay warning (Action: delayed): the server still tries; three never suppress.
    ("flufl/dsn_05.eml", "userx@example.cz", False),
], ids=["soft", "delayed"])
def test_soft_bounces_suppress_after_the_limit_in_a_row_delays_never(
        imap_settings: Settings, store: Store, dovecot: Dovecot, mailbox_user: str,
        name: str, email: str, suppressed: bool) -> None:
    raw = corpus(name)
    lines = raw.splitlines()
    own = next(line for line in lines if line.lower().startswith(b"message-id:"))
    date = next(line for line in lines if line.startswith(b"Date:"))
    copies = []
    for n, edition in enumerate(("2025-09-01-lille", "2025-10-01-lille", EDITION)):
        add_ledger_row(store, edition, email, days_ago=30 - n * 10)
        # Three reports, one per edition, each written a day after its send.
        written = format_datetime(datetime.now(UTC) - timedelta(days=29 - n * 10))
        copies.append(ours(raw, edition, email)
                      .replace(own, f"Message-ID: <copy{n}@example.net>".encode(), 1)
                      .replace(date, f"Date: {written}".encode(), 1))
    dovecot.append(mailbox_user, copies[:2])
    read_bounces(imap_settings, store)
    assert email not in _suppressed(store)
    dovecot.append(mailbox_user, copies[2:])
    read_bounces(imap_settings, store)
    assert (_suppressed(store).get(email) == "bounce") is suppressed
    assert len(_events(store)) == 3


def test_an_edition_that_reached_the_reader_breaks_the_soft_bounce_streak(
        imap_settings: Settings, store: Store, dovecot: Dovecot, mailbox_user: str) -> None:
    # Over SMTP nothing says "delivered": soft bounces in September, November and December
    # counted as three in a row though October's edition reached the reader (the review).
    name, email = "sisimai/lhost-messagingserver-12.eml", (
        "pseudo-local-part-kijitora-neko-nyaan@mac.com")
    raw = corpus(name)
    lines = raw.splitlines()
    own = next(line for line in lines if line.lower().startswith(b"message-id:"))
    date = next(line for line in lines if line.startswith(b"Date:"))
    editions = {"2025-09-01-lille": 90, "2025-10-01-lille": 60, "2025-11-01-lille": 30,
                EDITION: 10}
    copies = []
    for n, (edition, days) in enumerate(editions.items()):
        add_ledger_row(store, edition, email, days_ago=days)
        if edition == "2025-10-01-lille":
            continue  # no report: it reached the reader
        written = format_datetime(datetime.now(UTC) - timedelta(days=days - 1))
        copies.append(ours(raw, edition, email)
                      .replace(own, f"Message-ID: <streak{n}@example.net>".encode(), 1)
                      .replace(date, f"Date: {written}".encode(), 1))
    dovecot.append(mailbox_user, copies)
    report = read_bounces(imap_settings, store)
    assert report.soft == 3
    assert email not in _suppressed(store)  # two in a row since October, under the limit


def _with_our_link(raw: bytes, after: bytes, token: str) -> bytes:
    """A real report whose returned message carries our List-Unsubscribe (signed link)."""
    eol = b"\r\n" if b"\r\n" in raw else b"\n"
    link = f"List-Unsubscribe: <https://club.example.org/unsubscribe/{token}>".encode()
    assert raw.count(after) == 1
    return raw.replace(after, after + link + eol)


@pytest.mark.parametrize("sent", ["today", "before opaque tokens"])
def test_a_complaint_counts_only_for_the_reader_our_signed_link_names(
        imap_settings: Settings, store: Store, dovecot: Dovecot, mailbox_user: str,
        sent: str) -> None:
    # A feedback report can name any number of addresses (the review suppressed 3,000 with
    # one forged report): only the returned message's signed unsubscribe link is believed.
    tokens = TokenSigner(SECRET)
    reader = "neko@example.jp"
    row = add_ledger_row(store, EDITION, reader)
    named = [f"{n}@example.com" for n in ("kijitora", "sironeko", "mikeneko")]
    for email in named:
        add_ledger_row(store, EDITION, email)
    raw = corpus("sisimai/arf-16.eml")  # Return Path's FBL report, naming seven recipients
    # Today a link names the ledger row; links sent before named the address.
    ours, test_token = ((tokens.for_row(row, "fr"), tokens.for_test_copy("fr")) if sent == "today"
                        else (tokens.make_legacy(EDITION, reader, "fr"),
                              tokens.make_legacy(EDITION, reader, "fr", test=True)))
    signed = _with_our_link(raw, b"From: Neko <neko@example.jp>" + (
        b"\r\n" if b"\r\n" in raw else b"\n"), ours)
    forged = _with_our_link(raw, b"From: Neko <neko@example.jp>" + (
        b"\r\n" if b"\r\n" in raw else b"\n"), "ZmFrZQ.AAAAAAAAAAAAAAAAAAAAAA")
    forged = forged.replace(b"<20150429233445.0000000000@fbl-02.r.returnpath.example.net>",
                            b"<forged-1@example.net>")
    test_copy = _with_our_link(raw, b"From: Neko <neko@example.jp>" + (
        b"\r\n" if b"\r\n" in raw else b"\n"), test_token)
    test_copy = test_copy.replace(
        b"<20150429233445.0000000000@fbl-02.r.returnpath.example.net>", b"<forged-2@example.net>")
    dovecot.append(mailbox_user, [signed, forged, test_copy])

    report = read_bounces(imap_settings, store)

    assert report.complaints == 1 and len(report.unverified) == 2
    got = [(e.email, e.type, e.delivery_id, e.raw["matched_by"]) for e in _events(store)]
    assert got == [(reader, "complaint", row, "unsubscribe-token")]
    assert set(_suppressed(store)) == {reader}  # none of the seven addresses the report names


def test_a_report_counts_for_one_reader_tied_by_verp_token_or_message_id(
        imap_settings: Settings, store: Store, dovecot: Dovecot, mailbox_user: str) -> None:
    email = "kijitora@example.co.jp"
    older = add_ledger_row(store, "2025-10-01-lille", email, days_ago=30)
    add_ledger_row(store, EDITION, email, days_ago=2)
    forwarded = add_ledger_row(store, EDITION, "reader@example.net")
    raw = corpus("sisimai/lhost-postfix-04.eml")
    # The same real DSN three ways: as it is (it names our reader but returns a message we
    # did not send: it ties no one) ...
    by_recipient = raw
    # ... returning our Message-ID of the older edition (matched by it) ...
    by_message_id = (ours(raw, "2025-10-01-lille", email)
                     .replace(b"<20100524100650.7FE851AC10D@mv-osn-hcb007.ocn.ad.jp>",
                              b"<dsn-2@mv-osn-hcb007.ocn.ad.jp>"))
    # ... and sent to the VERP return path of another row (a reader whose mail was
    # forwarded to the address that bounced): the token wins.
    verp = verp_address(BOUNCES, VerpSigner(SECRET).make(forwarded))
    by_verp = (raw.replace(b"To: shironeko@example.ne.jp", f"To: {verp}".encode())
               .replace(b"<20100524100650.7FE851AC10D@mv-osn-hcb007.ocn.ad.jp>",
                        b"<dsn-3@mv-osn-hcb007.ocn.ad.jp>"))
    dovecot.append(mailbox_user, [by_recipient, by_message_id, by_verp])

    report = read_bounces(imap_settings, store)

    assert report.hard == 2 and len(report.unverified) == 1 and not report.unknown
    got = [(e.email, e.delivery_id, e.raw["matched_by"]) for e in _events(store)]
    assert got == [(email, older, "message-id"), ("reader@example.net", forwarded, "verp")]


@pytest.mark.parametrize("verp", ["false", "true"])
def test_forged_dsns_cannot_empty_the_list(
        root: Any, store: Store, dovecot: Dovecot, mailbox_user: str, verp: str,
        caplog: pytest.LogCaptureFixture) -> None:
    # The review, VERP off (the default then): three forged DSNs, one naming 44 readers and
    # no Message-ID, suppressed 46 of 50 contacts, and nothing said VERP was off.
    settings = bounce_settings(root, dovecot, mailbox_user, CLUBJAPON_BOUNCE_VERP=verp)
    readers = [f"reader{n:02d}@example.com" for n in range(50)]
    for reader in readers:
        add_ledger_row(store, EDITION, reader)
    dovecot.append(mailbox_user, [
        forged_dsn(1, readers[:44]),
        # Our Message-ID of reader 44's message (a hash of public words), naming six.
        forged_dsn(2, readers[44:],
                   f"Message-ID: {message_id(EDITION, readers[44], 'example.org')}"),
        forged_dsn(3, readers[45:46], "Message-ID: <someone-else@example.net>"),
    ])

    with caplog.at_level("WARNING", logger="clubjapon_ops.jobs.bounces"):
        report = read_bounces(settings, store)

    suppressed = _suppressed(store)
    if verp == "false":
        # At most one reader per report, and only the one it ties to a message we sent.
        assert suppressed == {readers[44]: "bounce"}
        assert (report.hard, len(report.unverified)) == (1, 2)
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "CLUBJAPON_BOUNCE_VERP" in warnings[0]
    else:
        # VERP on: a Message-ID anyone can compute ties no one; nothing is suppressed.
        assert suppressed == {}
        assert (report.hard, len(report.unverified)) == (0, 3)
        assert "CLUBJAPON_BOUNCE_VERP" not in caplog.text
    assert dovecot.count(mailbox_user, REVIEW) == len(report.unverified)


def test_verp_is_on_by_default_with_a_bounce_address_of_its_own(root: Any) -> None:
    from clubjapon_ops.settings import load_settings

    assert load_settings(root, environ={"CLUBJAPON_BOUNCE_ADDRESS": BOUNCES}).bounce_verp
    assert not load_settings(root, environ={}).bounce_verp
    assert not load_settings(root, environ={"CLUBJAPON_BOUNCE_ADDRESS": BOUNCES,
                                            "CLUBJAPON_BOUNCE_VERP": "false"}).bounce_verp


def test_with_verp_on_only_a_signed_return_path_is_believed(
        root: Any, store: Store, dovecot: Dovecot, mailbox_user: str) -> None:
    # Our Message-IDs hash the edition and the address, both public: anyone could write a
    # DSN "returning" one, or naming a reader, and have that reader suppressed. With VERP on,
    # a real DSN comes back to the signed return path; the rest wait for a person.
    settings = bounce_settings(root, dovecot, mailbox_user, CLUBJAPON_BOUNCE_VERP="true")
    victim = "kijitora@example.co.jp"
    add_ledger_row(store, EDITION, victim, days_ago=2)
    reader = add_ledger_row(store, EDITION, "reader@example.net")
    raw = corpus("sisimai/lhost-postfix-04.eml")
    forged = raw.replace(b"<A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp>",
                         message_id(EDITION, victim, "example.org").encode())
    forged_token = raw.replace(b"To: shironeko@example.ne.jp",
                               f"To: {BOUNCES.replace('@', '+aaaa-bbbbbbbbbbbbb@')}".encode())
    forged_token = forged_token.replace(
        b"<20100524100650.7FE851AC10D@mv-osn-hcb007.ocn.ad.jp>", b"<dsn-4@example.ne.jp>")
    signed = (raw.replace(b"To: shironeko@example.ne.jp",
                          f"To: {verp_address(BOUNCES, VerpSigner(SECRET).make(reader))}"
                          .encode())
              .replace(b"<20100524100650.7FE851AC10D@mv-osn-hcb007.ocn.ad.jp>",
                       b"<dsn-5@mv-osn-hcb007.ocn.ad.jp>"))
    dovecot.append(mailbox_user, [forged, forged_token, signed])

    report = read_bounces(settings, store)

    assert report.hard == 1 and len(report.unverified) == 2 and report.status == "partial"
    assert f"unverified 2 (moved to {REVIEW})" in report.summary()
    assert [(e.email, e.delivery_id, e.raw["matched_by"]) for e in _events(store)] == [
        ("reader@example.net", reader, "verp")]
    assert victim not in _suppressed(store)
    # The two it did not believe are in Review, for a person to look at.
    assert dovecot.count(mailbox_user, REVIEW) == 2


@pytest.mark.parametrize("diagnostic", [
    b"Status: 5.7.1\nDiagnostic-Code: smtp; 554 5.7.1 Service unavailable; Client host "
    b"blocked using zen.spamhaus.org",
    b"Status: 5.7.26\nDiagnostic-Code: smtp; 550 5.7.26 Unauthenticated email is not "
    b"accepted (DMARC)",
], ids=["blocklist", "dmarc"])
def test_a_policy_refusal_is_blocked_never_a_suppression(
        imap_settings: Settings, store: Store, dovecot: Dovecot, mailbox_user: str,
        diagnostic: bytes) -> None:
    # A day on a blocklist, or a DMARC mistake, refuses every reader of a provider: the
    # webhooks call that 'blocked', which never suppresses, and so does the mailbox now.
    email = "kijitora@example.co.jp"
    row = add_ledger_row(store, EDITION, email)
    raw = corpus("sisimai/lhost-postfix-04.eml")
    eol = b"\r\n" if b"\r\n" in raw else b"\n"
    start = raw.index(b"Status: 5.1.1")
    end = raw.index(eol, raw.index(b"Diagnostic-Code:", start))
    dovecot.append(mailbox_user, [ours(raw[:start] + diagnostic.replace(b"\n", eol) + raw[end:],
                                       EDITION, email)])

    report = read_bounces(imap_settings, store)

    assert (report.hard, report.blocked) == (0, 1)
    assert [(e.email, e.type, e.delivery_id) for e in _events(store)] == [
        (email, "blocked", row)]
    assert _suppressed(store) == {}


@pytest.mark.sqlite_only
def test_processed_goes_under_the_servers_namespace_prefix(root: Any, store: Store) -> None:
    # Courier- or Cyrus-style servers keep every folder under "INBOX.": a top-level
    # "Processed" cannot be created there, and every run failed after recording its events.
    with running_dovecot(prefix="INBOX.") as server:
        user = server.new_user()
        add_ledger_row(store, EDITION, "kijitora@example.co.jp")
        server.append(user, [ours(corpus("sisimai/lhost-postfix-04.eml"), EDITION,
                                  "kijitora@example.co.jp"),
                             corpus("sisimai/is-not-bounce-01.eml")])
        settings = bounce_settings(root, server, user)
        report = read_bounces(settings, store)
        assert report.hard == 1 and report.filed == 1
        assert server.count(user, "INBOX.Processed") == 1
        assert server.count(user, "INBOX.Review") == 1
        assert server.count(user, "INBOX") == 0


def test_a_report_dated_in_the_future_counts_from_when_it_arrived(
        imap_settings: Settings, store: Store, dovecot: Dovecot, mailbox_user: str) -> None:
    # Anyone can write any Date: one of 2099 would sort first in a soft-bounce streak for ever.
    add_ledger_row(store, EDITION, "kijitora@example.co.jp")
    raw = ours(corpus("sisimai/lhost-postfix-04.eml"), EDITION, "kijitora@example.co.jp")
    first_date = raw.index(b"Date: ")
    end = raw.index(b"\n", first_date)
    dovecot.append(mailbox_user, [raw[:first_date] + b"Date: Thu, 01 Jan 2099 00:00:00 +0000"
                                  + raw[end:].lstrip(b"\r")])
    read_bounces(imap_settings, store)
    (event,) = _events(store)
    occurred = event.occurred_at if event.occurred_at.tzinfo else event.occurred_at.replace(
        tzinfo=UTC)
    assert occurred <= datetime.now(UTC) + timedelta(minutes=1)


def test_undecodable_header_bytes_are_stored_on_every_engine(
        imap_settings: Settings, store: Store, dovecot: Dovecot, mailbox_user: str) -> None:
    add_ledger_row(store, EDITION, "kijitora@example.co.jp")
    raw = ours(corpus("sisimai/lhost-postfix-04.eml"), EDITION, "kijitora@example.co.jp")
    dovecot.append(mailbox_user, [raw.replace(b"Subject:", b"Subject: \x00\xff\xfe\xed\xa0\x80", 1)
                                  .replace(b"From:", b"From: \xc3(", 1)])
    report = read_bounces(imap_settings, store)
    assert report.hard == 1 and report.events_new == 1


def test_a_dry_run_classifies_and_changes_nothing(
        imap_settings: Settings, store: Store, dovecot: Dovecot, mailbox_user: str) -> None:
    names = ["sisimai/lhost-exim-02.eml", "sisimai/arf-02.eml", "sisimai/rfc3834-01.eml",
             "sisimai/is-not-bounce-01.eml"]
    add_ledger_row(store, EDITION, "kijitora@example.jp")
    dovecot.append(mailbox_user, [ours(corpus(names[0]), EDITION, "kijitora@example.jp")]
                   + [corpus(n) for n in names[1:]])
    seen: list[tuple[int, str]] = []
    report = read_bounces(imap_settings, store, dry_run=True,
                          on_message=lambda uid, verdict, _: seen.append((uid, verdict.kind)))
    assert [kind for _, kind in seen] == ["hard", "complaint", "auto_reply", "unclassified"]
    # arf-02 returns a message we did not send (no link of ours): unverified, even dry.
    assert (report.hard, report.complaints, report.auto_replies) == (1, 0, 1)
    assert len(report.unverified) == 1
    assert _events(store) == [] and _suppressed(store) == {}
    assert dovecot.count(mailbox_user, "INBOX") == 4
    assert dovecot.count(mailbox_user, PROCESSED) == dovecot.count(mailbox_user, REVIEW) == 0


def _qmail(store: Store) -> bytes:
    """A real qmail bounce returning our message to a reader of the ledger."""
    add_ledger_row(store, EDITION, "kijitora@example.org")
    return ours(corpus("sisimai/lhost-qmail-03.eml"), EDITION, "kijitora@example.org")


@pytest.mark.sqlite_only
@pytest.mark.parametrize("move", [True, False], ids=["move", "copy-delete-expunge"])
def test_messages_are_filed_with_or_without_move(
        imap_settings: Settings, store: Store, dovecot: Dovecot, mailbox_user: str,
        move: bool) -> None:
    dovecot.append(mailbox_user, [_qmail(store), corpus("sisimai/is-not-bounce-01.eml")])
    box = Mailbox(imap_config(imap_settings), use_move=move)
    try:
        report = read_bounces(imap_settings, store, mailbox=box)
    finally:
        box.close()
    assert report.filed == 1
    assert dovecot.count(mailbox_user, "INBOX") == 0
    assert dovecot.count(mailbox_user, PROCESSED) == dovecot.count(mailbox_user, REVIEW) == 1


@pytest.mark.sqlite_only
def test_delete_only_when_asked(root: Any, store: Store, dovecot: Dovecot,
                                mailbox_user: str) -> None:
    settings = bounce_settings(root, dovecot, mailbox_user, BOUNCE_IMAP_DELETE="true")
    dovecot.append(mailbox_user, [_qmail(store), corpus("sisimai/is-not-bounce-01.eml")])
    report = read_bounces(settings, store)
    assert report.filed == 1
    assert dovecot.count(mailbox_user, "INBOX") == 0
    assert dovecot.count(mailbox_user, PROCESSED) == 0
    assert dovecot.count(mailbox_user, REVIEW) == 1  # what it did not handle: never deleted


@pytest.mark.sqlite_only
def test_a_refused_login_names_the_user_setting_never_the_password(
        root: Any, dovecot: Dovecot, mailbox_user: str) -> None:
    settings = bounce_settings(root, dovecot, mailbox_user,
                               BOUNCE_IMAP_PASSWORD="wrong-password-987")
    with pytest.raises(AuthError) as caught:
        Mailbox(imap_config(settings))
    assert "BOUNCE_IMAP_USERNAME" in str(caught.value)
    assert mailbox_user in str(caught.value) and "wrong-password-987" not in str(caught.value)


def test_missing_settings_are_named(root: Any) -> None:
    from clubjapon_ops.settings import load_settings

    with pytest.raises(ConfigError, match="BOUNCE_IMAP_HOST, BOUNCE_IMAP_USERNAME"):
        imap_config(load_settings(root, environ={}))


@pytest.mark.sqlite_only
@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_reach_the_mailbox(root: Any, store: Store, dovecot: Dovecot,
                                            mailbox_user: str, security: str) -> None:
    port = dovecot.tls_port if security == "tls" else dovecot.port
    settings = bounce_settings(root, dovecot, mailbox_user, BOUNCE_IMAP_SECURITY=security,
                               BOUNCE_IMAP_PORT=str(port))
    dovecot.append(mailbox_user, [_qmail(store)])
    trusted = ssl.create_default_context(cafile=str(dovecot.cert))
    box = Mailbox(imap_config(settings), ssl_context=trusted)
    try:
        assert read_bounces(settings, store, mailbox=box).hard == 1
    finally:
        box.close()
    # The same server is refused by default: its certificate is trusted by nobody.
    with pytest.raises(StopRun, match=f"TLS .* failed \\(BOUNCE_IMAP_SECURITY={security}\\)"):
        Mailbox(imap_config(settings))

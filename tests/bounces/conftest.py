"""Fixtures of the bounce mailbox tests: one dovecot for the session, the corpus, ledger rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from clubjapon_ops.bounces.classify import classify
from clubjapon_ops.delivery.message import message_id
from clubjapon_ops.settings import Settings, load_settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.schema import deliveries
from tests.conftest import use_database
from tests.dovecot import Dovecot, running_dovecot

CORPUS = Path(__file__).parent / "corpus"
SECRET = "test-secret-0123456789abcdef"
MAIL_FROM = "Club Japon <club-japon@example.org>"
BOUNCES = "bounces@example.org"

# What each corpus message is (kind, addresses), checked by test_classify.py and used to
# build the ledger rows the mailbox tests match against.
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "flufl/dsn_01.eml": ("hard", ("userx@example.com",)),
    "flufl/dsn_03.eml": ("hard", ("userx@example.be",)),
    "flufl/dsn_05.eml": ("delayed", ("userx@example.cz",)),  # delay warnings: still trying
    "flufl/dsn_06.eml": ("delayed", ("userx@example.com",)),
    "flufl/exim_01.eml": ("hard", ("userx@its.example.nl",)),
    "flufl/groupwise_01.eml": ("hard", ("userx@example.edu",)),
    "flufl/microsoft_01.eml": ("hard", ("userx@example.com",)),
    "flufl/postfix_02.eml": ("hard", ("yyyyy@digicool.com",)),
    "flufl/qmail_01.eml": ("hard", ("userx@example.de",)),
    "flufl/yahoo_01.eml": ("hard", ("userx@example.com",)),
    "sisimai/arf-02.eml": ("complaint", ("this-local-part-does-not-exist-on-yahoo@yahoo.com",)),
    "sisimai/arf-11.eml": ("complaint", ()),  # names no recipient
    "sisimai/arf-12.eml": ("opt_out", ()),
    "sisimai/arf-14.eml": ("complaint", ("kijitora@y.example.com",)),
    "sisimai/arf-16.eml": ("complaint", (
        "kijitora@example.com", "sironeko@example.com", "mikeneko@example.com",
        "sabatora@example.com", "sirokiji@example.org", "kuroneko@example.com",
        "sabineko@example.com")),
    "sisimai/arf-18.eml": ("other_report", ("kijitora@example.com",)),
    "sisimai/arf-22.eml": ("complaint", ("kijitora@example.com",)),
    "sisimai/is-not-bounce-01.eml": ("unclassified", ()),
    "sisimai/lhost-exchange2007-01.eml": ("hard", ("mikeneko@example.co.jp",)),
    "sisimai/lhost-exim-02.eml": ("hard", ("kijitora@example.jp", "sabatora@example.jp")),
    "sisimai/lhost-gmail-01.eml": ("hard", ("userunknown@example.jp",)),
    "sisimai/lhost-gmail-08.eml": ("delayed", ("kijitora@example.com",)),
    # Given up on a transient cause (4.x.x) or a full mailbox (5.2.2): soft bounces.
    "sisimai/lhost-postfix-08.eml": ("soft", ("kijitora@example.com",)),
    "sisimai/lhost-messagingserver-12.eml": ("soft", (
        "pseudo-local-part-kijitora-neko-nyaan@mac.com",)),
    "sisimai/lhost-amazonses-17.eml": ("soft", ("kijitora@example.com",)),
    "sisimai/lhost-exchange2007-02.eml": ("soft", ("kijitora@example.edu",)),
    "sisimai/lhost-office365-03.eml": ("hard", ("kijitora@example.com",)),
    "sisimai/lhost-postfix-02.eml": ("hard", ("filtered@example.co.jp",
                                              "userunknown@example.co.jp")),
    "sisimai/lhost-postfix-04.eml": ("hard", ("kijitora@example.co.jp",)),
    "sisimai/lhost-qmail-03.eml": ("hard", ("kijitora@example.org",)),
    "sisimai/lhost-sendmail-01.eml": ("hard", ("userunknown@bouncehammer.jp",)),
    "sisimai/lhost-yahoo-03.eml": ("hard", ("kijitora@example.jp",)),
    "sisimai/rfc3834-01.eml": ("auto_reply", ()),
    "sisimai/rfc3834-02.eml": ("auto_reply", ()),
    "sisimai/rfc3834-03.eml": ("auto_reply", ()),
    "sisimai/rfc3834-04.eml": ("auto_reply", ()),
    "sisimai/rfc3834-05.eml": ("auto_reply", ()),
    "sisimai/rfc3834-06.eml": ("auto_reply", ()),
    "sisimai/rhost-franceptt-01.eml": ("hard", ("pseudo-local-part-kijitora-nyaaan@orange.fr",)),
}


def corpus(name: str) -> bytes:
    """One corpus message, as stored."""
    return (CORPUS / name).read_bytes()


def ours(raw: bytes, edition: str, email: str) -> bytes:
    """A real report returning our message to ``email`` of ``edition``: the Message-ID it
    quotes replaced by ours (what ties a report to one reader while VERP is off)."""
    returned = classify(raw).returned_message_id
    assert returned, "this report quotes no Message-ID"
    return raw.replace(returned.encode(), message_id(edition, email, "example.org").encode())


def tied_corpus(edition: str) -> tuple[list[bytes], list[str]]:
    """Every corpus message, each delivery report that quotes a Message-ID made to return our
    message to its first recipient; and those recipients (each needs a ledger row)."""
    messages: list[bytes] = []
    readers: list[str] = []
    for name in sorted(EXPECTED):
        raw = corpus(name)
        kind, addresses = EXPECTED[name]
        if kind in ("hard", "soft", "delayed") and classify(raw).returned_message_id:
            raw = ours(raw, edition, addresses[0])
            readers.append(addresses[0])
        messages.append(raw)
    return messages, readers


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One dovecot for the whole session; each test takes a user (a mailbox) of its own."""
    with running_dovecot() as server:
        yield server


@pytest.fixture
def mailbox_user(dovecot: Dovecot) -> str:
    """An empty mailbox of this test's own."""
    return dovecot.new_user()


def bounce_settings(root: Path, dovecot: Dovecot, user: str, **env: str) -> Settings:
    """Settings reading ``user``'s mailbox, with a signing key and our bounce address."""
    base = {"CLUBJAPON_SECRET": SECRET, "CLUBJAPON_MAIL_FROM": MAIL_FROM,
            "CLUBJAPON_BOUNCE_ADDRESS": BOUNCES, "CLUBJAPON_BOUNCE_VERP": "false",
            **dovecot.env(user)}
    return load_settings(root, environ={**base, **env}, use_dotenv=True)


@pytest.fixture
def imap_settings(root: Path, db_engine: str | None, dovecot: Dovecot,
                  mailbox_user: str) -> Settings:
    """Settings on this test's engine, reading this test's mailbox."""
    use_database(root, db_engine)
    return bounce_settings(root, dovecot, mailbox_user)


def add_ledger_row(store: Store, edition: str, email: str, *, days_ago: float = 1.0,
                   sent: bool = True) -> int:
    """A ledger row for ``email``, sent ``days_ago`` (or never); return its id."""
    when = datetime.now(UTC) - timedelta(days=days_ago)
    with store.transaction() as conn:
        conn.execute(insert(deliveries).values(
            edition=edition, email=email, lang="fr", state="sent" if sent else "pending",
            attempts=1 if sent else 0, created_at=when, updated_at=when,
            sent_at=when if sent else None))
        return int(conn.execute(select(deliveries.c.id).where(
            deliveries.c.edition == edition, deliveries.c.email == email)).scalar_one())


FORGED_DSN = """\
From: MAILER-DAEMON@mx.example.net
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: Mon, 7 Dec 2026 10:00:00 +0000
Message-ID: <forged-{n}@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

{recipients}
--b
Content-Type: text/rfc822-headers

From: Club Japon <club-japon@example.org>
Subject: La lettre
{returned}
--b--
"""


def forged_dsn(n: int, readers: list[str], returned: str = "") -> bytes:
    """A DSN anyone can write: 'these readers bounced', with what it claims we sent."""
    blocks = "".join(f"Final-Recipient: rfc822; {r}\nAction: failed\nStatus: 5.1.1\n"
                     f"Diagnostic-Code: smtp; 550 5.1.1 unknown user\n\n" for r in readers)
    return FORGED_DSN.format(to=BOUNCES, n=n, recipients=blocks, returned=returned).encode()

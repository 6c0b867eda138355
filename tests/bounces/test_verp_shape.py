"""The VERP return path in the classic shape (issue 23): a send through the real CLI to
aiosmtpd gives each message bounces+TOKEN-local=domain@ (bounces-TOKEN-local=domain@ with
CLUBJAPON_BOUNCE_VERP_DELIMITER=-), the shape rspamd's ENVFROM_VERP rule looks for (rspamd
itself, which strips a '+' first, in tests/e2e/test_mta_relay.py); then the bounce mailbox,
read by the real CLI from dovecot, ties a DSN sent to that address to its row, still ties one
sent to the shape of messages sent before, and ties no one to a forged token however plainly
it names a reader."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from clubjapon_ops.delivery.tokens import VerpSigner, verp_address, verp_token
from tests.bounces.conftest import corpus
from tests.delivery.conftest import POSTAL_ADDRESS, SECRET, SLUG, home, write_contacts  # noqa: F401
from tests.dovecot import Dovecot
from tests.fakes.smtp_server import smtp_server

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]
BOUNCES = "bounces@bounce.example.org"  # on a subdomain, as docs/ops.md suggests
READERS = ["aiko.sato+news@example.co.jp", "jean@example.com", "emma@example.net"]

def classic(delimiter: str) -> re.Pattern[str]:
    return re.compile(rf"^bounces{re.escape(delimiter)}[a-z2-7]+-[a-z2-7]{{13}}-(?P<rcpt>[^@]+)"
                      r"@bounce\.example\.org$")


def envfrom_verp(envelope_from: str, recipient: str) -> bool:
    """rspamd 3.4's ENVFROM_VERP (rules/misc.lua), in Python: the recipient, '@' turned into
    '=', inside the envelope sender's local part, not as Google forwarding nor SRS."""
    user = envelope_from.rpartition("@")[0].lower()
    verp = recipient.lower().replace("@", "=")
    return verp in user and f"+caf_={verp}" not in user and not user.startswith(
        ("srs0=", "srs1="))


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def dsn_to(address: str, n: int) -> bytes:
    """A real Postfix DSN, delivered to ``address`` (its To), with a Message-ID of its own."""
    return (corpus("sisimai/lhost-postfix-04.eml")
            .replace(b"To: shironeko@example.ne.jp", f"To: {address}".encode())
            .replace(b"<20100524100650.7FE851AC10D@mv-osn-hcb007.ocn.ad.jp>",
                     f"<verp-{n}@mv-osn-hcb007.ocn.ad.jp>".encode()))


@pytest.mark.parametrize("delimiter", ["+", "-"])
def test_the_return_path_is_classic_verp_and_bounces_old_and_new_come_home(
        home: Path, dovecot: Dovecot, mailbox_user: str, delimiter: str) -> None:  # noqa: F811
    write_contacts(home / "contacts.csv", READERS)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "BOUNCE_"))}
    env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_CSV_PATH=str(home / "contacts.csv"),
               CLUBJAPON_SECRET=SECRET, CLUBJAPON_POSTAL_ADDRESS=POSTAL_ADDRESS,
               CLUBJAPON_TRANSPORT="smtp", SMTP_HOST="127.0.0.1",
               CLUBJAPON_BOUNCE_ADDRESS=BOUNCES, CLUBJAPON_BOUNCE_VERP_DELIMITER=delimiter,
               **dovecot.env(mailbox_user))
    with smtp_server() as (port, server):
        env["SMTP_PORT"] = str(port)
        assert cli(env, "sync").returncode == 0
        sent = cli(env, "send", SLUG, "--yes")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        envelopes = dict(server.mail_from)
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        rows = dict(db.execute("SELECT email, id FROM deliveries WHERE edition = ?", (SLUG,)))

    signer = VerpSigner(SECRET)
    for reader in READERS:
        sender = envelopes[reader]
        shape = classic(delimiter).match(sender)
        assert shape and shape["rcpt"] == reader.replace("@", "="), sender
        assert envfrom_verp(sender, reader)
        token = verp_token(sender, BOUNCES)
        assert token is not None and signer.read(token) == rows[reader]
    # The shape sent before issue 23 is no VERP to rspamd: FORGED_SENDER stood.
    old = verp_address(BOUNCES, signer.make(rows[READERS[1]]))
    assert not envfrom_verp(old, READERS[1])

    forged = envelopes[READERS[2]].replace(
        f"-{signer.make(rows[READERS[2]]).split('-')[1]}-", "-aaaaaaaaaaaaa-")
    dovecot.append(mailbox_user, [
        dsn_to(envelopes[READERS[0]], 1),  # the new shape, as sent
        dsn_to(old.upper(), 2),  # the old shape, upper-cased on the way
        dsn_to(forged, 3),  # names a reader plainly, with a forged signature
    ])
    read = cli(env, "bounces")
    assert read.returncode == 0, read.stdout + read.stderr
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        events = [(e, t, json.loads(r)["matched_by"], d) for e, t, r, d in db.execute(
            "SELECT email, type, raw, delivery_id FROM events ORDER BY email")]
    assert events == [
        (READERS[0], "hard_bounce", "verp", rows[READERS[0]]),
        (READERS[1], "hard_bounce", "verp", rows[READERS[1]]),
    ]

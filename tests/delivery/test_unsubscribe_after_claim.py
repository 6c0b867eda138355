"""An unsubscribe answered after a row was claimed, before its message went out (issue 26).

A send claims rows 200 to 500 at a time, then hands each over in turn. Readers who
unsubscribe in between (a one-click POST through the public app, or the CLI `unsubscribe`)
must not be mailed: their rows end 'skipped', saying why. Each test unsubscribes them at a
fixed point, from inside the transport's first hand-over, while every later row is still
claimed: no timing decides the outcome. Before the check at each hand-over, all of them
were mailed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from clubjapon_ops import jobs
from clubjapon_ops.delivery.tokens import TokenSigner
from clubjapon_ops.delivery.transports.outbox import OutboxTransport
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.schema import deliveries
from clubjapon_ops.web import create_app
from tests.conftest import free_port
from tests.delivery.conftest import POSTAL_ADDRESS, SECRET, SLUG, make_settings, write_contacts
from tests.fakes.smtp_server import Behaviour, RecordingHandler

READERS = [f"reader{i:02d}@example.com" for i in range(40)]
LATE = 10  # readers unsubscribed after the claim: the last rows claimed


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `clubjapon-ops` subprocess on this project (and its database)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_"))}
    env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_CSV_PATH=str(home / "contacts.csv"),
               CLUBJAPON_SECRET=SECRET, CLUBJAPON_POSTAL_ADDRESS=POSTAL_ADDRESS, **extra)
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def states(store: Store) -> dict[str, tuple[str, str | None]]:
    with store.transaction() as conn:
        return {r.email: (r.state, r.last_error) for r in conn.execute(
            select(deliveries.c.email, deliveries.c.state, deliveries.c.last_error)
            .where(deliveries.c.edition == SLUG))}


def unsubscriber(home: Path, store: Store, *, by_cli: bool) -> Callable[[], list[str]]:
    """What the readers do mid-send: the last LATE claimed rows' readers unsubscribe by a
    one-click POST to the public app (half of them by the CLI if ``by_cli``); each answered
    before returning."""
    web = create_app(make_settings(home), lambda: store).test_client()

    def unsubscribe_now() -> list[str]:
        with store.transaction() as conn:
            ids = dict(conn.execute(
                select(deliveries.c.email, deliveries.c.id).where(
                    deliveries.c.edition == SLUG, deliveries.c.state == ledger.CLAIMED)
                .order_by(deliveries.c.id)).all())
        claimed = list(ids)
        # Every row was claimed at once, and lanes go in id order: the last rows are far
        # from any lane's next hand-over.
        assert len(claimed) >= 2 * LATE, claimed
        late = claimed[-LATE:]
        web_readers, cli_readers = (late[::2], late[1::2]) if by_cli else (late, [])
        for email in web_readers:
            # The link of the reader's own message: it names their ledger row.
            token = TokenSigner(SECRET).for_row(ids[email], "fr")
            answer = web.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                              content_type="application/x-www-form-urlencoded")
            assert answer.status_code == 200
        by_hand = [subprocess.Popen(
            [sys.executable, "-m", "clubjapon_ops", "unsubscribe", email, "--reason", "phone"],
            env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for email in cli_readers]
        for process in by_hand:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0 and "unsubscribed" in out, err
        return late

    return unsubscribe_now


def assert_skipped_not_sent(store: Store, late: list[str], mailed: set[str]) -> None:
    assert not mailed & set(late), "mailed after their unsubscribe was answered"
    found = states(store)
    for email in late:
        state, why = found[email]
        assert state == ledger.SKIPPED and why is not None and "unsubscribe" in why, (email,
                                                                                      found[email])
    assert {e for e, (s, _) in found.items() if s == ledger.SENT} == set(READERS) - set(late)


def test_outbox_send_skips_readers_who_unsubscribed_after_the_claim(
    home: Path, send_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_contacts(home / "contacts.csv", READERS)
    settings = make_settings(home)
    jobs.crm_sync(settings, send_store)
    unsubscribe_now = unsubscriber(home, send_store, by_cli=True)
    late: list[str] = []
    real_send = OutboxTransport.send

    def send(self: OutboxTransport, batch: Any, *args: Any, **kwargs: Any) -> Any:
        if not late:  # the first hand-over: its row is 'sending', the others claimed
            late.extend(unsubscribe_now())
        return real_send(self, batch, *args, **kwargs)

    monkeypatch.setattr(OutboxTransport, "send", send)
    report = jobs.send_campaign(settings, send_store, SLUG)
    written = {p.name.split("-", 1)[1].removesuffix(".eml")
               for p in (settings.outbox_dir / SLUG).iterdir()}
    assert len(late) == LATE
    assert_skipped_not_sent(send_store, late, written)
    assert report.skipped_suppressed == LATE and report.status == "success"


class UnsubscribeOnFirstMessage(RecordingHandler):
    """Before answering the first message, let readers unsubscribe: the sender waits."""

    def __init__(self, unsubscribe_now: Callable[[], list[str]]) -> None:
        super().__init__(Behaviour())
        self.unsubscribe_now = unsubscribe_now
        self.late: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.late:
            self.late = self.unsubscribe_now()
        return await super().handle_DATA(server, session, envelope)


def test_smtp_send_skips_readers_who_unsubscribed_after_the_claim(
    home: Path, send_store: Store
) -> None:
    write_contacts(home / "contacts.csv", READERS)
    jobs.crm_sync(make_settings(home), send_store)
    # One-click POSTs only: the sender waits for this answer, and its SMTP client gives up
    # after 30 s, which CLI processes starting on a loaded machine could take.
    handler = UnsubscribeOnFirstMessage(unsubscriber(home, send_store, by_cli=False))
    port = free_port()
    server = Controller(handler, hostname="127.0.0.1", port=port)
    server.start()
    try:
        env = cli_env(home, CLUBJAPON_TRANSPORT="smtp", SMTP_HOST="127.0.0.1",
                      SMTP_PORT=str(port), SMTP_CONNECTIONS="2")
        sent = run_cli(env, "send", SLUG, "--yes")
    finally:
        server.stop()
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert len(handler.late) == LATE
    assert_skipped_not_sent(send_store, handler.late, set(handler.counts))

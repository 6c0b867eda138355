"""The sender with the Brevo transport and a real SQLite ledger, the fake Brevo behind
`responses`: keyed batches of which one request fails while the others go through."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest
import responses
from sqlalchemy import select

from clubjapon_ops import jobs
from clubjapon_ops.delivery.sender import IDEMPOTENCY_VALIDITY, CampaignSender, SendReport
from clubjapon_ops.delivery.transports.brevo import BrevoTransport
from clubjapon_ops.http.client import HttpClient, RetryPolicy
from clubjapon_ops.http.vendors import brevo_api
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger_module
from clubjapon_ops.store.contacts import add_suppression
from clubjapon_ops.store.schema import deliveries
from clubjapon_ops.store.types import utcnow
from tests.adapters.conftest import bridge
from tests.delivery.conftest import SLUG, make_settings
from tests.fakes.brevo_email import API_KEY, SEND, FakeBrevoEmail
from tests.fakes.server import PASS

BASE = "https://api.brevo.test"
NO_WAIT = RetryPolicy(attempts=3, total_s=600.0, initial_wait_s=0.0, max_wait_s=0.0,
                      jitter_s=0.0)


@pytest.fixture
def fake() -> Iterator[FakeBrevoEmail]:
    api = FakeBrevoEmail()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add_callback(responses.POST, re.compile(re.escape(BASE) + ".*"),
                            callback=bridge(api))
        yield api


def sync(home: Path, store: Store, rows: list[tuple[str, str, str]]) -> None:
    """Contacts as (email, last name, language)."""
    lines = ["email;first_name;last_name;language"]
    lines += [f"{email};Prénom;{last};{lang}" for email, last, lang in rows]
    (home / "contacts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    jobs.crm_sync(make_settings(home), store)


def run(home: Path, store: Store, retry_delay: timedelta = timedelta(0)) -> SendReport:
    client = HttpClient(brevo_api(API_KEY, BASE), retry=NO_WAIT, sleep=lambda _s: None)
    transport = BrevoTransport(client, "Club Japon <club-japon@example.org>",
                               "mailto:club-japon@example.org?subject=unsubscribe")
    newsletter = jobs.newsletter_for_sending(make_settings(home), SLUG)
    sender = CampaignSender(store, newsletter, transport, error_budget=10_000,
                            retry_delay=retry_delay)
    return sender.run(sender.prepare())


def ledger(store: Store) -> dict[str, str]:
    with store.transaction() as conn:
        return dict(conn.execute(select(deliveries.c.email, deliveries.c.state)).all())


def test_a_failed_request_of_a_keyed_batch_is_resent_by_the_same_run_under_its_key_once(
    home: Path, send_store: Store, fake: FakeBrevoEmail
) -> None:
    people = [(f"r{i}@example.com", f"Nom{i}", ("fr", "en", "ja")[i % 3]) for i in range(30)]
    sync(home, send_store, people)
    fake.inject(PASS, path=SEND)  # fr goes through,
    fake.server_error(times=3)  # en fails to the end of its attempts, ja goes through
    first = run(home, send_store)
    # The 5xx may have been taken: the same run sends the en part again when due, under
    # its key (a later run could find the key lapsed), and it goes through.
    assert first.outcomes == {"sent": 30, "retry": 10} and first.status == "success"
    assert set(ledger(send_store).values()) == {"sent"}
    assert fake.accepted == 3 and fake.duplicates == []
    assert fake.received() == {e: 1 for e, _, _ in people}


def test_a_keyed_batch_split_by_params_size_resends_only_its_failed_part_under_its_own_key(
    home: Path, send_store: Store, fake: FakeBrevoEmail
) -> None:
    # Japanese family names of 200 characters: about 2.5 KB of params per reader, so the
    # 400 readers of one language need two requests.
    people = [(f"r{i}@example.com", chr(0x4E00 + i) * 200, "ja") for i in range(400)]
    sync(home, send_store, people)
    fake.inject(PASS, path=SEND)  # the first part goes through,
    fake.server_error(times=3)  # the second fails to the end of its attempts
    first = run(home, send_store)
    # The failed part waited in 'retry', then went again in the same run (under its key).
    assert fake.accepted == 2 and first.outcomes["sent"] == 400
    assert 0 < first.outcomes["retry"] < 400
    # Resent alone, the failed part must not reuse the key of the part that went through:
    # that answers duplicate_parameter and its readers would be marked sent, never delivered.
    assert set(ledger(send_store).values()) == {"sent"}
    assert fake.received() == {e: 1 for e, _, _ in people}
    assert fake.duplicates == []


def test_a_batch_key_is_trusted_for_resends_only_within_brevo_s_shortest_documented_ttl(
    home: Path, send_store: Store, fake: FakeBrevoEmail
) -> None:
    # Brevo's guide gives the key 30 minutes, its changelog 15 ("The TTL for the
    # idempotencyKey is 15 minutes."): a resend under the same key past the real TTL would be
    # delivered twice, so the key must be given up before the shorter of the two.
    sync(home, send_store, [(f"r{i}@example.com", f"Nom{i}", "fr") for i in range(3)])
    before = utcnow()
    fake.server_error(times=3)
    assert run(home, send_store).outcomes == {"retry": 3, "sent": 3}
    with send_store.transaction() as conn:
        rows = conn.execute(select(deliveries.c.batch_key,
                                   deliveries.c.batch_key_expires_at)).all()
    assert len({key for key, _ in rows}) == 1 and None not in {key for key, _ in rows}
    for _key, expires in rows:
        assert expires.replace(tzinfo=UTC) - before < timedelta(minutes=15)
        # And what is recorded is when a resend may last start: its own retries (timeout and
        # retry budget of the HTTP client) must end within the key's validity too.
        longest = timedelta(seconds=NO_WAIT.total_s + 30.0)
        assert expires.replace(tzinfo=UTC) - before <= IDEMPOTENCY_VALIDITY - longest \
            + timedelta(seconds=5)


def stopping_sender(home: Path, store: Store, retry_delay: timedelta) -> CampaignSender:
    """A sender that stops as soon as it would wait for the provider (no real waits)."""
    stop = threading.Event()
    client = HttpClient(brevo_api(API_KEY, BASE), retry=NO_WAIT, sleep=lambda _s: None)
    transport = BrevoTransport(client, "Club Japon <club-japon@example.org>",
                               "mailto:club-japon@example.org?subject=unsubscribe")
    newsletter = jobs.newsletter_for_sending(make_settings(home), SLUG)
    return CampaignSender(store, newsletter, transport, error_budget=10_000, stop=stop,
                          retry_delay=retry_delay, waiting=lambda _w: stop.set())


def test_a_batch_that_may_have_been_taken_is_due_again_before_its_key_lapses(
    home: Path, send_store: Store, fake: FakeBrevoEmail
) -> None:
    # The outage of issue 21: the key lapsed at 01:25:19, the retry was due at 01:27:03.
    sync(home, send_store, [(f"r{i}@example.com", f"Nom{i}", "fr") for i in range(3)])
    fake.server_error(times=3)
    sender = stopping_sender(home, send_store, retry_delay=timedelta(hours=1))
    report = sender.run(sender.prepare())
    assert report.outcomes == {"retry": 3}
    with send_store.transaction() as conn:
        found = conn.execute(select(deliveries.c.next_attempt_at,
                                    deliveries.c.batch_key_expires_at,
                                    deliveries.c.last_cause)).all()
    for due, expires, cause in found:
        assert due is not None and expires is not None and due <= expires
        assert cause == "500"


def test_a_refused_batch_gives_up_its_key_and_is_never_made_unknown(
    home: Path, send_store: Store, fake: FakeBrevoEmail
) -> None:
    sync(home, send_store, [(f"r{i}@example.com", f"Nom{i}", "fr") for i in range(3)])
    fake.rate_limit(times=3, retry_after=0)  # a 429 to the last attempt: nothing taken
    sender = stopping_sender(home, send_store, retry_delay=timedelta(hours=1))
    assert sender.run(sender.prepare()).outcomes == {"retry": 3}
    later = utcnow() + timedelta(hours=2)
    with send_store.transaction() as conn:
        assert ledger_module.expire_keys(conn, SLUG, later) == 0
        found = conn.execute(select(deliveries.c.state, deliveries.c.batch_key,
                                    deliveries.c.last_cause)).all()
    assert set(found) == {("retry", None, "429")}


def test_a_lapsed_key_makes_the_batch_unknown_and_keeps_the_provider_s_cause(
    home: Path, send_store: Store, fake: FakeBrevoEmail
) -> None:
    sync(home, send_store, [(f"r{i}@example.com", f"Nom{i}", "fr") for i in range(3)])
    fake.server_error(times=3)
    sender = stopping_sender(home, send_store, retry_delay=timedelta(hours=1))
    sender.run(sender.prepare())
    later = utcnow() + timedelta(hours=2)
    with send_store.transaction() as conn:
        assert ledger_module.expire_keys(conn, SLUG, later) == 3
        found = conn.execute(select(deliveries.c.state, deliveries.c.last_cause,
                                    deliveries.c.last_error)).all()
    assert {(s, c) for s, c, _ in found} == {("unknown", "500")}
    assert {e for _, _, e in found} == {ledger_module.KEY_LAPSED}


def test_a_keyed_batch_that_lost_a_reader_before_its_resend_is_never_sent_under_another_key(
    home: Path, send_store: Store, fake: FakeBrevoEmail
) -> None:
    # Brevo took the batch, then answered 500: its three readers have the letter. The first
    # (whose row named the part's key) unsubscribes before the same batch goes again.
    people = [(f"r{i}@example.com", f"Nom{i}", "fr") for i in range(3)]
    sync(home, send_store, people)
    fake.fail_after_taking(times=1)
    fake.server_error(times=2)
    sender = stopping_sender(home, send_store, retry_delay=timedelta(hours=1))
    assert sender.run(sender.prepare()).outcomes == {"retry": 3}
    assert fake.received() == {e: 1 for e, _, _ in people}
    with send_store.transaction() as conn:
        add_suppression(conn, "r0@example.com", "one-click", "unsubscribe")

    again = CampaignSender(send_store, jobs.newsletter_for_sending(make_settings(home), SLUG),
                           stopping_sender(home, send_store, timedelta(0)).transport,
                           error_budget=10_000)
    again.run(again.prepare(now=True))
    # Resent without r0, the part would have gone under another key and Brevo would have
    # delivered it again to r1 and r2: the batch waits for the operator instead.
    assert fake.received() == {e: 1 for e, _, _ in people}
    assert ledger(send_store) == {"r0@example.com": "skipped", "r1@example.com": "unknown",
                                  "r2@example.com": "unknown"}


def test_rows_given_back_before_their_hand_over_keep_their_batch_and_key(
    home: Path, send_store: Store, fake: FakeBrevoEmail
) -> None:
    sync(home, send_store, [(f"r{i}@example.com", f"Nom{i}", "fr") for i in range(3)])
    fake.fail_after_taking(times=1)
    fake.server_error(times=2)
    sender = stopping_sender(home, send_store, retry_delay=timedelta(hours=1))
    sender.run(sender.prepare())
    with send_store.transaction() as conn:
        (key,) = set(conn.execute(select(deliveries.c.batch_key)).scalars())
        ledger_module.make_due(conn, SLUG)
        claimed = ledger_module.claim(conn, SLUG, "w1", 10, lease=timedelta(minutes=5),
                                      state=ledger_module.CLAIMED)
        assert len(claimed) == 3
        assert ledger_module.release(conn, SLUG, "w1") == 3
        found = set(conn.execute(select(deliveries.c.state, deliveries.c.batch_key)).all())
    # Back in 'pending' with its key, a row could go out with others under another key.
    assert found == {("retry", key)}

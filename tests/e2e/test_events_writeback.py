"""End to end over loopback: send through a Brevo-shaped server, post bounce and unsubscribe
events to the web app, run the nightly sync, and check the CRM got exactly the write-backs
and the next send skips those readers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.crm import make_source
from clubjapon_ops.http.client import RetryPolicy
from clubjapon_ops.settings import Settings, load_settings
from clubjapon_ops.store import Store, open_store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.contacts import add_suppression
from clubjapon_ops.store.schema import deliveries
from clubjapon_ops.web import create_app
from tests.conftest import REPO
from tests.delivery.conftest import POSTAL_ADDRESS
from tests.fakes.brevo_crm import API_KEY, FakeBrevo
from tests.fakes.hubspot_crm import TOKEN, FakeHubSpot
from tests.fakes.server import FakeServer, serving

pytestmark = pytest.mark.e2e

SLUG = "2025-11-04-lille"
HOOK = "hook-secret-e2e-9a7b"
QUICK = RetryPolicy(attempts=4, total_s=10, initial_wait_s=0.01, max_wait_s=0.05, jitter_s=0.0)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config" / "editions", tmp_path / "config" / "editions")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return tmp_path


@pytest.fixture
def brevo() -> Iterator[tuple[FakeBrevo, FakeServer]]:
    api = FakeBrevo()
    with serving(api) as server:
        yield api, server


def brevo_settings(home: Path, url: str) -> Settings:
    return load_settings(home, environ={
        "CLUBJAPON_CRM": "brevo", "BREVO_API_KEY": API_KEY, "BREVO_BASE_URL": url,
        "CLUBJAPON_TRANSPORT": "brevo", "CLUBJAPON_SECRET": "s" * 32,
        "CLUBJAPON_POSTAL_ADDRESS": POSTAL_ADDRESS,
        "BREVO_WEBHOOK_SECRET": HOOK, "CLUBJAPON_SEND_RETRY_WAIT": "0.01",
        "CLUBJAPON_HTTP_ATTEMPTS": "3"})


def sync(settings: Settings, store: Store) -> jobs.SyncReport:
    source = make_source(settings)
    source.client.retry = QUICK  # type: ignore[attr-defined]
    return jobs.crm_sync(settings, store, source=source)


def planned(store: Store, edition: str) -> set[str]:
    with store.transaction() as conn:
        ledger.plan(conn, edition)
        return {r.email for r in conn.execute(
            deliveries.select().where(deliveries.c.edition == edition))}


def test_send_events_nightly_sync_write_back_next_send(
    brevo: tuple[FakeBrevo, FakeServer], home: Path
) -> None:
    api, server = brevo
    emails = ["bounce@example.org", "unsub@example.org", "soft@example.org", "fine@example.org"]
    ids = {e: api.add(e, FIRSTNAME="Ami", LANGUAGE="fr") for e in emails}
    settings = brevo_settings(home, server.url)
    store = open_store(settings.database_url)
    sync(settings, store)

    report = jobs.send_campaign(settings, store, SLUG)
    assert report.counts()["sent"] == 4
    message_ids = dict(api.sent)
    assert set(message_ids) == set(emails)

    web = create_app(settings, lambda: store).test_client()
    events = [
        {"event": "hard_bounce", "email": "bounce@example.org", "reason": "550 unknown user",
         "message-id": message_ids["bounce@example.org"], "ts_event": 1_764_000_000},
        {"event": "unsubscribed", "email": "unsub@example.org",
         "message-id": message_ids["unsub@example.org"], "ts_event": 1_764_000_001},
        {"event": "soft_bounce", "email": "soft@example.org", "reason": "mailbox full",
         "message-id": message_ids["soft@example.org"], "ts_event": 1_764_000_002},
        {"event": "delivered", "email": "fine@example.org",
         "message-id": message_ids["fine@example.org"], "ts_event": 1_764_000_003},
    ]
    for event in events:
        assert web.post(f"/events/brevo/{HOOK}", json=event).status_code == 200
    assert web.post(f"/events/brevo/{HOOK}", json=events[0]).status_code == 200  # a retry

    nightly = sync(settings, store)
    assert nightly.push is not None and nightly.push.pushed == 2
    puts = [r.path for r in api.log if r.method == "PUT"]
    assert sorted(puts) == ["/v3/contacts/bounce%40example.org",
                            "/v3/contacts/unsub%40example.org"]
    assert api.get(ids["bounce@example.org"]).blacklisted
    assert not api.get(ids["soft@example.org"]).blacklisted  # one soft bounce is not enough

    again = sync(settings, store)
    assert again.push is None or again.push.pushed == 0
    assert len([r for r in api.log if r.method == "PUT"]) == 2  # each pushed once

    # The next edition skips the bounced and unsubscribed readers.
    assert planned(store, "2026-03-01-next") == {"soft@example.org", "fine@example.org"}
    store.close()


def test_hubspot_write_back_unsubscribes_and_reports_unknown_contacts(tmp_path: Path) -> None:
    api = FakeHubSpot()
    kept = api.add("kept@example.org", hs_language="fr")
    gone = api.add("gone@example.org", hs_language="fr")
    with serving(api) as server:
        settings = load_settings(tmp_path, environ={
            "CLUBJAPON_CRM": "hubspot", "HUBSPOT_TOKEN": TOKEN, "HUBSPOT_BASE_URL": server.url,
            "HUBSPOT_SUBSCRIPTION_ID": "777", "CLUBJAPON_HTTP_ATTEMPTS": "3"})
        store = open_store(settings.database_url)
        sync(settings, store)
        api.archive(gone)  # deleted in HubSpot; the incremental sync does not see it go
        with store.transaction() as conn:
            add_suppression(conn, "kept@example.org", "hard bounce", "bounce")
            add_suppression(conn, "gone@example.org", "spam", "complaint")
        report = sync(settings, store)
        assert report.push is not None
        assert (report.push.pushed, report.push.not_found) == (1, ["gone@example.org"])
        assert api.unsubscribed == [("kept@example.org", "777")]
        sync(settings, store)
        assert api.unsubscribed == [("kept@example.org", "777")]
        assert api.contacts[kept].props.get("email") == "kept@example.org"
        assert "gone@example.org" not in {c.props.get("email") for c in api.live()}  # not created
        store.close()

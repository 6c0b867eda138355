"""Write-back to HubSpot and Brevo against `responses`: the calls, their answers, and the
bookkeeping that pushes each suppression once."""

from __future__ import annotations

import json
import re

import pytest
import responses
from sqlalchemy import select

from clubjapon_ops import jobs
from clubjapon_ops.contacts import Contact
from clubjapon_ops.crm.writeback import LEGAL_BASIS, BrevoPusher, HubSpotPusher
from clubjapon_ops.errors import AuthError, SourceError
from clubjapon_ops.http.client import HttpClient
from clubjapon_ops.http.vendors import brevo_api, hubspot_api
from clubjapon_ops.jobs.push import push_suppressions
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.contacts import add_suppression, upsert_contacts
from clubjapon_ops.store.pushes import DONE, NOT_FOUND
from clubjapon_ops.store.schema import crm_pushes
from tests.adapters.conftest import FAST, Sleeps

HUBSPOT = "https://api.hubspot.test"
BREVO = "https://api.brevo.test"
UNSUBSCRIBE = HUBSPOT + "/communication-preferences/v3/unsubscribe"


def hubspot(sleeps: Sleeps) -> HubSpotPusher:
    return HubSpotPusher(HttpClient(hubspot_api("pat-secret-token", HUBSPOT), retry=FAST,
                                    sleep=sleeps), "4242")


def brevo(sleeps: Sleeps) -> BrevoPusher:
    return BrevoPusher(HttpClient(brevo_api("xkeysib-secret", BREVO), retry=FAST, sleep=sleeps))


def test_hubspot_unsubscribes_from_the_subscription_type(
    mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.post(UNSUBSCRIBE, json={"id": "4242", "status": "NOT_SUBSCRIBED"})
    assert hubspot(sleeps).push("yui@example.com", "bounce") == DONE
    call = mocked.calls[0].request
    assert call.headers["Authorization"] == "Bearer pat-secret-token"
    body = json.loads(call.body or b"")
    assert body["emailAddress"] == "yui@example.com" and body["subscriptionId"] == "4242"
    assert body["legalBasis"] == LEGAL_BASIS and "bounce" in body["legalBasisExplanation"]


def test_hubspot_answers(mocked: responses.RequestsMock, sleeps: Sleeps) -> None:
    pusher = hubspot(sleeps)
    mocked.post(UNSUBSCRIBE, status=404, json={"message": "contact not found"})
    assert pusher.push("a@example.com", "bounce") == NOT_FOUND
    mocked.replace(responses.POST, UNSUBSCRIBE, status=400,
                   json={"message": "a@example.com is already unsubscribed from subscription 4242"})
    assert pusher.push("a@example.com", "bounce") == DONE
    mocked.replace(responses.POST, UNSUBSCRIBE, status=400, json={"message": "bad legal basis"})
    with pytest.raises(SourceError, match="bad legal basis"):
        pusher.push("a@example.com", "bounce")
    mocked.replace(responses.POST, UNSUBSCRIBE, status=403, json={"message": "missing scopes"})
    with pytest.raises(AuthError, match="HUBSPOT_TOKEN"):
        pusher.push("a@example.com", "bounce")


def test_pushes_are_retried_by_the_http_layer(
    mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    mocked.post(UNSUBSCRIBE, status=503)
    mocked.post(UNSUBSCRIBE, status=429, json={"category": "RATE_LIMITS"},
                headers={"Retry-After": "2"})
    mocked.post(UNSUBSCRIBE, json={})
    assert hubspot(sleeps).push("a@example.com", "complaint") == DONE
    assert len(mocked.calls) == 3 and len(sleeps) == 2


def test_brevo_blacklists_without_creating(mocked: responses.RequestsMock, sleeps: Sleeps) -> None:
    path = re.compile(re.escape(BREVO) + r"/v3/contacts/.*")
    mocked.put(path, status=204)
    assert brevo(sleeps).push("jean+club@example.com", "unsubscribe") == DONE
    call = mocked.calls[0].request
    assert call.url == BREVO + "/v3/contacts/jean%2Bclub%40example.com?identifierType=email_id"
    assert call.method == "PUT" and call.headers["api-key"] == "xkeysib-secret"
    assert json.loads(call.body or b"") == {"emailBlacklisted": True}
    mocked.replace(responses.PUT, path, status=404,
                   json={"code": "document_not_found", "message": "Contact does not exist"})
    assert brevo(sleeps).push("ghost@example.com", "bounce") == NOT_FOUND


def seed(store: Store) -> None:
    """Contacts synced from HubSpot, and suppressions of every kind."""
    with store.transaction() as conn:
        upsert_contacts(conn, [
            Contact("bounced@example.com", "hubspot", crm_id="1"),
            Contact("complained@example.com", "hubspot", crm_id="2"),
            Contact("optedout@example.com", "hubspot", crm_id="3", opted_out=True),
            Contact("crmonly@example.com", "hubspot", crm_id="4", opted_out=True),
            Contact("fromcsv@example.com", "csv"),
        ])
        add_suppression(conn, "bounced@example.com", "hard bounce", "bounce")
        add_suppression(conn, "complained@example.com", "spam", "complaint")
        add_suppression(conn, "complained@example.com", "link", "unsubscribe")
        add_suppression(conn, "optedout@example.com", "link", "unsubscribe")
        add_suppression(conn, "fromcsv@example.com", "link", "unsubscribe")
        add_suppression(conn, "nobody@example.com", "by hand", "unsubscribe")


def pushes(store: Store) -> dict[str, tuple[str, str]]:
    with store.transaction() as conn:
        return {r.email: (r.source, r.outcome) for r in conn.execute(select(crm_pushes))}


def test_each_suppression_is_pushed_once_and_unknown_contacts_are_reported(
    mocked: responses.RequestsMock, sleeps: Sleeps, settings: Settings, store: Store
) -> None:
    seed(store)
    mocked.post(UNSUBSCRIBE, json={})
    report = push_suppressions(settings, store, hubspot(sleeps))
    sent = sorted(json.loads(c.request.body or b"")["emailAddress"] for c in mocked.calls)
    # 'crm' suppressions and addresses HubSpot has opted out already are not pushed.
    assert sent == ["bounced@example.com", "complained@example.com"]
    assert (report.pushed, report.known, report.failed) == (2, 1, 0)
    assert sorted(report.not_found) == ["fromcsv@example.com", "nobody@example.com"]
    assert pushes(store) == {
        "bounced@example.com": ("bounce", "done"),
        "complained@example.com": ("complaint", "done"),  # the stronger reason is kept
        "optedout@example.com": ("unsubscribe", "known"),
        "fromcsv@example.com": ("unsubscribe", "not_found"),
        "nobody@example.com": ("unsubscribe", "not_found"),
    }
    again = push_suppressions(settings, store, hubspot(sleeps))
    assert len(mocked.calls) == 2 and again.counts()["pushed"] == 0 and not again.not_found
    # The contact shows up in HubSpot later: the next write-back tells it.
    with store.transaction() as conn:
        upsert_contacts(conn, [Contact("nobody@example.com", "hubspot", crm_id="9")])
    later = push_suppressions(settings, store, hubspot(sleeps))
    assert later.pushed == 1 and pushes(store)["nobody@example.com"] == ("unsubscribe", "done")


def test_failed_pushes_are_not_recorded_and_go_again_next_time(
    mocked: responses.RequestsMock, sleeps: Sleeps, settings: Settings, store: Store
) -> None:
    seed(store)
    mocked.post(UNSUBSCRIBE, status=400, json={"message": "invalid subscription id"})
    report = push_suppressions(settings, store, hubspot(sleeps))
    assert report.failed == 2 and report.status == "partial"
    assert "bounced@example.com" not in pushes(store)
    mocked.replace(responses.POST, UNSUBSCRIBE, json={})
    assert push_suppressions(settings, store, hubspot(sleeps)).pushed == 2


def test_sync_push_records_a_crm_push_run(
    mocked: responses.RequestsMock, sleeps: Sleeps, settings: Settings, store: Store
) -> None:
    seed(store)
    mocked.post(UNSUBSCRIBE, json={})
    report = jobs.crm_push(settings, store, pusher=hubspot(sleeps))
    assert report.pushed == 2
    with pytest.raises(Exception, match="no CRM to write back to"):
        jobs.crm_push(settings, store)  # CLUBJAPON_CRM=csv

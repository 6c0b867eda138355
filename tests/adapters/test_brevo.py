"""Brevo adapter against `responses`, answered by the fake Brevo (no socket)."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from clubjapon_ops.contacts import normalise
from clubjapon_ops.crm.base import Page
from clubjapon_ops.crm.brevo import CLOCK_MARGIN_S, Bookmark, BrevoSource, brevo_time
from clubjapon_ops.errors import AuthError, InvalidContact, SourceError
from clubjapon_ops.http.client import HttpClient
from clubjapon_ops.http.pacing import Pacer
from clubjapon_ops.http.vendors import brevo_api
from tests.adapters.conftest import FAST, Sleeps, bridge
from tests.fakes.brevo_crm import API_KEY, CONTACTS, FakeBrevo
from tests.fakes.server import Clock, Reply, Request

BASE = "https://api.brevo.test"
NOW_S = 1_900_000_000.0


@pytest.fixture
def fake(mocked: responses.RequestsMock) -> FakeBrevo:
    api = FakeBrevo(clock=Clock())  # distinct dates: "changed after cut" is unambiguous
    mocked.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/.*"), callback=bridge(api))
    return api


def source(sleeps: Sleeps, key: str = API_KEY, **options: Any) -> BrevoSource:
    client = HttpClient(brevo_api(key, BASE), retry=FAST, sleep=sleeps)
    options.setdefault("clock", lambda: NOW_S)
    return BrevoSource(client, **options)


def fill(fake: FakeBrevo, n: int) -> list[str]:
    return [str(fake.add(f"membre{i}@example.fr", FIRSTNAME=f"P{i}")) for i in range(n)]


def ids(pages: list[Page]) -> list[str]:
    return [str(r.crm_id) for p in pages for r in p.records]


def offsets(fake: FakeBrevo) -> list[int]:
    return [int(r.query["offset"]) for r in fake.requests_to("GET", CONTACTS)]


def test_a_full_pass_pages_by_offset_re_reading_a_few_contacts(
    fake: FakeBrevo, sleeps: Sleeps
) -> None:
    expected = fill(fake, 2500)
    pages = list(source(sleeps).pages(None, full=True))
    assert ids(pages) == expected
    assert offsets(fake) == [0, 990, 1980]
    queries = fake.requests_to("GET", CONTACTS)
    assert all(q.query["limit"] == "1000" and q.query["sort"] == "asc" for q in queries)
    assert all("modifiedSince" not in q.query for q in queries)
    middle = json.loads(pages[0].bookmark or "")
    assert middle["since"] is None and middle["pass"]["offset"] == 1000
    assert middle["pass"]["tail"] == expected[990:1000]
    started_ms = int(NOW_S * 1000)
    assert json.loads(pages[-1].bookmark or "") == {
        "since": brevo_time(started_ms - int(CLOCK_MARGIN_S * 1000))}


def test_an_incremental_pass_asks_for_changes_since_the_bookmark(
    fake: FakeBrevo, sleeps: Sleeps, mocked: responses.RequestsMock
) -> None:
    everyone = fill(fake, 30)
    cut = fake.clock()
    for ident in everyone[5:12]:
        fake.update(int(ident), FIRSTNAME="Changed")
    since = brevo_time(cut)
    pages = list(source(sleeps).pages(Bookmark(since=since).dump(), full=False))
    assert ids(pages) == everyone[5:12]
    url = mocked.calls[0].request.url or ""
    assert parse_qs(urlsplit(url).query)["modifiedSince"] == [since]
    assert re.search(r"modifiedSince=\d{4}-\d\d-\d\dT\d\d%3A\d\d%3A\d\d\.\d{3}Z", url)


def test_attributes_are_mapped_by_configured_names(fake: FakeBrevo, sleeps: Sleeps) -> None:
    fake.add("Kenji@Example.jp", blacklisted=True, PRENOM="Kenji", NOM="Sato",
             SOCIETE="Hokuto", LANGUE="日本語", VILLE="Lille")
    attributes = {"first_name": "PRENOM", "last_name": "NOM", "company": "SOCIETE",
                  "language": "LANGUE"}
    (page,) = list(source(sleeps, attributes=attributes).pages(None, full=True))
    contact = normalise(page.records[0])
    assert (contact.email, contact.first_name, contact.last_name, contact.company) == (
        "kenji@example.jp", "Kenji", "Sato", "Hokuto")
    assert (contact.language, contact.opted_out, contact.crm_id) == ("ja", True, "1")
    assert contact.attributes == {"VILLE": "Lille"}


def test_the_usual_name_attributes_are_mapped_by_default(fake: FakeBrevo, sleeps: Sleeps) -> None:
    fake.add("a@example.org", FIRST_NAME="Anna", LAST_NAME="Smith")  # Brevo's example contact
    fake.add("b@example.fr", PRENOM="Benoît", NOM="Martin", SOCIETE="Hokuto", LANGUE="fr")
    fake.add("c@example.org", FIRSTNAME="Chika", LASTNAME="Sato", COMPANY="Kaze")
    # Two spellings on one contact: the first in the mapping wins, the other stays raw.
    fake.add("d@example.org", FIRSTNAME="Daiki", PRENOM="Daïki")
    (page,) = list(source(sleeps).pages(None, full=True))
    got = [(r.first_name, r.last_name, r.company, r.language, r.attributes)
           for r in page.records]
    assert got == [("Anna", "Smith", None, None, {}),
                   ("Benoît", "Martin", "Hokuto", "fr", {}),
                   ("Chika", "Sato", "Kaze", None, {}),
                   ("Daiki", None, None, None, {"PRENOM": "Daïki"})]


def test_a_full_sync_warns_once_about_mapped_attributes_it_never_saw(
    fake: FakeBrevo, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(25):
        fake.add(f"m{i}@example.org", VORNAME=f"V{i}", NACHNAME="N", COMPANY="K")
    caplog.set_level("WARNING", logger="clubjapon_ops.crm.brevo")
    pages = list(source(sleeps, limit=10, overlap=2).pages(None, full=True))
    assert len(pages) == 3
    warnings = [r for r in caplog.records if "never appeared" in r.getMessage()]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "first_name (FIRSTNAME|FIRST_NAME|PRENOM|FNAME)" in text
    assert "last_name" in text and "language" in text and "company" not in text
    assert "NACHNAME" in text and "VORNAME" in text and "V1" not in text  # names, no values
    caplog.clear()
    list(source(sleeps, limit=10, overlap=2).pages(pages[-1].bookmark, full=False))
    assert not [r for r in caplog.records if "never appeared" in r.getMessage()]


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"x-sib-ratelimit-reset": "3", "x-sib-ratelimit-remaining": "0"}, 3.0),
     ({"Retry-After": "5"}, 5.0),
     ({}, 1.0)],
    ids=["x-sib-ratelimit-reset", "retry-after-only", "no-hint-backoff"],
)
def test_a_429_waits_as_told_then_succeeds(
    fake: FakeBrevo, sleeps: Sleeps, headers: dict[str, str], wait: float
) -> None:
    fill(fake, 5)
    fake.inject(Reply(429, {"code": "too_many_requests", "message": "slow"}, headers))
    assert len(ids(list(source(sleeps).pages(None, full=True)))) == 5
    assert sleeps[0] == wait


def test_three_server_errors_then_success(fake: FakeBrevo, sleeps: Sleeps) -> None:
    fill(fake, 5)
    fake.inject(Reply(500), Reply(502), Reply(503))
    assert len(ids(list(source(sleeps).pages(None, full=True)))) == 5
    assert sleeps == [1.0, 2.0, 4.0]


def test_refused_key_is_fatal_and_not_retried(fake: FakeBrevo, sleeps: Sleeps) -> None:
    with pytest.raises(AuthError, match="check BREVO_API_KEY") as info:
        list(source(sleeps, key="xkeysib-wrong-key").pages(None, full=True))
    assert "wrong-key" not in str(info.value)
    assert fake.counts["requests"] == 1 and sleeps == []


@pytest.mark.parametrize(
    "broken",
    [Reply(200, raw=b"Service Unavailable"), Reply(200, {"contacts": {"id": 1}}),
     Reply(200, ["contacts"])],
    ids=["not-json", "contacts-not-a-list", "answer-not-an-object"],
)
def test_a_malformed_page_is_retried_like_a_5xx(
    fake: FakeBrevo, sleeps: Sleeps, broken: Reply
) -> None:
    fill(fake, 3)
    fake.inject(broken)
    assert len(ids(list(source(sleeps).pages(None, full=True)))) == 3
    fake.inject(*[broken] * FAST.attempts)
    with pytest.raises(SourceError, match="gave up after 4 attempts"):
        list(source(sleeps).pages(None, full=True))


def test_records_with_missing_fields_are_rejected_or_fail_normalisation(
    fake: FakeBrevo, sleeps: Sleeps
) -> None:
    fake.inject(Reply(200, {"count": 5, "contacts": [
        42,
        {"email": "noid@example.fr"},
        {"id": 3, "email": "a@example.fr", "attributes": ["FIRSTNAME"]},
        {"id": 4, "attributes": {"SMS": "+33600000000"}},
        {"id": 5, "email": "b@example.fr", "emailBlacklisted": "maybe"},
        {"id": 6, "email": "c@example.fr"},
    ]}))
    (page,) = list(source(sleeps).pages(None, full=True))
    assert page.rejected == [("brevo result 0", "record is not an object"),
                             ("brevo result 1", "record has no id"),
                             ("brevo 3", "attributes is not an object")]
    outcomes = []
    for raw in page.records:
        try:
            outcomes.append(normalise(raw).email)
        except InvalidContact as exc:
            outcomes.append(f"{exc.ref}: {exc.reason}")
    assert outcomes == ["brevo 4: no email address",
                        "brevo 5: opt-out is not a yes/no value: 'maybe'", "c@example.fr"]


def test_sms_only_contacts_are_skipped_with_a_reason_of_their_own(
    fake: FakeBrevo, sleeps: Sleeps
) -> None:
    # Brevo gives a contact without an address "a fictitious email address ...
    # [PHONE_NUMBER]@mailin-sms.com" (help.brevo.com/hc/en-us/articles/208724009).
    fake.add("yui@example.jp", FIRSTNAME="Yui")
    sms = fake.add("33612345678@mailin-sms.com", SMS="+33612345678")
    shouting = fake.add(" 13604529038@MAILIN-SMS.COM ", SMS="+13604529038")
    fake.add("someone@mailin-sms.com.example.org", FIRSTNAME="Not a placeholder")
    (page,) = list(source(sleeps).pages(None, full=True))
    assert page.rejected == [(f"brevo {sms}", "SMS-only contact: placeholder address"),
                             (f"brevo {shouting}", "SMS-only contact: placeholder address")]
    assert [r.email for r in page.records] == ["yui@example.jp",
                                               "someone@mailin-sms.com.example.org"]


@pytest.mark.parametrize(
    ("deleted", "steps_back"),
    [(range(2, 5), False), (range(10, 20), True)],
    ids=["fewer-than-the-overlap", "more-than-the-overlap"],
)
def test_deletions_while_paging_shift_offsets_without_losing_anyone(
    fake: FakeBrevo, sleeps: Sleeps, deleted: range, steps_back: bool
) -> None:
    everyone = fill(fake, 60)
    gone = {everyone[i] for i in deleted}

    def delete_after_the_first_page(request: Request) -> None:
        if len(fake.requests_to("GET", CONTACTS)) == 2:
            for ident in gone:
                fake.delete(int(ident))

    fake.before = delete_after_the_first_page
    pages = list(source(sleeps, limit=20, overlap=5).pages(None, full=True))
    got = Counter(ids(pages))
    assert set(everyone) - gone <= set(got)  # nobody who still exists is missed
    assert max(got.values()) == (2 if steps_back else 1)  # stepping back only repeats
    assert (0 in offsets(fake)[1:]) == steps_back


def test_a_contact_that_starts_matching_mid_pass_only_repeats_others(
    fake: FakeBrevo, sleeps: Sleeps
) -> None:
    everyone = fill(fake, 60)
    cut = fake.clock()
    for ident in everyone[20:]:
        fake.update(int(ident), FIRSTNAME="Changed")

    def change_an_early_one(request: Request) -> None:
        if len(fake.requests_to("GET", CONTACTS)) == 2:
            fake.update(int(everyone[0]), FIRSTNAME="Late")  # appears before our offset

    fake.before = change_an_early_one
    pages = list(source(sleeps, limit=10, overlap=3).pages(
        Bookmark(since=brevo_time(cut)).dump(), full=False))
    got = Counter(ids(pages))
    assert set(everyone[20:]) <= set(got) and max(got.values()) == 1
    # The late change is after the pass's start: the next window (from that start) has it.
    assert json.loads(pages[-1].bookmark or "")["since"] <= brevo_time(int(NOW_S * 1000))


def test_a_pass_resumes_from_its_bookmark(fake: FakeBrevo, sleeps: Sleeps) -> None:
    everyone = fill(fake, 45)
    first = next(source(sleeps, limit=20, overlap=5).pages(None, full=True))
    rest = list(source(sleeps, limit=20, overlap=5).pages(first.bookmark, full=True))
    assert ids([first, *rest]) == everyone
    assert offsets(fake)[1] == 15  # resumed at its offset, less the overlap


def test_an_exhausted_window_is_waited_out_before_the_next_call(
    mocked: responses.RequestsMock, sleeps: Sleeps
) -> None:
    # The fake's window and the pacer share one virtual clock, moved by our waits only.
    fake = FakeBrevo(per_window=2, window_s=3.0, monotonic=sleeps.clock)
    mocked.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/.*"), callback=bridge(fake))
    fill(fake, 80)  # six calls of 20 (re-reading 5) and one for the lists: four windows
    client = HttpClient(brevo_api(API_KEY, BASE), retry=FAST, sleep=sleeps,
                        pacer=Pacer(sleep=sleeps, clock=sleeps.clock))
    list(BrevoSource(client, limit=20, overlap=5, clock=lambda: NOW_S).pages(None, full=True))
    assert fake.counts["429"] == 0
    # Each second call leaves 0 and says the window resets in 3 s: the pacer waits it out.
    assert sleeps == [3.0, 3.0, 3.0]

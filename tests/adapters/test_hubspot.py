"""HubSpot adapter against `responses`, answered by the fake HubSpot (no socket)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from clubjapon_ops.contacts import normalise
from clubjapon_ops.crm.base import Page
from clubjapon_ops.crm.hubspot import (
    INDEX_LAG_S,
    PROPERTIES,
    SEARCH_INTERVAL_S,
    Bookmark,
    HubSpotSource,
)
from clubjapon_ops.errors import AuthError, InvalidContact, SourceError, StopRun
from clubjapon_ops.http.client import HttpClient
from clubjapon_ops.http.pacing import Pacer
from clubjapon_ops.http.vendors import hubspot_api
from tests.adapters.conftest import FAST, Sleeps, bridge
from tests.fakes.hubspot_crm import BASE_MS, LIST, SEARCH, TOKEN, FakeHubSpot, Limits
from tests.fakes.server import Reply

BASE = "https://api.hubapi.test"
NOW_S = 1_767_225_600.0  # 2026-01-01: long after every generated change
LAG_MS = int(INDEX_LAG_S * 1000)


@pytest.fixture
def fake(mocked: responses.RequestsMock) -> FakeHubSpot:
    api = FakeHubSpot()
    answer = bridge(api)
    for method in (responses.GET, responses.POST):
        mocked.add_callback(method, re.compile(re.escape(BASE) + r"/.*"), callback=answer)
    return api


def source(sleeps: Sleeps, token: str = TOKEN, **options: Any) -> HubSpotSource:
    client = HttpClient(hubspot_api(token, BASE), retry=FAST, sleep=sleeps)
    options.setdefault("clock", lambda: NOW_S)
    return HubSpotSource(client, **options)


def drain(pages: Iterator[Page]) -> list[Page]:
    return list(pages)


def ids(pages: list[Page]) -> list[str]:
    return [str(r.crm_id) for p in pages for r in p.records]


def changed_since(fake: FakeHubSpot, n: int, *, start_ms: int, same: int = 1) -> list[str]:
    """Change n contacts at start_ms onwards, ``same`` of them per millisecond."""
    contacts = fake.live()[:n]
    for i, contact in enumerate(contacts):
        fake.update(contact.id, updated_ms=start_ms + i // same, firstname=f"New{i}")
    return [str(c.id) for c in sorted(contacts, key=lambda c: (c.updated_ms, c.id))]


def test_full_sync_pages_through_the_cursor_to_the_end(fake: FakeHubSpot, sleeps: Sleeps) -> None:
    fake.generate(250)
    pages = drain(source(sleeps, extra_properties=["jobtitle"]).pages(None, full=True))
    assert ids(pages) == [str(c.id) for c in fake.live()]
    lists = fake.requests_to("GET", LIST)
    assert [r.query.get("after") for r in lists] == [None, "1101", "1201"]
    assert all(r.query["limit"] == "100" and r.query["archived"] == "false" for r in lists)
    assert lists[0].query["properties"].split(",") == [*PROPERTIES, "jobtitle"]
    marks = [json.loads(p.bookmark or "") for p in pages]
    started = int(NOW_S * 1000)
    assert marks[:2] == [{"since": None, "full": {"after": "1101", "started": started}},
                         {"since": None, "full": {"after": "1201", "started": started}}]
    assert marks[2] == {"since": started - LAG_MS}


def test_records_map_the_hubspot_properties(fake: FakeHubSpot, sleeps: Sleeps) -> None:
    fake.add("Aiko@Example.org", firstname="Aiko", lastname="Tanaka", company="Sakura",
             hs_language="ja", hs_email_optout="true", jobtitle="CEO", updated_ms=BASE_MS)
    (page,) = drain(source(sleeps, extra_properties=["jobtitle"]).pages(None, full=True))
    contact = normalise(page.records[0])
    assert (contact.email, contact.first_name, contact.last_name, contact.company) == (
        "aiko@example.org", "Aiko", "Tanaka", "Sakura")
    assert (contact.language, contact.opted_out, contact.crm_id) == ("ja", True, "1001")
    assert contact.attributes == {"jobtitle": "CEO"}
    assert contact.crm_updated_at is not None
    assert int(contact.crm_updated_at.timestamp() * 1000) == BASE_MS


def test_a_full_sync_resumes_from_its_saved_cursor(fake: FakeHubSpot, sleeps: Sleeps) -> None:
    fake.generate(250)
    first = next(source(sleeps).pages(None, full=True))
    rest = drain(source(sleeps, clock=lambda: NOW_S + 999).pages(first.bookmark, full=True))
    assert ids([first, *rest]) == [str(c.id) for c in fake.live()]
    # The pass keeps its original start: the next incremental window starts there.
    assert json.loads(rest[-1].bookmark or "") == {"since": int(NOW_S * 1000) - LAG_MS}


def test_a_cursor_that_comes_back_stops_instead_of_looping(
    fake: FakeHubSpot, sleeps: Sleeps
) -> None:
    fake.generate(300)
    fake.repeat_cursor = "1101"
    pages = source(sleeps).pages(None, full=True)
    first = next(pages)
    with pytest.raises(SourceError, match="cursor '1101' a second time"):
        next(pages)
    assert len(first.records) == 100
    assert len(fake.requests_to("GET", LIST)) == 2


def test_incremental_searches_changes_in_date_order(fake: FakeHubSpot, sleeps: Sleeps) -> None:
    fake.generate(1000)
    since = BASE_MS + 10_000
    expected = changed_since(fake, 450, start_ms=since + 5)
    pages = drain(source(sleeps).pages(Bookmark(since_ms=since).dump(), full=False))
    assert ids(pages) == expected
    searches = fake.requests_to("POST", SEARCH)
    assert searches[0].body == {
        "filterGroups": [{"filters": [
            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since)}]}],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": list(PROPERTIES),
        "limit": 200,
    }
    # Each later page re-reads the previous page's last result to check nothing moved.
    assert [s.body.get("after") for s in searches] == [None, "199", "398"]
    last_dates = [json.loads(p.bookmark or "")["since"] for p in pages]
    assert last_dates[:2] == [since + 5 + 199, since + 5 + 398]
    assert last_dates[2] == int(NOW_S * 1000) - LAG_MS


def test_search_calls_are_spaced_by_a_fifth_of_a_second(fake: FakeHubSpot, sleeps: Sleeps) -> None:
    fake.generate(500)
    changed_since(fake, 450, start_ms=BASE_MS + 10_000)
    # Search is limited to 5 calls a second and sends no rate-limit headers.
    pacer = Pacer(min_interval=SEARCH_INTERVAL_S, sleep=sleeps, clock=sleeps.clock)
    drain(source(sleeps, search_pacer=pacer).pages(Bookmark(since_ms=BASE_MS).dump(),
                                                    full=False))
    assert sleeps == [pytest.approx(0.2)] * 2


@pytest.mark.parametrize("same", [1, 3], ids=["distinct-dates", "dates-shared-by-three"])
def test_past_the_10k_search_cap_a_new_query_starts_from_the_last_date_seen(
    fake: FakeHubSpot, sleeps: Sleeps, same: int
) -> None:
    fake.generate(10_450)
    since = BASE_MS + 20_000
    expected = changed_since(fake, 10_450, start_ms=since, same=same)
    pages = drain(source(sleeps).pages(Bookmark(since_ms=since).dump(), full=False))
    assert Counter(ids(pages)) == Counter(expected)  # every change, none twice
    searches = fake.requests_to("POST", SEARCH)
    windows = [s.body["filterGroups"][0]["filters"][0]["value"] for s in searches
               if "after" not in s.body]
    assert len(windows) == 2 and int(windows[1]) > since
    assert max(int(s.body.get("after", 0)) + s.body["limit"] for s in searches) <= 10_000
    assert fake.counts["429"] == 0


def test_more_contacts_on_one_date_than_the_cap_stop_with_a_clear_error(
    fake: FakeHubSpot, sleeps: Sleeps
) -> None:
    fake.generate(60)
    changed_since(fake, 60, start_ms=BASE_MS + 500, same=60)
    pages = source(sleeps, search_limit=10, search_cap=50).pages(
        Bookmark(since_ms=BASE_MS + 500).dump(), full=False)
    with pytest.raises(SourceError, match="share the same lastmodifieddate"):
        drain(pages)


def test_results_that_move_while_paging_restart_the_query_and_none_is_missed(
    fake: FakeHubSpot, sleeps: Sleeps
) -> None:
    fake.generate(30)
    since = BASE_MS + 1000
    order = changed_since(fake, 30, start_ms=since)
    moved = order[2]

    def change_during_paging(request: Any) -> None:
        if request.path == SEARCH and len(fake.requests_to("POST", SEARCH)) == 2:
            fake.update(int(moved), updated_ms=since + 500)  # jumps to the end of the order

    fake.before = change_during_paging
    pages = drain(source(sleeps, search_limit=10).pages(Bookmark(since_ms=since).dump(),
                                                          full=False))
    got = Counter(ids(pages))
    # Without the overlap check the contact after the page boundary would be skipped.
    assert set(got) == set(order) and got[order[10]] == 1
    assert got[moved] == 2  # its old version, then its new one
    assert sum(got.values()) == 31


@pytest.mark.parametrize(
    ("reply", "wait"),
    [
        (Reply(429, {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
               {"Retry-After": "2"}), 2.0),
        (Reply(429, {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
               {"X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "0",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}), 10.0),
        (Reply(429, {"errorType": "RATE_LIMIT", "policyName": "SECONDLY"}), 1.0),
        (Reply(429, {"status": "error"}), 1.0),
    ],
    ids=["retry-after-header", "rolling-window-headers", "secondly-policy", "no-hint-backoff"],
)
def test_a_429_waits_as_told_then_succeeds(
    fake: FakeHubSpot, sleeps: Sleeps, reply: Reply, wait: float
) -> None:
    fake.generate(50)
    fake.inject(reply)
    (page,) = drain(source(sleeps).pages(None, full=True))
    assert len(page.records) == 50
    # (The pacer may add a short wait: recorded sleeps let no real time pass.)
    assert sleeps[0] == wait


def test_the_daily_limit_stops_the_run_without_retrying(fake: FakeHubSpot, sleeps: Sleeps) -> None:
    fake.generate(50)
    fake.inject(Reply(429, {"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY"}))
    with pytest.raises(StopRun, match="daily API limit"):
        drain(source(sleeps).pages(None, full=True))
    assert fake.counts["requests"] == 1 and sleeps == []


def test_three_server_errors_then_success(fake: FakeHubSpot, sleeps: Sleeps) -> None:
    fake.generate(150)
    fake.inject(Reply(500), Reply(502), Reply(503), path=LIST)
    assert len(ids(drain(source(sleeps).pages(None, full=True)))) == 150
    assert sleeps == [1.0, 2.0, 4.0]


def test_refused_token_is_fatal_and_not_retried(fake: FakeHubSpot, sleeps: Sleeps) -> None:
    fake.generate(10)
    with pytest.raises(AuthError, match="check HUBSPOT_TOKEN") as info:
        drain(source(sleeps, token="pat-na1-wrong-token").pages(None, full=True))
    assert "wrong-token" not in str(info.value)
    assert fake.counts["requests"] == 1 and sleeps == []


@pytest.mark.parametrize(
    "broken",
    [Reply(200, raw=b"<html>502 Bad Gateway</html>"), Reply(200, {"results": "none"}),
     Reply(200, {"results": [], "paging": {"next": {}}})],
    ids=["not-json", "results-not-a-list", "paging-without-cursor"],
)
def test_a_malformed_page_is_retried_like_a_5xx(
    fake: FakeHubSpot, sleeps: Sleeps, broken: Reply
) -> None:
    fake.generate(20)
    fake.inject(broken)
    assert len(ids(drain(source(sleeps).pages(None, full=True)))) == 20
    assert sleeps == [1.0]
    fake.inject(*[broken] * FAST.attempts)
    with pytest.raises(SourceError, match="gave up after 4 attempts"):
        drain(source(sleeps).pages(None, full=True))


def test_records_with_missing_fields_are_rejected_or_fail_normalisation(
    fake: FakeHubSpot, sleeps: Sleeps
) -> None:
    fake.inject(Reply(200, {"results": [
        "not an object",
        {"properties": {"email": "a@example.org"}},
        {"id": "7"},
        {"id": "8", "properties": {"firstname": "No Email"}},
        {"id": "9", "properties": {"email": "b@example.org", "firstname": {"x": 1}}},
        {"id": "10", "properties": {"email": "c@example.org"}},
    ]}))
    (page,) = drain(source(sleeps).pages(None, full=True))
    assert page.rejected == [("hubspot result 0", "record is not an object"),
                             ("hubspot result 1", "record has no id"),
                             ("hubspot 7", "record has no properties")]
    reasons = []
    for raw in page.records:
        try:
            normalise(raw)
            reasons.append("ok")
        except InvalidContact as exc:
            reasons.append(f"{exc.ref}: {exc.reason}")
    assert reasons == ["hubspot 8: no email address",
                       "hubspot 9: first name is a dict, expected text", "ok"]


def test_requests_are_paced_from_the_rate_limit_headers(fake: FakeHubSpot, sleeps: Sleeps) -> None:
    fake.limits = Limits(per_window=1000, window_s=100.0)  # 10 a second, as HubSpot's free tier
    fake.generate(400)
    client = HttpClient(hubspot_api(TOKEN, BASE), retry=FAST, sleep=sleeps,
                        pacer=Pacer(sleep=sleeps, clock=sleeps.clock))
    drain(HubSpotSource(client, clock=lambda: NOW_S).pages(None, full=True))
    assert sleeps == [pytest.approx(0.1 / 0.95)] * 3  # 95% of the advertised rate
    assert fake.counts["429"] == 0


@pytest.mark.parametrize(
    "text",
    ["not json", '{"since": "yesterday"}', '{"since": 1, "full": {"after": 5}}'],
    ids=["not-json", "since-not-a-number", "cursor-without-start"],
)
def test_an_unreadable_bookmark_stops_with_advice(sleeps: Sleeps, text: str) -> None:
    with pytest.raises(SourceError, match="sync --full"):
        source(sleeps).pages(text, full=False)


def test_results_that_keep_moving_stop_the_sync_instead_of_spinning(
    fake: FakeHubSpot, sleeps: Sleeps
) -> None:
    fake.generate(30)
    since = BASE_MS + 1000
    changed_since(fake, 30, start_ms=since, same=30)  # one date for all ...
    fake.unstable_ties = True  # ... and no stable order among them
    pages = source(sleeps, search_limit=10).pages(Bookmark(since_ms=since).dump(), full=False)
    with pytest.raises(SourceError, match="keep moving"):
        drain(pages)

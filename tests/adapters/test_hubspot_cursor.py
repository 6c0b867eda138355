"""HubSpot's list cursor goes back exactly as HubSpot's official Python client sends it.

``paging.next.after`` is an opaque token, and HubSpot's reference shows one that is already
percent-encoded: ``NTI1Cg%3D%3D``. The client (github.com/HubSpot/hubspot-api-python,
commit a2a528a97f4c1131d7f65d0303bfbd2e523a8eba, Apache-2.0) passes it on unchanged and lets
the URL encoding happen once: ``hubspot/crm/contacts/api/basic_api.py`` (``get_page``)
appends ``("after", after)`` to the query parameters as given, and
``hubspot/crm/contacts/rest.py`` hands them to urllib3 as ``fields=``, which urlencodes them.
So ``NTI1Cg%3D%3D`` goes out as ``after=NTI1Cg%253D%253D``, and HubSpot, decoding once, gets
its token back. Do not "fix" the double-looking ``%25``: decoding the token first, or
sending it unencoded, hands HubSpot a different token than the one it gave.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
import responses

from clubjapon_ops.crm.hubspot import LIST_PATH, Bookmark, HubSpotSource
from clubjapon_ops.http.client import HttpClient
from clubjapon_ops.http.vendors import hubspot_api
from tests.adapters.conftest import FAST, Sleeps
from tests.specs.validator import HERE

BASE = "https://api.hubapi.test"
# The cursor of HubSpot's own example (NextPage in tests/specs/hubspot/contacts-v3.json).
CURSOR: str = json.loads((HERE / "hubspot" / "contacts-v3.json").read_text(encoding="utf-8"))[
    "components"]["schemas"]["NextPage"]["example"]["after"]
CONTACT = {"id": "51", "properties": {"email": "yui@example.com"},
           "createdAt": "2025-10-01T08:00:00.000Z", "updatedAt": "2025-10-02T08:00:00.000Z",
           "archived": False}


def _pages(mocked: responses.RequestsMock, bookmark: str | None) -> list[str]:
    """Run a full sync over two pages; return the raw URLs it asked for."""

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        after = parse_qs(urlsplit(request.url or "").query).get("after")
        page: dict[str, Any] = {"results": [CONTACT]}
        if after is None:
            page["paging"] = {"next": {"after": CURSOR, "link": f"?after={CURSOR}"}}
        return 200, {}, json.dumps(page)

    mocked.add_callback(responses.GET, BASE + LIST_PATH, callback=answer)
    client = HttpClient(hubspot_api("pat-eu1-token", BASE), retry=FAST, sleep=Sleeps())
    list(HubSpotSource(client, clock=lambda: 1_767_225_600.0).pages(bookmark, full=True))
    return [call.request.url or "" for call in mocked.calls]


def test_the_documented_cursor_is_percent_encoded_once_more() -> None:
    assert CURSOR == "NTI1Cg%3D%3D"
    # What urllib3 does with the official client's ("after", cursor) parameter.
    assert urlencode([("after", CURSOR)]) == "after=NTI1Cg%253D%253D"


def test_the_next_page_sends_the_cursor_as_the_official_client_does(
    mocked: responses.RequestsMock,
) -> None:
    urls = _pages(mocked, None)
    assert len(urls) == 2
    assert "after=NTI1Cg%253D%253D" in urlsplit(urls[1]).query
    assert parse_qs(urlsplit(urls[1]).query)["after"] == [CURSOR]  # HubSpot decodes once


def test_a_saved_cursor_resumes_with_the_same_encoding(mocked: responses.RequestsMock) -> None:
    saved = Bookmark(since_ms=None, full_after=CURSOR, full_started_ms=1).dump()
    urls = _pages(mocked, saved)
    assert "after=NTI1Cg%253D%253D" in urlsplit(urls[0]).query

"""The spec check itself: it refuses what the vendors refuse, and knows every call we make."""

from __future__ import annotations

from typing import Any

import pytest

from clubjapon_ops.crm import brevo, hubspot, writeback
from clubjapon_ops.delivery.transports import brevo as brevo_mail
from clubjapon_ops.delivery.transports import sendgrid
from tests.specs.validator import check_request, check_response, find

SEARCH_BODY: dict[str, Any] = {
    "filterGroups": [{"filters": [
        {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}],
    "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
    "properties": ["email"], "limit": 200,
}
MAIL: dict[str, Any] = {
    "personalizations": [{"to": [{"email": "yui@example.com", "name": "Yui"}]}],
    "from": {"email": "club@example.org"}, "subject": "Lettre",
    "content": [{"type": "text/plain", "value": "Bonjour"}],
}
BREVO_MAIL: dict[str, Any] = {
    "sender": {"email": "club@example.org", "name": "Club Japon"}, "subject": "Lettre",
    "htmlContent": "<p>x</p>", "headers": {"idempotencyKey": "abc-123"},
    "messageVersions": [{"to": [{"email": "yui@example.com", "name": "Yui"}]}],
}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", hubspot.LIST_PATH),
    ("POST", hubspot.SEARCH_PATH),
    ("POST", writeback.HUBSPOT_UNSUBSCRIBE),
    ("GET", brevo.CONTACTS_PATH),
    ("PUT", writeback.BREVO_CONTACT.format("yui%40example.com")),
    ("POST", brevo_mail.PATH),
    ("POST", sendgrid.PATH),
])
def test_every_call_the_adapters_make_is_in_a_vendored_spec(method: str, path: str) -> None:
    operation, _, _ = find(method, path)
    assert operation is not None, f"{method} {path} is in no spec under tests/specs"


def test_conforming_requests_pass() -> None:
    assert check_request("POST", hubspot.SEARCH_PATH, {}, SEARCH_BODY) == []
    assert check_request("POST", sendgrid.PATH, {}, MAIL) == []
    assert check_request("POST", brevo_mail.PATH, {}, BREVO_MAIL) == []
    assert check_request("GET", hubspot.LIST_PATH,
                         {"limit": "100", "archived": "false", "after": "NTI1Cg%3D%3D",
                          "properties": "email,firstname"}, None) == []


@pytest.mark.parametrize(("path", "body", "expected"), [
    (sendgrid.PATH, {**MAIL, "subjet": "x"}, "'subjet' was unexpected"),
    (sendgrid.PATH, {k: v for k, v in MAIL.items() if k != "from"}, "'from' is a required"),
    (hubspot.SEARCH_PATH, {**SEARCH_BODY, "sorts": [{"propertyName": "x", "direction": "UP"}]},
     "body/sorts/*"),
    (hubspot.SEARCH_PATH, {**SEARCH_BODY, "filterGroups": [{"filters": [{"value": "1"}]}]},
     "'propertyName' is a required"),
    (brevo_mail.PATH, {**BREVO_MAIL, "messageVersions": [
        {"to": [{"email": "yui@example.com", "name": "N" * 71}]}]}, "is too long"),
    (brevo_mail.PATH, {**BREVO_MAIL, "messageVersions": [
        {"to": [{"email": f"r{i}@example.com"} for i in range(100)]}]}, "maxItems"),
    (sendgrid.PATH, {**MAIL, "personalizations": [
        {**MAIL["personalizations"][0], "substitutions": {"-name-": "N" * 10_001}}]},
     "bytes > 10,000"),
    (sendgrid.PATH, {**MAIL, "personalizations": [
        {**MAIL["personalizations"][0], "custom_args": {"delivery_id": 7}}]},
     "is not of type 'string'"),
    (brevo_mail.PATH, {**BREVO_MAIL, "messageVersions": [
        {"to": [{"email": "yui@example.com"}], "params": {"x": "y" * 100_001}}]}, "> 100 KB"),
    (writeback.HUBSPOT_UNSUBSCRIBE, {"emailAddress": "a@b.c", "subscriptionId": "1",
                                     "legalBasis": "BECAUSE"}, "legalBasis"),
])
def test_what_the_spec_refuses_is_refused(path: str, body: Any, expected: str) -> None:
    problems = check_request("POST", path, {}, body)
    assert any(expected in p for p in problems), problems


def test_query_parameters_are_checked_by_name_and_type() -> None:
    problems = check_request("GET", hubspot.LIST_PATH, {"limit": "ten", "archive": "false"}, None)
    assert any("'limit'" in p for p in problems) and any("'archive'" in p for p in problems)
    assert check_request("GET", brevo.CONTACTS_PATH, {"sort": "oldest"}, None)


def test_an_undocumented_method_on_a_vendor_path_is_refused() -> None:
    assert check_request("DELETE", sendgrid.PATH, {}, None)


def test_paths_that_are_no_vendor_s_are_not_checked() -> None:
    assert check_request("GET", "/__fake/stats", {"x": "1"}, None) == []


def test_answers_are_checked_leniently() -> None:
    page = {"results": [{"id": "1", "properties": {"email": None}, "createdAt": "x",
                         "updatedAt": "y", "archived": False, "extra": 1}]}
    assert check_response("GET", hubspot.LIST_PATH, 200, page) == []
    assert check_response("GET", hubspot.LIST_PATH, 200, {"paging": {}}) != []

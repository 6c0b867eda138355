"""The vendors' own examples, taken from their specs and clients, are accepted by our adapters.

Brevo's examples come from the vendored document (tests/specs/brevo); SendGrid's signed
webhook request from its Python client's test (tests/specs/sendgrid/SOURCE.md); HubSpot's
cursor example is pinned in test_hubspot_cursor.py. A sample that our code refuses or
misreads fails here, whatever our fakes answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
import responses

from clubjapon_ops.crm.brevo import BrevoSource, parse_answer
from clubjapon_ops.delivery.transports import Status
from clubjapon_ops.delivery.transports.brevo import BrevoTransport
from clubjapon_ops.events import types as t
from clubjapon_ops.events.sendgrid import parse_body
from clubjapon_ops.events.signature import load_public_key, verify
from clubjapon_ops.http.client import HttpClient
from clubjapon_ops.http.vendors import brevo_api
from tests.adapters.conftest import FAST, Sleeps
from tests.specs.validator import HERE, check_response, documented_examples

BREVO = "https://api.brevo.test"


def _brevo_example(path: str, method: str) -> Any:
    examples = list(documented_examples("brevo", path, method))
    assert examples, f"Brevo's spec has no example answer for {method} {path}"
    return examples[0]


CONTACTS_EXAMPLE = _brevo_example("/contacts", "get")
SEND_EXAMPLE = _brevo_example("/smtp/email", "post")
SIGNED = json.loads(Path(HERE / "sendgrid" / "signed-event-webhook.json").read_text("utf-8"))


def _brevo_records(mocked: responses.RequestsMock) -> list[Any]:
    mocked.add(responses.GET, BREVO + "/v3/contacts", json=CONTACTS_EXAMPLE)
    # The example's listIds name lists this account does not have: left out, not an error.
    mocked.add(responses.GET, BREVO + "/v3/contacts/lists", json={"lists": [], "count": 0})
    client = HttpClient(brevo_api("xkeysib-test", BREVO), retry=FAST, sleep=Sleeps())
    pages = list(BrevoSource(client, clock=lambda: 1_900_000_000.0).pages(None, full=True))
    return [record for page in pages for record in page.records]


def test_the_examples_are_what_the_specs_describe() -> None:
    assert check_response("GET", "/v3/contacts", 200, CONTACTS_EXAMPLE) == []
    assert check_response("POST", "/v3/smtp/email", 201, SEND_EXAMPLE) == []


def test_brevo_s_example_contacts_page_is_read(mocked: responses.RequestsMock) -> None:
    assert len(parse_answer(CONTACTS_EXAMPLE)) == 2
    by_id = {str(r.crm_id): r for r in _brevo_records(mocked)}
    meg = by_id["247"]
    assert (meg.email, meg.opted_out) == ("contact1@example.com", True)
    assert meg.created_at == "2017-05-01T17:05:03Z" and meg.updated_at == "2017-05-01T17:05:03Z"


def test_brevo_s_sms_placeholder_contact_is_not_a_reader(mocked: responses.RequestsMock) -> None:
    emails = [r.email for r in _brevo_records(mocked)]
    assert not any(str(e).endswith("@mailin-sms.com") for e in emails)


def test_brevo_s_example_names_are_mapped(mocked: responses.RequestsMock) -> None:
    meg = next(r for r in _brevo_records(mocked) if str(r.crm_id) == "247")
    assert (meg.first_name, meg.last_name) == ("Meg", "Brennon")


def test_sendgrid_s_signed_webhook_sample_verifies_and_parses() -> None:
    body = SIGNED["body"].encode()
    key = load_public_key(SIGNED["public_key"])
    signed_at = int(SIGNED["timestamp"])
    assert verify(key, SIGNED["signature"], SIGNED["timestamp"], body, now=signed_at + 5)
    assert not verify(key, SIGNED["signature"], SIGNED["timestamp"], body + b" ",
                      now=signed_at + 5)
    [event] = parse_body(json.loads(body))
    assert event.type == t.HARD_BOUNCE  # dropped: "Bounced Address"
    assert event.event_key == "id:ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA"
    assert event.email == "hello@world.com"
    assert event.message_id is not None and event.message_id.startswith("LRzXl_NHStOGhQ4kofSm_A.")


def test_brevo_s_example_send_answer_queues_a_one_message_batch() -> None:
    # The transport's reading of the answer alone: the request is the spec check's business.
    answer = requests.Response()
    answer.status_code = 201
    answer._content = json.dumps(SEND_EXAMPLE).encode()
    group = [SimpleNamespace(id=7)]
    [result] = BrevoTransport._decode(answer, group, keyed=True)  # type: ignore[arg-type]
    assert (result.status, result.provider_id) == (Status.QUEUED, SEND_EXAMPLE["messageId"])

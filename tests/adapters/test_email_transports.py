"""Brevo and SendGrid transports against `responses`: batching, keys, retries, answers.

Brevo is answered by the fake Brevo email API through `responses` (no socket), so every
request is also checked against Brevo's rules and filled as Brevo would fill it; faults are
scripted on the fake or raised by the callback. SendGrid is answered from a script.
Retries never sleep: waits are recorded.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from clubjapon_ops import jobs
from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.transports import Outgoing, Result, Status, make_transport
from clubjapon_ops.delivery.transports.brevo import BrevoTransport
from clubjapon_ops.delivery.transports.sendgrid import SendGridTransport
from clubjapon_ops.errors import AuthError
from clubjapon_ops.http.client import Api, HttpClient, RetryPolicy
from clubjapon_ops.newsletter.service import Newsletter
from tests.adapters.conftest import Sleeps, bridge
from tests.conftest import REPO
from tests.delivery.conftest import SLUG, make_settings
from tests.fakes.brevo_email import API_KEY, SEND, FakeBrevoEmail
from tests.fakes.server import PASS, Reply

BREVO = "https://api.brevo.test"
SENDGRID = "https://api.sendgrid.test"
SENDGRID_KEY = "SG.test-key-0123456789abcdef"
MAIL_FROM = "Club Japon <club-japon@example.org>"
MAILTO = "mailto:club-japon@example.org?subject=unsubscribe"
# Four attempts, no waits: the backoff shape is the HTTP layer's business (test_http.py).
NO_WAIT = RetryPolicy(attempts=4, total_s=600.0, initial_wait_s=0.0, max_wait_s=0.0,
                      jitter_s=0.0)
LANGS = ("fr", "en", "ja")


# The edition, rendered once for the module ---------------------------------------------

@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(REPO / "config" / "editions", root / "config" / "editions")
    shutil.copytree(REPO / "templates", root / "templates")
    return root


@pytest.fixture(scope="module")
def newsletter(project: Path) -> Newsletter:
    return jobs.newsletter_for_sending(make_settings(project, CLUBJAPON_MAIL_FROM=MAIL_FROM),
                                       SLUG)


def batch(newsletter: Newsletter, n: int, langs: tuple[str, ...] = ("fr",), *,
          first_name: str | None = None, start: int = 0) -> list[Outgoing]:
    """n messages, languages in turn, ids start+1...; names Prénom<i> unless given."""
    out = []
    for i in range(start, start + n):
        contact = Contact(email=f"reader{i}@example.com", source="test",
                          first_name=first_name if first_name is not None else f"Prénom{i}",
                          last_name=f"Nom{i}", language=langs[i % len(langs)])
        out.append(Outgoing(id=i + 1, envelope_to=contact.email,
                            message=newsletter.personalise(contact, row=i + 1), edition=SLUG))
    return out


def production_api(project: Path, transport: str, **env: str) -> Api:
    """The Api object make_transport builds for this provider (auth header, base URL)."""
    settings = make_settings(project, CLUBJAPON_TRANSPORT=transport, **env)
    built = make_transport(settings, MimeBuilder(MAIL_FROM))
    assert isinstance(built, BrevoTransport | SendGridTransport)
    built.close()
    return built.client.api


def unpadded(html: str) -> str:
    """HTML without the base64 alignment padding (spaces right before a tag)."""
    return re.sub(r" +<", "<", html)


def tag(name: str) -> str:
    """A Brevo placeholder."""
    return "{{ params." + name + " }}"


def statuses(results: list[Result]) -> list[str]:
    return [r.status.value for r in results]


# Brevo ---------------------------------------------------------------------------------

class BrevoFront:
    """`responses` in front of the fake Brevo; it can lose answers or fail before sending."""

    def __init__(self, api: FakeBrevoEmail, mocked: responses.RequestsMock) -> None:
        self.api = api
        self.mocked = mocked
        self.lose = 0  # answers to lose after the fake took the request (read timeout)
        self.fail: deque[Exception] = deque()  # raised before the fake sees the request
        inner = bridge(api)

        def answer(prepared: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
            if self.fail:
                raise self.fail.popleft()
            reply = inner(prepared)
            if self.lose:
                self.lose -= 1
                raise requests.ReadTimeout("read timed out")
            return reply

        mocked.add_callback(responses.POST, BREVO + SEND, callback=answer)

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON body of every request, in order."""
        out = []
        for call in self.mocked.calls:
            raw = call.request.body
            out.append(json.loads(raw if isinstance(raw, bytes | str) else b"null"))
        return out

    def keys(self) -> list[str | None]:
        return [b["headers"].get("idempotencyKey") for b in self.bodies()]

    def sizes(self) -> list[int]:
        return [len(b["messageVersions"]) for b in self.bodies()]


@pytest.fixture
def brevo_api(project: Path) -> Api:
    return production_api(project, "brevo", BREVO_API_KEY=API_KEY, BREVO_BASE_URL=BREVO)


@pytest.fixture
def fake(mocked: responses.RequestsMock) -> FakeBrevoEmail:
    return FakeBrevoEmail()


@pytest.fixture
def front(fake: FakeBrevoEmail, mocked: responses.RequestsMock) -> BrevoFront:
    return BrevoFront(fake, mocked)


def brevo(api: Api, sleeps: Sleeps, retry: RetryPolicy = NO_WAIT) -> BrevoTransport:
    return BrevoTransport(HttpClient(api, timeout=5.0, retry=retry, sleep=sleeps), MAIL_FROM,
                          MAILTO)


def new_key() -> str:
    return str(uuid.uuid4())


@pytest.mark.parametrize(
    ("n", "langs", "sizes"),
    [
        (2500, ("fr",), [1000, 1000, 500]),
        (1000, ("fr",), [1000]),
        (1001, ("en",), [1000, 1]),
        (30, LANGS, [10, 10, 10]),
        (2400, LANGS, [800, 800, 800]),
    ],
    ids=["2500-one-language-3-calls", "1000-exactly-one-call", "1001-two-calls",
         "mixed-languages-one-call-each", "2400-mixed-800-per-language"],
)
def test_brevo_batches_at_most_1000_versions_per_call_and_one_language_per_call(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps, n: int, langs: tuple[str, ...], sizes: list[int],
) -> None:
    items = batch(newsletter, n, langs)
    results = brevo(brevo_api, sleeps).send(items, new_key())
    assert front.sizes() == sizes
    assert [r.id for r in results] == [i.id for i in items]  # one result per message, in order
    assert set(statuses(results)) == {"queued"}
    assert fake.invalid == [] and fake.unfilled == []
    assert fake.received() == {i.envelope_to: 1 for i in items}
    by_recipient = {d.recipient: d.message_id for d in fake.delivered}
    assert [r.provider_id for r in results] == [by_recipient[i.envelope_to] for i in items]
    lang_of = {i.envelope_to: i.message.lang for i in items}
    for body in front.bodies():
        call_langs = {lang_of[v["to"][0]["email"]] for v in body["messageVersions"]}
        assert len(call_langs) == 1
        (lang,) = call_langs
        assert body["subject"] == newsletter.rendered[lang].subject  # type: ignore[index]
    assert len(set(front.keys())) == len(sizes)  # a key per call


def test_brevo_splits_a_batch_whose_params_pass_900_kb(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    # About 10 KB of params per version (the name is in greeting and greeting_html).
    items = batch(newsletter, 150, first_name="N" * 5000)
    results = brevo(brevo_api, sleeps).send(items, new_key())
    params = [sum(len(json.dumps(v["params"])) for v in b["messageVersions"])
              for b in front.bodies()]
    assert sum(params) > 900 * 1024  # the case is real: it would not fit in one call
    assert len(params) == 2 and all(p <= 900 * 1024 for p in params)
    assert params[0] > 800 * 1024  # filled before splitting, not split needlessly
    recipients = [v["to"][0]["email"] for b in front.bodies() for v in b["messageVersions"]]
    assert recipients == [i.envelope_to for i in items]
    assert fake.invalid == [] and set(statuses(results)) == {"queued"}
    assert fake.received() == {i.envelope_to: 1 for i in items}


def test_brevo_idempotency_keys_are_uuids_stable_per_batch_and_distinct_between_batches(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    transport = brevo(brevo_api, sleeps)
    first, second = batch(newsletter, 6, LANGS), batch(newsletter, 6, LANGS, start=6)
    key_a, key_b = new_key(), new_key()
    transport.send(first, key_a)
    keys_a = front.keys()
    assert len(keys_a) == 3 and len(set(keys_a)) == 3  # one per language
    for key in keys_a:
        assert key is not None and str(uuid.UUID(key)) == key

    again = transport.send(first, key_a)  # the same batch again, as after a crash
    assert front.keys()[3:] == keys_a
    assert statuses(again) == ["queued"] * 6
    assert all(r.error == "accepted earlier (same idempotency key)" for r in again)
    assert fake.duplicates == keys_a

    transport.send(second, key_b)
    assert set(front.keys()[6:]).isdisjoint(keys_a)
    assert fake.received() == {i.envelope_to: 1 for i in first + second}


def test_brevo_resending_only_the_failed_part_of_a_batch_does_not_reuse_a_taken_part_s_key(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    items = batch(newsletter, 150, first_name="N" * 5000)  # two parts (params size)
    key = new_key()
    fake.inject(PASS, path=SEND)  # part one goes through, part two fails to the end
    fake.server_error(times=NO_WAIT.attempts)
    first = brevo(brevo_api, sleeps).send(items, key)
    failed = [i for i, r in zip(items, first, strict=True) if r.status is Status.RETRY]
    assert 0 < len(failed) < len(items) and failed == items[-len(failed):]
    again = brevo(brevo_api, sleeps).send(failed, key)  # what the ledger resends
    assert set(statuses(again)) == {"queued"} and fake.duplicates == []
    assert fake.received() == {i.envelope_to: 1 for i in items}
    keys = front.keys()
    assert keys[-1] == keys[1] != keys[0]  # the failed part's own key, as first sent


def test_brevo_without_a_batch_key_sends_no_key_and_never_resends_after_a_timeout(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    front.lose = 1
    results = brevo(brevo_api, sleeps).send(batch(newsletter, 3))
    assert front.keys() == [None]
    assert statuses(results) == ["unknown"] * 3  # taken, answer lost: one call only
    assert len(fake.delivered) == 3


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"Retry-After": "3"}, 3.0), ({"x-sib-ratelimit-reset": "5"}, 5.0)],
    ids=["retry-after-header", "sib-ratelimit-reset-header"],
)
def test_brevo_429_waits_as_told_then_succeeds_under_the_same_key(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps, headers: dict[str, str], wait: float,
) -> None:
    if "Retry-After" in headers:
        fake.rate_limit(times=1, retry_after=float(headers["Retry-After"]))
    else:
        fake.inject(Reply(429, {"code": "too_many_requests"}, headers), path=SEND)
    results = brevo(brevo_api, sleeps).send(batch(newsletter, 4), new_key())
    assert sleeps == [wait]
    assert statuses(results) == ["queued"] * 4
    keys = front.keys()
    assert len(keys) == 2 and keys[0] == keys[1]
    assert len(fake.delivered) == 4


def test_brevo_three_5xx_then_success(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    fake.server_error(times=3, status=502)
    results = brevo(brevo_api, sleeps).send(batch(newsletter, 4), new_key())
    assert statuses(results) == ["queued"] * 4
    assert len(front.bodies()) == 4 and len(set(front.keys())) == 1
    assert len(sleeps) == 3 and len(fake.delivered) == 4


def test_brevo_5xx_to_the_end_leaves_a_keyed_batch_to_retry(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    fake.server_error(times=4, status=503)
    results = brevo(brevo_api, sleeps).send(batch(newsletter, 2), new_key())
    assert statuses(results) == ["retry"] * 2
    assert all("gave up after 4 attempts" in (r.error or "") for r in results)
    assert len(front.bodies()) == 4 and fake.delivered == []


def test_brevo_answer_lost_after_a_timeout_is_resent_under_its_key_and_not_delivered_twice(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    items = batch(newsletter, 5)
    front.lose = 1  # the fake takes the request, the client sees a read timeout
    results = brevo(brevo_api, sleeps).send(items, new_key())
    keys = front.keys()
    assert len(keys) == 2 and keys[0] == keys[1]
    assert fake.duplicates == [keys[0]]
    assert statuses(results) == ["queued"] * 5
    assert fake.received() == {i.envelope_to: 1 for i in items}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"messageIds": ["<m1@relay>", "<m2@relay>", "<m3@relay>"]},
         [("queued", "<m1@relay>"), ("queued", "<m2@relay>"), ("queued", "<m3@relay>")]),
        # The 201 example of Brevo's reference, whatever the number of versions.
        ({"messageId": "<201798300811.5787683@relay.domain.com>"},
         [("queued", "<201798300811.5787683@relay.domain.com>")] * 3),
        ({"messageIds": ["<m1@relay>", "<m2@relay>"]},
         [("queued", "<m1@relay>"), ("queued", "<m2@relay>"), ("queued", None)]),
        ({"messageIds": ["<m1@relay>", {"error": "invalid email address"}, "<m3@relay>"]},
         [("queued", "<m1@relay>"), ("rejected", None), ("queued", "<m3@relay>")]),
        ({"messageIds": [None, "<m2@relay>", {"code": "x"}]},
         [("queued", None), ("queued", "<m2@relay>"), ("queued", None)]),
        ({}, [("queued", None)] * 3),
    ],
    ids=["one-id-per-version", "spec-example-single-message-id",
         "message-ids-shorter-than-versions", "entry-with-an-error",
         "null-and-empty-entries", "no-message-ids"],
)
def test_brevo_201_means_every_version_was_taken_whatever_ids_it_carries(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps, answer: dict[str, Any], expected: list[tuple[str, str | None]],
) -> None:
    fake.inject(Reply(201, answer), path=SEND)
    results = brevo(brevo_api, sleeps).send(batch(newsletter, 3), new_key())
    assert [(r.status.value, r.provider_id) for r in results] == expected
    assert len(front.bodies()) == 1  # a 2xx is final, whatever it says inside
    rejected = [r for r in results if r.status is Status.REJECTED]
    assert all(r.error == "invalid email address" for r in rejected)


@pytest.mark.parametrize(("status", "expected"), [(201, "queued"), (200, "unknown")])
def test_brevo_answer_not_json_in_a_2xx_is_taken_only_if_it_is_brevo_s_201(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps, status: int, expected: str,
) -> None:
    # 201 is Brevo's documented "email sent"; any other 2xx is no answer Brevo documents.
    fake.inject(Reply(status, raw=b"<html>ok</html>"), path=SEND)
    results = brevo(brevo_api, sleeps).send(batch(newsletter, 2), new_key())
    assert statuses(results) == [expected] * 2
    assert len(front.bodies()) == 1


def test_brevo_single_message_id_answer(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    fake.inject(Reply(201, {"messageId": "<only@relay>"}), path=SEND)
    results = brevo(brevo_api, sleeps).send(batch(newsletter, 1), new_key())
    assert [(r.status.value, r.provider_id) for r in results] == [("queued", "<only@relay>")]


def test_brevo_duplicate_parameter_means_accepted_earlier(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    fake.inject(Reply(400, {"code": "duplicate_parameter", "message": "already processed"}),
                path=SEND)
    results = brevo(brevo_api, sleeps).send(batch(newsletter, 3), new_key())
    assert statuses(results) == ["queued"] * 3
    assert len(front.bodies()) == 1 and fake.delivered == []


def test_brevo_duplicate_parameter_to_a_request_without_a_key_is_a_refusal(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    # Only a reused idempotencyKey makes duplicate_parameter mean "taken the first time".
    fake.inject(Reply(400, {"code": "duplicate_parameter", "message": "duplicate"}), path=SEND)
    results = brevo(brevo_api, sleeps).send(batch(newsletter, 2))
    assert statuses(results) == ["refused"] * 2
    assert front.keys() == [None]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(400, {"code": "invalid_parameter", "message": "sender is invalid"}),
         "Brevo HTTP 400: invalid_parameter sender is invalid"),
        (Reply(400, {"code": "missing_parameter", "message": "subject is missing"}),
         "Brevo HTTP 400: missing_parameter subject is missing"),
        (Reply(400, raw=b"Bad Request"), "Brevo HTTP 400:"),
        (Reply(402, {"code": "not_enough_credits", "message": "no credits"}),
         "Brevo HTTP 402: not_enough_credits no credits"),
    ],
    ids=["400-invalid-parameter", "400-missing-parameter", "400-not-json",
         "402-not-enough-credits"],
)
def test_brevo_other_4xx_refuses_the_batch_without_retrying_and_says_why(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps, reply: Reply, error: str,
) -> None:
    fake.inject(reply, path=SEND)
    results = brevo(brevo_api, sleeps).send(batch(newsletter, 3), new_key())
    # Brevo took nothing of the request: the rows wait for a later run, cause recorded.
    assert statuses(results) == ["refused"] * 3
    assert all(r.error == error for r in results)
    assert {r.cause for r in results} == {str(reply.status)}
    assert len(front.bodies()) == 1 and sleeps == []


def test_brevo_401_raises_auth_error_without_retrying(
    newsletter: Newsletter, project: Path, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    wrong = production_api(project, "brevo", BREVO_API_KEY="xkeysib-wrong-key-000",
                           BREVO_BASE_URL=BREVO)
    with pytest.raises(AuthError, match="BREVO_API_KEY") as caught:
        brevo(wrong, sleeps).send(batch(newsletter, 2), new_key())
    assert "xkeysib-wrong-key-000" not in str(caught.value)
    assert len(front.bodies()) == 1 and fake.delivered == []


def test_brevo_content_has_placeholders_and_each_version_its_escaped_and_plain_values(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    items = batch(newsletter, 3, first_name="<script>") + batch(newsletter, 3, start=3)
    brevo(brevo_api, sleeps).send(items, new_key())
    (body,) = front.bodies()
    html, text = body["htmlContent"], body["textContent"]
    for slot in ("greeting", "email", "unsubscribe_url"):
        assert tag(f"{slot}_html") in html and tag(slot) in text
        assert tag(slot) not in html  # HTML takes escaped values only
        assert "_html }}" not in text
    assert "<script>" not in html and "reader0@example.com" not in html + text
    evil = body["messageVersions"][0]["params"]
    assert evil["greeting"] == "Bonjour <script>,"  # plain for the text part
    assert evil["greeting_html"] == "Bonjour &lt;script&gt;,"
    assert all("<script>" not in v for k, v in evil.items() if k.endswith("_html"))
    for item in items:
        got = fake.message_for(item.envelope_to)
        assert got.text == item.message.text  # filled by Brevo = what we would have built
        assert unpadded(got.html) == unpadded(item.message.html)
        assert got.subject == item.message.subject and got.tags == (SLUG,)
    assert "<script>" not in fake.message_for("reader0@example.com").html
    assert "<script>" in fake.message_for("reader0@example.com").text
    assert body["sender"] == {"email": "club-japon@example.org", "name": "Club Japon"}


def test_brevo_list_unsubscribe_headers_carry_each_reader_s_own_link(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    items = batch(newsletter, 4, LANGS)
    brevo(brevo_api, sleeps).send(items, new_key())
    for body in front.bodies():
        assert body["headers"]["List-Unsubscribe"] == f"<{tag('unsubscribe_url')}>, <{MAILTO}>"
        assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    urls = set()
    for item in items:
        got = fake.message_for(item.envelope_to)
        url = item.message.unsubscribe_url
        assert url.startswith("https://club-japon.example.org/unsubscribe/")
        assert got.headers["List-Unsubscribe"] == f"<{url}>, <{MAILTO}>"
        assert got.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "idempotencyKey" not in got.headers
        urls.add(url)
    assert len(urls) == 4


def test_brevo_recipient_names_cannot_carry_a_line_break(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    items = batch(newsletter, 1, first_name="Eve\r\nBcc: victim@example.com")
    results = brevo(brevo_api, sleeps).send(items, new_key())
    name = front.bodies()[0]["messageVersions"][0]["to"][0]["name"]
    assert "\r" not in name and "\n" not in name and name.startswith("Eve")
    assert statuses(results) == ["queued"] and fake.invalid == []


def test_brevo_clips_a_long_recipient_name_to_70_characters_never_the_address(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    # Brevo refuses the whole request when one name passes 70 characters (issue 15).
    long = ("Jean-Christophe-Marie " * 5).strip()  # 114 characters with " Nom3"
    items = batch(newsletter, 3) + batch(newsletter, 1, first_name=long, start=3)
    results = brevo(brevo_api, sleeps).send(items, new_key())
    assert statuses(results) == ["queued"] * 4 and fake.invalid == []
    (body,) = front.bodies()
    sent = [v["to"][0] for v in body["messageVersions"]]
    assert [p["email"] for p in sent] == [i.envelope_to for i in items]
    name = sent[3]["name"]
    assert len(name) <= 70 and long.startswith(name) and name == name.strip()
    assert [p["name"] for p in sent[:3]] == ["Prénom0 Nom0", "Prénom1 Nom1", "Prénom2 Nom2"]


@pytest.mark.spec_exempt("it sends what Brevo refuses, to see the fake refuse it too")
@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"messageVersions": [{"to": [{"email": f"r{i}@example.com"}]} for i in range(1001)]},
         400, "1001 > 1000"),
        ({"messageVersions": [{"to": [{"email": f"r{i}@example.com"} for i in range(100)]}]},
         400, "100 > 99"),
        ({"messageVersions": [{"to": [{"email": "r@example.com"}],
                               "params": {"x": "y" * 1_100_000}}]}, 400, "bytes in all"),
        ({"messageVersions": [{"to": [{"email": "not-an-address"}]}]}, 400, "invalid email"),
        ({"messageVersions": []}, 400, "non-empty"),
        ({"messageVersions": [{"to": [{"email": "r@example.com", "name": "N" * 71}]}]}, 400,
         "max 70 character in to name"),
    ],
    ids=["1001-versions", "100-recipients-in-a-version", "params-over-1000-kb", "bad-address",
         "no-versions", "name-over-70-characters"],
)
def test_the_fake_refuses_what_brevo_refuses(
    mocked: responses.RequestsMock, fake: FakeBrevoEmail, body: dict[str, Any], status: int,
    reason: str,
) -> None:
    mocked.add_callback(responses.POST, BREVO + SEND, callback=bridge(fake))
    full = {"sender": {"email": "a@example.org"}, "subject": "s", "htmlContent": "<p>x</p>",
            **body}
    answer = requests.post(BREVO + SEND, json=full, headers={"api-key": API_KEY}, timeout=5)
    assert answer.status_code == status and reason in answer.json()["message"]
    assert fake.delivered == []
    assert requests.post(BREVO + SEND, json=full, timeout=5).status_code == 401


# SendGrid ------------------------------------------------------------------------------

class SendGridScript:
    """Answers POST /v3/mail/send from a script, then 202 with an X-Message-Id."""

    def __init__(self, mocked: responses.RequestsMock) -> None:
        self.answers: deque[tuple[int, dict[str, str], bytes] | Exception] = deque()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

        def answer(prepared: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
            raw = prepared.body if isinstance(prepared.body, bytes) else b"null"
            self.bodies.append(json.loads(raw))
            self.headers.append(dict(prepared.headers))
            if self.answers:
                item = self.answers.popleft()
                if isinstance(item, Exception):
                    raise item
                return item
            return 202, {"X-Message-Id": f"sg-{len(self.bodies)}"}, b""

        mocked.add_callback(responses.POST, SENDGRID + "/v3/mail/send", callback=answer)

    def then(self, *answers: tuple[int, dict[str, str], bytes] | Exception) -> None:
        self.answers.extend(answers)

    def sizes(self) -> list[int]:
        return [len(b["personalizations"]) for b in self.bodies]


@pytest.fixture
def sendgrid_api(project: Path) -> Api:
    return production_api(project, "sendgrid", SENDGRID_API_KEY=SENDGRID_KEY,
                          SENDGRID_BASE_URL=SENDGRID)


@pytest.fixture
def sg(mocked: responses.RequestsMock) -> SendGridScript:
    return SendGridScript(mocked)


def sendgrid(api: Api, sleeps: Sleeps) -> SendGridTransport:
    return SendGridTransport(HttpClient(api, timeout=5.0, retry=NO_WAIT, sleep=sleeps),
                             MAIL_FROM, MAILTO)


def errors(*messages: str) -> tuple[int, dict[str, str], bytes]:
    body = {"errors": [{"message": m, "field": "x"} for m in messages]}
    return 400, {}, json.dumps(body).encode()


def test_sendgrid_202_with_x_message_id_is_queued_with_that_id(
    newsletter: Newsletter, sendgrid_api: Api, sg: SendGridScript, sleeps: Sleeps
) -> None:
    results = sendgrid(sendgrid_api, sleeps).send(batch(newsletter, 3), new_key())
    assert [(r.status.value, r.provider_id) for r in results] == [("queued", "sg-1")] * 3
    assert sg.headers[0]["Authorization"] == f"Bearer {SENDGRID_KEY}"
    assert "idempotency" not in json.dumps(sg.bodies[0]).lower()  # SendGrid has no such key


@pytest.mark.parametrize(
    ("n", "langs", "sizes"),
    [(2500, ("fr",), [1000, 1000, 500]), (1000, ("ja",), [1000]),
     (30, LANGS, [10, 10, 10])],
    ids=["2500-one-language-3-calls", "1000-exactly-one-call", "mixed-languages-one-call-each"],
)
def test_sendgrid_sends_at_most_1000_personalizations_per_call(
    newsletter: Newsletter, sendgrid_api: Api, sg: SendGridScript, sleeps: Sleeps, n: int,
    langs: tuple[str, ...], sizes: list[int],
) -> None:
    items = batch(newsletter, n, langs)
    results = sendgrid(sendgrid_api, sleeps).send(items)
    assert sg.sizes() == sizes
    assert [r.id for r in results] == [i.id for i in items]
    assert set(statuses(results)) == {"queued"}
    sent_to = [p["to"][0]["email"] for b in sg.bodies for p in b["personalizations"]]
    assert sorted(sent_to) == sorted(i.envelope_to for i in items)
    lang_of = {i.envelope_to: i.message.lang for i in items}
    for body in sg.bodies:
        assert len({lang_of[p["to"][0]["email"]] for p in body["personalizations"]}) == 1


def test_sendgrid_personalizations_carry_values_headers_and_ids(
    newsletter: Newsletter, sendgrid_api: Api, sg: SendGridScript, sleeps: Sleeps
) -> None:
    items = batch(newsletter, 2, first_name="<script>") + batch(newsletter, 2, start=2)
    sendgrid(sendgrid_api, sleeps).send(items)
    (body,) = sg.bodies
    content = {c["type"]: c["value"] for c in body["content"]}
    assert list(content) == ["text/plain", "text/html"]
    html, text = content["text/html"], content["text/plain"]
    for slot in ("greeting", "email", "unsubscribe_url"):
        assert f"-{slot}_html-" in html and f"-{slot}_text-" not in html
        assert f"-{slot}_text-" in text and f"-{slot}_html-" not in text
    assert "<script>" not in content["text/html"]
    for item, person in zip(items, body["personalizations"], strict=True):
        subs = person["substitutions"]
        message = item.message
        url = message.unsubscribe_url
        assert person["headers"] == {"List-Unsubscribe": f"<{url}>, <{MAILTO}>",
                                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        assert person["custom_args"] == {"delivery_id": str(item.id), "edition": SLUG}
        filled_text, filled_html = text, html
        for name, value in subs.items():
            filled_text = filled_text.replace(name, value)
            filled_html = filled_html.replace(name, value)
        assert filled_text == message.text
        assert unpadded(filled_html) == unpadded(message.html)
    evil = body["personalizations"][0]["substitutions"]
    assert evil["-greeting_text-"] == "Bonjour <script>,"
    assert evil["-greeting_html-"] == "Bonjour &lt;script&gt;,"
    assert body["subject"] == items[0].message.subject and body["categories"] == [SLUG]
    assert body["from"] == {"email": "club-japon@example.org", "name": "Club Japon"}


def test_brevo_clips_a_long_sender_name_to_70_characters(
    newsletter: Newsletter, brevo_api: Api, front: BrevoFront, fake: FakeBrevoEmail,
    sleeps: Sleeps,
) -> None:
    club = "Club Japon des Hauts-de-France, Lille Métropole et environs, section affaires"
    transport = BrevoTransport(HttpClient(brevo_api, timeout=5.0, retry=NO_WAIT, sleep=sleeps),
                               f"\"{club}\" <club-japon@example.org>", MAILTO)
    results = transport.send(batch(newsletter, 2), new_key())
    assert statuses(results) == ["queued"] * 2 and fake.invalid == []
    sender = front.bodies()[0]["sender"]
    assert sender["email"] == "club-japon@example.org"
    assert len(sender["name"]) <= 70 and club.startswith(sender["name"])


def test_sendgrid_sends_a_long_recipient_name_whole(
    newsletter: Newsletter, sendgrid_api: Api, sg: SendGridScript, sleeps: Sleeps
) -> None:
    # SendGrid documents no length limit for to[].name (sendgrid/sendgrid-oai@bef1536,
    # spec/components/schemas.json#/to_email_array): nothing to clip.
    long = ("Jean-Christophe-Marie " * 5).strip()
    results = sendgrid(sendgrid_api, sleeps).send(batch(newsletter, 1, first_name=long),
                                                  new_key())
    assert statuses(results) == ["queued"]
    to = sg.bodies[0]["personalizations"][0]["to"][0]
    assert to == {"email": "reader0@example.com", "name": long + " Nom0"}


def test_sendgrid_400_refuses_the_batch_after_one_call(
    newsletter: Newsletter, sendgrid_api: Api, sg: SendGridScript, sleeps: Sleeps
) -> None:
    sg.then(errors("The from address does not match a verified Sender Identity."))
    results = sendgrid(sendgrid_api, sleeps).send(batch(newsletter, 3))
    assert statuses(results) == ["refused"] * 3 and results[0].cause == "400"
    assert results[0].error == ("SendGrid HTTP 400: The from address does not match a "
                                "verified Sender Identity.")
    assert len(sg.bodies) == 1 and sleeps == []


def test_sendgrid_three_5xx_then_202_is_queued(
    newsletter: Newsletter, sendgrid_api: Api, sg: SendGridScript, sleeps: Sleeps
) -> None:
    sg.then((500, {}, b"{}"), (502, {}, b""), (503, {}, b"{}"))
    results = sendgrid(sendgrid_api, sleeps).send(batch(newsletter, 3))
    assert [(r.status.value, r.provider_id) for r in results] == [("queued", "sg-4")] * 3
    assert len(sg.bodies) == 4 and len(sleeps) == 3


def test_sendgrid_5xx_to_the_end_leaves_the_batch_to_retry(
    newsletter: Newsletter, sendgrid_api: Api, sg: SendGridScript, sleeps: Sleeps
) -> None:
    sg.then(*[(500, {}, b"{}")] * 4)
    results = sendgrid(sendgrid_api, sleeps).send(batch(newsletter, 2))
    assert statuses(results) == ["retry"] * 2 and len(sg.bodies) == 4


def test_sendgrid_429_waits_as_told_then_is_queued(
    newsletter: Newsletter, sendgrid_api: Api, sg: SendGridScript, sleeps: Sleeps
) -> None:
    sg.then((429, {"Retry-After": "2"}, b'{"errors": []}'))
    results = sendgrid(sendgrid_api, sleeps).send(batch(newsletter, 2))
    assert statuses(results) == ["queued"] * 2
    assert sleeps == [2.0] and len(sg.bodies) == 2


@pytest.mark.parametrize(
    ("failure", "expected", "calls"),
    [
        (requests.ReadTimeout("read timed out"), "unknown", 1),
        (requests.ConnectionError("('Connection aborted.', RemoteDisconnected())"),
         "unknown", 1),
        (requests.ConnectTimeout("connect timed out"), "queued", 2),
        (requests.ConnectionError("Connection refused"), "queued", 2),
    ],
    ids=["read-timeout-unknown-not-resent", "dropped-mid-request-unknown-not-resent",
         "connect-timeout-never-left-resent", "connection-refused-never-left-resent"],
)
def test_sendgrid_never_resends_what_may_have_been_taken(
    newsletter: Newsletter, sendgrid_api: Api, sg: SendGridScript, sleeps: Sleeps,
    failure: Exception, expected: str, calls: int,
) -> None:
    sg.then(failure)
    results = sendgrid(sendgrid_api, sleeps).send(batch(newsletter, 3))
    assert statuses(results) == [expected] * 3
    assert len(sg.bodies) == calls
    if expected == "unknown":
        assert "may have been taken" in (results[0].error or "")


def test_sendgrid_401_raises_auth_error_without_retrying(
    newsletter: Newsletter, sendgrid_api: Api, sg: SendGridScript, sleeps: Sleeps
) -> None:
    sg.then((401, {}, json.dumps({"errors": [{"message": "bad key"}]}).encode()))
    with pytest.raises(AuthError, match="SENDGRID_API_KEY") as caught:
        sendgrid(sendgrid_api, sleeps).send(batch(newsletter, 2))
    assert SENDGRID_KEY not in str(caught.value)
    assert len(sg.bodies) == 1


def test_the_fake_forgets_an_idempotency_key_after_its_ttl(
    mocked: responses.RequestsMock,
) -> None:
    now = [0.0]
    fake = FakeBrevoEmail(clock=lambda: now[0])
    mocked.add_callback(responses.POST, BREVO + SEND, callback=bridge(fake))
    body = {"sender": {"email": "a@example.org"}, "subject": "Hi {{ params.n }}",
            "htmlContent": "<p>{{ params.n }}</p>", "headers": {"idempotencyKey": new_key()},
            "messageVersions": [{"to": [{"email": "r@example.com"}], "params": {"n": "1"}}]}

    def post() -> requests.Response:
        return requests.post(BREVO + SEND, json=body, headers={"api-key": API_KEY}, timeout=5)

    assert post().status_code == 201
    now[0] = 29 * 60.0
    assert post().json()["code"] == "duplicate_parameter"
    now[0] = 31 * 60.0
    assert post().status_code == 201
    assert [d.subject for d in fake.delivered] == ["Hi 1", "Hi 1"]
    assert fake.delivered[0].html == "<p>1</p>"

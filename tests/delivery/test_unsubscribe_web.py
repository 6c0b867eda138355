"""The one-click unsubscribe endpoint with a real SQLite store (Flask's test client)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from clubjapon_ops import jobs
from clubjapon_ops.delivery.tokens import TokenSigner
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.schema import suppressions
from clubjapon_ops.web import create_app
from tests.delivery.conftest import SECRET, SLUG, make_settings, write_contacts


@pytest.fixture
def client(home: Path, send_store: Store) -> FlaskClient:
    write_contacts(home / "contacts.csv", ["yui@example.com", "jean@example.com",
                                           "kenji@example.com"])
    jobs.crm_sync(make_settings(home), send_store)
    return create_app(make_settings(home), lambda: send_store).test_client()


def token(email: str = "yui@example.com", lang: str = "ja") -> str:
    return TokenSigner(SECRET).make_legacy(SLUG, email, lang)


def suppressed(store: Store) -> list[tuple[str, str]]:
    with store.transaction() as conn:
        return [tuple(r) for r in conn.execute(
            select(suppressions.c.email, suppressions.c.source))]


def test_get_shows_a_confirm_page_in_the_readers_language(
    client: FlaskClient, send_store: Store
) -> None:
    page = client.get(f"/unsubscribe/{token()}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "配信を停止する" in text and "yui@example.com" not in text  # nobody named
    assert suppressed(send_store) == []  # a GET (a link scanner) changes nothing


def test_one_click_post_unsubscribes_at_once_without_redirect(
    client: FlaskClient, send_store: Store
) -> None:
    answer = client.post(f"/unsubscribe/{token()}", data="List-Unsubscribe=One-Click",
                         content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    assert "Location" not in answer.headers and "Set-Cookie" not in answer.headers
    assert suppressed(send_store) == [("yui@example.com", "unsubscribe")]
    replay = client.post(f"/unsubscribe/{token()}", data="List-Unsubscribe=One-Click",
                         content_type="application/x-www-form-urlencoded")
    assert replay.status_code == 200
    assert suppressed(send_store) == [("yui@example.com", "unsubscribe")]  # once


def test_the_confirm_button_unsubscribes_and_says_so(
    client: FlaskClient, send_store: Store
) -> None:
    answer = client.post(f"/unsubscribe/{token('jean@example.com', 'fr')}",
                         data={"List-Unsubscribe": "One-Click", "page": "1"})
    assert answer.status_code == 200
    assert "ne recevra plus nos messages" in answer.get_data(as_text=True)
    assert suppressed(send_store) == [("jean@example.com", "unsubscribe")]


@pytest.mark.parametrize(
    "bad",
    [
        lambda t: t[:-3],
        lambda t: t[: len(t) // 2],
        lambda t: "X" + t[1:],
        lambda t: TokenSigner("another-key-0123456789").make_legacy(SLUG, "yui@example.com", "ja"),
        lambda t: "a" * 5000,
        lambda t: "not-a-token",
    ],
    ids=["truncated", "half", "tampered", "forged", "oversized", "garbage"],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_bad_tokens_get_a_plain_400_and_change_nothing(
    client: FlaskClient, send_store: Store, bad: object, method: str
) -> None:
    answer = getattr(client, method)(f"/unsubscribe/{bad(token())}")  # type: ignore[operator]
    assert answer.status_code == 400
    assert answer.get_data(as_text=True) == "Bad request\n"
    assert suppressed(send_store) == []


def test_a_send_after_an_unsubscribe_skips_that_contact(
    home: Path, client: FlaskClient, send_store: Store
) -> None:
    client.post(f"/unsubscribe/{token('kenji@example.com', 'ja')}",
                data="List-Unsubscribe=One-Click",
                content_type="application/x-www-form-urlencoded")
    report = jobs.send_campaign(make_settings(home), send_store, SLUG)
    assert report.outcomes["sent"] == 2
    with send_store.transaction() as conn:
        states = dict(conn.execute(select(ledger.deliveries.c.email,
                                          ledger.deliveries.c.state)).all())
    assert "kenji@example.com" not in states
    outbox = make_settings(home).outbox_dir / SLUG
    # Files are named <ledger row>-<address>.eml.
    assert sorted(p.name.split("-", 1)[1] for p in outbox.iterdir()) == [
        "jean@example.com.eml", "yui@example.com.eml"]


def test_the_link_in_a_sent_message_works(
    home: Path, client: FlaskClient, send_store: Store
) -> None:
    import email
    from email import policy

    jobs.send_campaign(make_settings(home), send_store, SLUG)
    raw = next((make_settings(home).outbox_dir / SLUG).glob("*-yui@example.com.eml")).read_bytes()
    message = email.message_from_bytes(raw, policy=policy.default)
    url = message["List-Unsubscribe"].split(">")[0].lstrip("<")
    path = url.removeprefix(make_settings(home).public_url)
    answer = client.post(path, data="List-Unsubscribe=One-Click",
                         content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    assert suppressed(send_store) == [("yui@example.com", "unsubscribe")]


@pytest.mark.parametrize("sent", ["today", "before opaque tokens"])
@pytest.mark.parametrize("how", ["get", "one-click", "confirm button"])
def test_a_test_copy_link_answers_so_and_changes_nothing(
    client: FlaskClient, send_store: Store, how: str, sent: str
) -> None:
    signer = TokenSigner(SECRET)
    path = "/unsubscribe/" + (signer.for_test_copy("ja") if sent == "today" else
                              signer.make_legacy(SLUG, "yui@example.com", "ja", test=True))
    if how == "get":
        answer = client.get(path)
    elif how == "one-click":
        answer = client.post(path, data="List-Unsubscribe=One-Click",
                             content_type="application/x-www-form-urlencoded")
    else:
        answer = client.post(path, data={"List-Unsubscribe": "One-Click", "page": "1"})
    assert suppressed(send_store) == []
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == "test copy: nothing was changed\n"
    assert "Location" not in answer.headers and "Set-Cookie" not in answer.headers


def test_an_app_without_its_signing_key_says_so_in_the_log(
    home: Path, send_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # `web` refuses to start without CLUBJAPON_SECRET; an app built otherwise must not be mute.
    settings = make_settings(home, CLUBJAPON_SECRET="", CLUBJAPON_TRANSPORT="smtp")
    client = create_app(settings, lambda: send_store).test_client()
    with caplog.at_level("WARNING", logger="clubjapon_ops"):
        answer = client.get(f"/unsubscribe/{token()}")
    assert answer.status_code == 400
    assert any("CLUBJAPON_SECRET" in r.getMessage() for r in caplog.records)

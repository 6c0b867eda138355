"""Both apps answer only to the host names they serve (DNS rebinding, issue 26 item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from clubjapon_ops.delivery.tokens import TokenSigner
from clubjapon_ops.store import Store
from clubjapon_ops.store.suppressions import suppressions_of
from clubjapon_ops.web import create_app, create_preview_app
from clubjapon_ops.web.hostnames import host_name
from tests.web.conftest import SECRET, SLUG, STORED, assert_no_absolute_path, make_settings

EVIL = ("evil.example", "evil.example:8025", "EVIL.example.", "127.0.0.1.evil.example",
        "localhost.evil.example", "[::2]:8025", "10.0.0.5")
PREVIEW_PATHS = ("/", f"/preview/{SLUG}?lang=ja&contact={STORED}",
                 f"/preview/{SLUG}/email.html?contact={STORED}", "/preview/nowhere")


def get(client: FlaskClient, path: str, host: str | None, method: str = "GET") -> tuple[int, str]:
    environ = {"HTTP_HOST": host} if host is not None else {}
    answer = client.open(path, method=method, environ_overrides=environ)
    return answer.status_code, answer.get_data(as_text=True)


@pytest.mark.parametrize("host", EVIL)
def test_the_preview_refuses_a_host_it_does_not_serve(
    preview: FlaskClient, home: Path, host: str
) -> None:
    for path in PREVIEW_PATHS:
        status, body = get(preview, path, host)
        assert status == 421, (host, path)
        assert STORED not in body and "nowhere" not in body and SLUG not in body
        assert_no_absolute_path(body, home)


@pytest.mark.parametrize("host", ["localhost", "localhost:8025", "127.0.0.1:8025", "127.0.0.1",
                                  "[::1]:8025", "LOCALHOST.", "127.1.2.3:9000"])
def test_the_preview_answers_to_loopback_names(preview: FlaskClient, host: str) -> None:
    status, body = get(preview, f"/preview/{SLUG}?lang=ja&contact={STORED}", host)
    assert status == 200 and STORED in body


@pytest.mark.parametrize("host", ["", "a b", "evil.example:80:80", "[nothing]", "x/y"])
def test_a_missing_or_malformed_host_is_400(preview: FlaskClient, host: str) -> None:
    # An empty Host is what a request without one looks like here (HTTP/1.0 may omit it).
    assert get(preview, "/", host) == (400, "Bad request\n")


def test_with_a_password_a_wrong_host_is_refused_before_the_password_is_asked(
    home: Path, web_store: Store
) -> None:
    settings = make_settings(home, CLUBJAPON_PREVIEW_PASSWORD="preview-password-1234567890")
    client = create_preview_app(settings, lambda: web_store).test_client()
    answer = client.get("/", headers={"Authorization": "Basic eDpwcmV2aWV3LXBhc3N3b3JkLTEyMzQ1"
                                                       "Njc4OTA="},
                        environ_overrides={"HTTP_HOST": "evil.example"})
    assert answer.status_code == 421 and "WWW-Authenticate" not in answer.headers


def test_the_preview_answers_to_the_address_it_is_served_on(
    home: Path, web_store: Store
) -> None:
    settings = make_settings(home, CLUBJAPON_PREVIEW_PASSWORD="preview-password-1234567890")
    on_one = create_preview_app(settings, lambda: web_store, served_on="10.0.0.5").test_client()
    assert get(on_one, "/", "10.0.0.5:8025")[0] == 401  # served: the password is asked
    assert get(on_one, "/", "10.0.0.6:8025")[0] == 421
    on_all = create_preview_app(settings, lambda: web_store, served_on="0.0.0.0").test_client()
    assert get(on_all, "/", "10.0.0.6:8025")[0] == 401  # an address cannot be rebound
    assert get(on_all, "/", "evil.example:8025")[0] == 421


@pytest.mark.parametrize("host", EVIL)
def test_the_public_app_refuses_a_host_it_does_not_serve(
    public: FlaskClient, web_store: Store, host: str
) -> None:
    token = TokenSigner(SECRET).make_legacy(SLUG, STORED, "fr")
    for path, method in (("/healthz", "GET"), ("/editions/", "GET"),
                         (f"/unsubscribe/{token}", "GET"), (f"/unsubscribe/{token}", "POST"),
                         ("/events/sendgrid", "POST")):
        status, body = get(public, path, host, method)
        assert status == 421, (host, path)
        assert token not in body and "unsubscribe" not in body
    with web_store.transaction() as conn:
        assert suppressions_of(conn, STORED) == []


@pytest.mark.parametrize("host", ["club-japon.example.org", "club-japon.example.org:443",
                                  "Club-Japon.Example.Org.", "localhost:8025", "127.0.0.1"])
def test_the_public_app_answers_to_its_public_host_and_loopback(
    public: FlaskClient, host: str
) -> None:
    assert get(public, "/healthz", host) == (200, "OK\n")


def test_the_public_host_comes_from_the_public_url(home: Path, web_store: Store) -> None:
    settings = make_settings(home, CLUBJAPON_PUBLIC_URL="https://news.club.example:8443/x")
    client = create_app(settings, lambda: web_store).test_client()
    assert get(client, "/healthz", "news.club.example:8443")[0] == 200
    assert get(client, "/healthz", "club-japon.example.org")[0] == 421


@pytest.mark.parametrize(("header", "name"), [
    ("Example.ORG:443", "example.org"), ("[::1]:80", "::1"), ("localhost.", "localhost"),
    ("[0:0:0:0:0:0:0:1]", "::1"), ("a b", None), ("[::g]", None), ("", None), (":80", None),
])
def test_host_name(header: str, name: str | None) -> None:
    assert host_name(header) == name

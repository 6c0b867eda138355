"""CLUBJAPON_PREVIEW_PASSWORD: basic auth on every preview page, a masked secret."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.logs import RedactFilter
from clubjapon_ops.settings import MASK, load_settings
from clubjapon_ops.store import Store
from clubjapon_ops.web import create_app, create_preview_app
from clubjapon_ops.web.auth import password_matches
from tests.web.conftest import SLUG, STORED, make_settings

PASSWORD = "aperçu-パスワード-8f3e1c5a7b9d"


def basic(user: str, password: str, scheme: str = "Basic") -> dict[str, str]:
    raw = f"{user}:{password}".encode()
    return {"Authorization": f"{scheme} {base64.b64encode(raw).decode()}"}


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    (basic("marketing", PASSWORD[:-1]), 401),
    (basic("marketing", PASSWORD + "x"), 401),
    (basic("marketing", ""), 401),
    ({"Authorization": f"Bearer {PASSWORD}"}, 401),
    ({"Authorization": "Basic ééé"}, 401),  # not base64: Werkzeug raises on it
    (basic("marketing", PASSWORD), 200),
    (basic("anyone", PASSWORD), 200),
])
def test_every_preview_page_asks_for_the_password(
    home: Path, web_store: Store, headers: dict[str, str], status: int
) -> None:
    settings = make_settings(home, CLUBJAPON_PREVIEW_PASSWORD=PASSWORD)
    client = create_preview_app(settings, lambda: web_store).test_client()
    for path in (f"/preview/{SLUG}?lang=ja&contact={STORED}", f"/preview/{SLUG}/email.html"):
        answer = client.get(path, headers=headers)
        assert answer.status_code == status, path
        body = answer.get_data(as_text=True)
        assert (STORED in body) == (status == 200 and "email.html" not in path)
        if status == 401:
            assert answer.headers["WWW-Authenticate"].startswith('Basic realm=')
            assert PASSWORD not in body


def test_the_password_does_not_concern_the_public_app(home: Path, web_store: Store) -> None:
    settings = make_settings(home, CLUBJAPON_PREVIEW_PASSWORD=PASSWORD)
    assert create_app(settings, lambda: web_store).test_client().get("/healthz").status_code == 200


def test_the_password_is_a_secret_setting(home: Path) -> None:
    settings = make_settings(home, CLUBJAPON_PREVIEW_PASSWORD=PASSWORD)
    shown = dict((name, value) for name, value, _ in settings.describe())
    assert shown["CLUBJAPON_PREVIEW_PASSWORD"] == MASK
    assert RedactFilter(settings.secrets()).redact(f"pw={PASSWORD}") == "pw=[redacted]"
    (home / "config" / "clubjapon.toml").write_text(
        f'[settings]\npreview_password = "{PASSWORD}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="CLUBJAPON_PREVIEW_PASSWORD"):
        load_settings(home, environ={})


def test_password_comparison() -> None:
    assert password_matches(PASSWORD, PASSWORD)
    assert not password_matches(None, PASSWORD)
    assert not password_matches("", PASSWORD)
    assert not password_matches(PASSWORD.upper(), PASSWORD)

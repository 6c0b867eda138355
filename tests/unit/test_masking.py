"""mask_secrets and url_secrets: every form of password libpq and SQLAlchemy read."""

from __future__ import annotations

import pytest

from clubjapon_ops.masking import mask_secrets, url_secrets


@pytest.mark.parametrize(("text", "masked"), [
    ("postgresql+psycopg://club:pw@db/club", "postgresql+psycopg://club:***@db/club"),
    ("postgresql://u:p@ss/w?rd@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u@h/db?password=pw&sslmode=require",
     "postgresql://u@h/db?password=***&sslmode=require"),
    ("postgresql://u@h/db?sslpassword=k&PASSWORD=p%21", "postgresql://u@h/db?sslpassword=***&PASSWORD=***"),
    ("postgresql://u@h/db?pass%77ord=pw", "postgresql://u@h/db?pass%77ord=***"),
    ("postgresql:///db?host=/run/pg&password=a&password=b",
     "postgresql:///db?host=/run/pg&password=***&password=***"),
    ("host=db password=pw dbname=club", "host=db password=*** dbname=club"),
    ("host=db password = 'a b \\' c' dbname=club", "host=db password = *** dbname=club"),
    ("host=db password=a\\ b dbname=club", "host=db password=*** dbname=club"),
    ("x=password=pw", "x=password=***"),
    ("SMTP_PASSWORD=pw given", "SMTP_PASSWORD=*** given"),
    ("https://club-japon.example.org:8443/x?lang=fr", "https://club-japon.example.org:8443/x?lang=fr"),
    ("sqlite:///var/clubjapon.sqlite3", "sqlite:///var/clubjapon.sqlite3"),
    ("a = b, c=d; nothing secret", "a = b, c=d; nothing secret"),
    ("postgresql://u:***@h/db?password=***", "postgresql://u:***@h/db?password=***"),
])
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
    assert mask_secrets(masked) == masked  # masking twice changes nothing


def test_url_secrets_gives_each_value_as_written_and_decoded() -> None:
    found = url_secrets("postgresql://u:p%40ss@h/db?password=a%2Bb&sslpassword='q r'")
    assert {"p%40ss", "p@ss", "a%2Bb", "a+b"} <= set(found)
    assert url_secrets("host=db password='q r'") == sorted({"'q r'", "q r"})
    assert url_secrets("postgresql://u:***@h/db") == []


def test_long_text_without_a_secret_is_left_alone_quickly() -> None:
    text = "a" * 200_000 + "://" + "b=" * 50_000
    assert mask_secrets(text) == text

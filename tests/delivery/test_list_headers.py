"""List-Id (RFC 2919) and the auto-reply suppressors on every newsletter (issue 23), built
once per sender; the List-Id setting's default and what it refuses."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest

from clubjapon_ops.delivery.dkim import SIGNED_HEADERS
from clubjapon_ops.delivery.message import MimeBuilder, list_headers
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.mail_limits import MAX_HEADER_LINE
from clubjapon_ops.newsletter.service import Newsletter
from clubjapon_ops.settings import default_list_id, load_settings
from tests.newsletter.conftest import SLUG, project, project_settings  # noqa: F401
from tests.newsletter.test_render import FROM, newsletter, reader  # noqa: F401

JA_FROM = "クラブ・ジャポン・デ・オー＝ド＝フランス事務局ニュースレター <club@example.org>"


@pytest.mark.parametrize("test_copy", [False, True])
def test_every_message_says_it_is_list_mail(newsletter: Newsletter,  # noqa: F811
                                            test_copy: bool) -> None:
    raw = MimeBuilder(FROM).build(newsletter.personalise(reader("ja")), edition=SLUG,
                                  test_copy=test_copy)
    message = message_from_bytes(raw, policy=policy.strict)
    assert message["List-Id"] == "Club Japon des Hauts-de-France <newsletter.example.org>"
    assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert message["Precedence"] == "bulk"


def test_a_japanese_list_name_is_encoded_and_folded_within_76(
        newsletter: Newsletter) -> None:  # noqa: F811
    builder = MimeBuilder(JA_FROM, list_id="lettre.example.org")
    raw = builder.build(newsletter.personalise(reader("fr")), edition=SLUG)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n") if b"List-Id" in line
               or line.startswith(b" =?")) <= MAX_HEADER_LINE
    message = message_from_bytes(raw, policy=policy.default)
    assert str(message["List-Id"]) == (
        "クラブ・ジャポン・デ・オー＝ド＝フランス事務局ニュースレター <lettre.example.org>")
    # The APIs take the same value on one line, still RFC 2047 encoded (SendGrid asks it).
    api = dict(list_headers(JA_FROM, "lettre.example.org"))
    assert api["List-Id"].isascii() and "\r" not in api["List-Id"]
    assert api["List-Id"].endswith(" <lettre.example.org>")


def test_list_id_is_signed() -> None:
    assert b"List-Id" in SIGNED_HEADERS


def test_the_default_comes_from_the_from_domain(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={
        "CLUBJAPON_MAIL_FROM": "Club <Club-Japon@Club-Japon.Example.org>"})
    assert settings.list_id == "newsletter.club-japon.example.org"
    assert default_list_id("Club <club@ドメイン.jp>") == "newsletter.xn--eckwd4c7c.jp"
    chosen = load_settings(tmp_path, environ={"CLUBJAPON_LIST_ID": "lettre.example.org"})
    assert chosen.list_id == "lettre.example.org"


@pytest.mark.parametrize("bad", ["<newsletter.example.org>", "news letter.example.org",
                                 "newsletter.exémple.org", "newsletter", "a..b"])
def test_a_list_id_with_brackets_spaces_or_non_ascii_is_refused(tmp_path: Path,
                                                                bad: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(tmp_path, environ={"CLUBJAPON_LIST_ID": bad})
    said = str(refused.value)
    assert said.startswith("CLUBJAPON_LIST_ID=") and "\n" not in said

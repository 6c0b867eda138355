"""Bodies go 7-bit quoted-printable by default, signed or not (issue 23): what a relay that
signs (Postfix + OpenDKIM) and every later hop pass on unchanged; 8bit only where
SMTP_EIGHT_BIT asks and the server offers 8BITMIME, and never signed. Checked with Python's
strict parser, Debian's MIME-tools and dkimpy as published, and through the real CLI."""

from __future__ import annotations

import binascii
import os
import random
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.message import MimeBuilder, quoted_printable
from clubjapon_ops.delivery.transports import builder_for
from clubjapon_ops.mail_limits import MAX_HEADER_LINE
from tests.delivery.conftest import (  # noqa: F401
    POSTAL_ADDRESS,
    SECRET,
    SLUG,
    home,
    make_settings,
    write_contacts,
)
from tests.delivery.test_dkim import dkim_env, key_file, key_pem, verify_pristine  # noqa: F401
from tests.delivery.test_header_encoding import mime_tools
from tests.fakes.smtp_server import smtp_server

FROM = "Club Japon des Hauts-de-France <club-japon@example.org>"
READERS = {"fr": ("Éloïse", "Dupont"), "en": ("Emily", "Clarke"), "ja": ("結衣", "鈴木")}
PIECES = ["<p>", "text ", "\r\n", ".", "..", "é", "日本語", "x" * 90, "\0", " ", "\t", "=",
          "", "a b  ", "\r\n\r\n"]


@pytest.mark.parametrize("seed", range(200))
def test_pieces_encoded_apart_join_into_one_valid_body(seed: int) -> None:
    rng = random.Random(seed)
    pieces = ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
              for _ in range(rng.randint(1, 8))]
    body = b"".join(quoted_printable(p.encode("utf-8")) for p in pieces)
    assert body.isascii() and b"\0" not in body
    assert body.count(b"\n") == body.count(b"\r\n")  # CRLF line ends only
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    # No line starts with '.': nothing for SMTP to dot-stuff (a copy of every message).
    assert not body.startswith(b".") and b"\r\n." not in body
    assert binascii.a2b_qp(body) == "".join(pieces).encode("utf-8")


@pytest.mark.parametrize("after", ["", "\r\n." + "é" * 30, "\r\n.\r\n"])
@pytest.mark.parametrize("dots", [1, 2, 73, 74, 75, 76, 77, 152, 160])
@pytest.mark.parametrize("before", ["", "x" * 74, "x" * 75, "x" * 76, "é" * 25])
def test_no_line_starts_with_a_dot(before: str, dots: int, after: str) -> None:
    text = (before + "." * dots + after).encode("utf-8")
    body = quoted_printable(text)
    assert not body.startswith(b".") and b"\r\n." not in body
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert binascii.a2b_qp(body) == text


@pytest.mark.parametrize("length", range(70, 80))
@pytest.mark.parametrize("end", ["", "é", "=", " ", "\t", "日"])
def test_a_piece_whose_last_line_fills_76_still_gets_its_soft_break_within_76(
        length: int, end: str) -> None:
    text = ("x" * length + end).encode("utf-8")
    body = quoted_printable(text)
    assert body.endswith(b"=\r\n") and all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert binascii.a2b_qp(body) == text


def personal(settings, lang: str):  # type: ignore[no-untyped-def]
    first, last = READERS[lang]
    contact = Contact(email=f"{lang}@example.com", source="csv", first_name=first,
                      last_name=last, language=lang)
    return jobs.newsletter_for_sending(settings, SLUG).personalise(contact)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("lang", ["fr", "en", "ja"])
def test_bodies_are_7bit_quoted_printable_that_three_readers_agree_on(
        home: Path, key_file: Path, key_pem: bytes, tmp_path: Path,  # noqa: F811
        lang: str, signed: bool) -> None:
    settings = make_settings(home, **(dkim_env(key_file) if signed else {}))
    message = personal(settings, lang)
    mime = builder_for(settings).compose(message, edition=SLUG)
    raw = mime.data
    assert raw.isascii()  # 7-bit: nothing for a relay to convert
    assert not mime.dot_lines and b"\r\n." not in raw  # nor for SMTP to dot-stuff
    head, body = raw.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    for line in head.split(b"\r\n"):
        # The one line allowed past 76: a List-Unsubscribe URL cannot be folded.
        assert len(line) <= MAX_HEADER_LINE or line.startswith(b"List-Unsubscribe: <http")
    parsed = message_from_bytes(raw, policy=policy.strict)
    parts = list(parsed.iter_parts())
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["quoted-printable"] * 2
    assert not any(p.defects for p in parsed.walk())
    text, html = (p.get_content().replace("\r\n", "\n") for p in parts)
    assert (text, html) == (message.text, message.html)
    path = tmp_path / "message.eml"
    path.write_bytes(raw)
    other = mime_tools(path)
    assert other["warnings"] == []
    assert [p["body"].replace("\r\n", "\n") for p in other["parts"]] == [  # type: ignore[union-attr]
        message.text, message.html]
    if signed:
        assert verify_pristine(key_pem, [raw], tmp_path) == ["ok"]


def test_eight_bit_only_unsigned_and_asked(home: Path, key_file: Path) -> None:  # noqa: F811
    settings = make_settings(home)
    message = personal(settings, "ja")
    asked = MimeBuilder(FROM).build(message, edition=SLUG, eight_bit=True)
    assert b"Content-Transfer-Encoding: 8bit" in asked
    signed = builder_for(make_settings(home, **dkim_env(key_file)))
    assert b"Content-Transfer-Encoding: quoted-printable" in signed.build(
        message, edition=SLUG, eight_bit=True)


# ----------------------------------------------------------------- the real CLI over SMTP


def cli_send(home: Path, port: int, **extra: str) -> None:  # noqa: F811
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_"))}
    env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_CSV_PATH=str(home / "contacts.csv"),
               CLUBJAPON_TRANSPORT="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port),
               CLUBJAPON_SECRET=SECRET, CLUBJAPON_POSTAL_ADDRESS=POSTAL_ADDRESS, **extra)
    write_contacts(home / "contacts.csv", ["a@example.com", "b@example.com", "c@example.com"])
    for args in (["sync"], ["send", SLUG, "--yes"]):
        run = subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("setting,signed,expected", [
    ({}, False, "quoted-printable"),
    ({"SMTP_EIGHT_BIT": "true"}, False, "8bit"),
    ({"SMTP_EIGHT_BIT": "true"}, True, "quoted-printable"),
], ids=["default", "asked", "asked-but-signed"])
def test_the_cli_sends_8bit_only_where_asked_and_offered(
        home: Path, key_file: Path, key_pem: bytes, tmp_path: Path,  # noqa: F811
        setting: dict[str, str], signed: bool, expected: str) -> None:
    with smtp_server() as (port, server):  # aiosmtpd offers 8BITMIME
        cli_send(home, port, **setting, **(dkim_env(key_file) if signed else {}))
        received = list(server.received)
        options = dict(server.mail_options)
    assert len(received) == 3
    for address, raw in received:
        parts = list(message_from_bytes(raw, policy=policy.strict).iter_parts())
        assert [p["Content-Transfer-Encoding"] for p in parts] == [expected] * 2
        assert ("BODY=8BITMIME" in options[address]) == (expected == "8bit")
        assert raw.isascii() == (expected != "8bit")
    if signed:
        assert verify_pristine(key_pem, [raw for _, raw in received], tmp_path) == ["ok"] * 3

"""Header lines of real built messages, as two MIME parsers we did not write read them:
Python's email package in strict mode and Debian's MIME-tools (Perl)."""

from __future__ import annotations

import base64
import email
import json
import re
import shutil
import subprocess
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.policy import Policy
from pathlib import Path

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.message import MAX_HEADER_LINE, MimeBuilder, encode_words
from clubjapon_ops.delivery.transports.base import Outgoing, Status
from clubjapon_ops.delivery.transports.outbox import OutboxTransport
from clubjapon_ops.delivery.transports.smtp import SmtpConfig, SmtpTransport
from clubjapon_ops.newsletter.service import Newsletter
from tests.delivery.conftest import SLUG, home, make_settings  # noqa: F401
from tests.fakes.smtp_server import smtp_server

PERL_PARSER = Path(__file__).with_name("mime_tools_parse.pl")
FROM = "Club Japon des Hauts-de-France — Lille <club-japon@example.org>"
READERS = [
    ("fr", "Éloïse-Marguerite", "de La Tour d’Auvergne-Lauragais", "eloise@example.com"),
    ("en", "Emily", "Clarke", "emily.clarke@example.com"),
    ("ja", "結衣", "鈴木", "yui.suzuki@sakura.example.com"),
    ("ja", "寿限無寿限無五劫の擦り切れ海砂利水魚の水行末雲来末風来末", "長久命の長助",
     "a-very-long-local-part-for-a-test@sub.domain.sakura.example.com"),
]


@pytest.fixture
def newsletter(home: Path) -> Newsletter:  # noqa: F811
    return jobs.newsletter_for_sending(make_settings(home), SLUG)


def outgoing(newsletter: Newsletter, i: int, lang: str, first: str, last: str,
             address: str, prefix: str = "") -> Outgoing:
    contact = Contact(email=address, source="csv", first_name=first, last_name=last,
                      language=lang)
    return Outgoing(i, address, newsletter.personalise(contact), SLUG, subject_prefix=prefix)


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def strict(raw: bytes, base: Policy = policy.default) -> Message:
    """Parse with the standard library, raising on any defect."""
    return email.message_from_bytes(raw, policy=base.clone(raise_on_defect=True))


def mime_tools(path: Path) -> dict[str, object]:
    if not shutil.which("perl"):
        pytest.skip("perl is not installed (.ci/run installs libmime-tools-perl)")
    run = subprocess.run(["perl", str(PERL_PARSER), str(path)], capture_output=True,
                         check=False, timeout=60)
    if b"Can't locate MIME/Parser.pm" in run.stderr:
        pytest.skip("MIME-tools is not installed (.ci/run installs libmime-tools-perl)")
    assert run.returncode == 0, run.stderr.decode()
    result: dict[str, object] = json.loads(run.stdout)
    return result


def check(raw: bytes, item: Outgoing, path: Path) -> None:
    """Every header line within 76, the same text read back by both parsers, no defect."""
    message = item.message
    for line in header_lines(raw):
        # A List-Unsubscribe URL is one token that cannot be folded (RFC 2369): its line
        # is the only one allowed past 76, and it carries no encoded word.
        if line.startswith(b"List-Unsubscribe: <https://"):
            assert line == f"List-Unsubscribe: <{message.unsubscribe_url}>,".encode()
            continue
        assert len(line) <= MAX_HEADER_LINE, line
    subject = item.subject_prefix + message.subject
    parsed = strict(raw)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == subject
    assert parsed["To"].addresses[0].addr_spec == item.envelope_to
    # The modern parser of Python < 3.14 keeps the space between two encoded words of a
    # display name (CPython gh-128110); decode_header follows RFC 2047 §6.2 and drops it.
    raw_to = strict(raw, policy.compat32)["To"]
    shown = str(make_header(decode_header(raw_to)))
    assert shown == f"{message.display_name} <{item.envelope_to}>"
    assert parsed["From"].addresses[0].display_name == "Club Japon des Hauts-de-France — Lille"
    assert not any(part.defects for part in parsed.walk())
    text, html = (part.get_content() for part in parsed.iter_parts())
    assert text.replace("\r\n", "\n") == message.text
    # base64 HTML carries the alignment padding (spaces) of render.py; 8bit does not
    assert "".join(html.split()) == "".join(message.html.split())
    urls = str(parsed["List-Unsubscribe"]).replace(" ", "")
    assert urls.startswith(f"<{message.unsubscribe_url}>,<mailto:")

    other = mime_tools(path)
    assert other["warnings"] == []
    assert other["subject"] == subject
    assert other["to"] == f"{message.display_name} <{item.envelope_to}>"
    assert other["from"] == "Club Japon des Hauts-de-France — Lille <club-japon@example.org>"
    assert str(other["list_unsubscribe"]).startswith(f"<{message.unsubscribe_url}>,")
    parts = other["parts"]
    assert isinstance(parts, list)
    assert [p["type"] for p in parts] == ["text/plain", "text/html"]
    assert parts[0]["body"].replace("\r\n", "\n") == message.text


@pytest.mark.parametrize("prefix", ["", "[TEST] "])
def test_outbox_messages_fold_headers_within_76(newsletter: Newsletter, tmp_path: Path,
                                                 prefix: str) -> None:
    items = [outgoing(newsletter, i, *reader, prefix=prefix) for i, reader in enumerate(READERS)]
    outbox = OutboxTransport(tmp_path / "outbox", MimeBuilder(FROM))
    assert [r.status for r in outbox.send(items)] == [Status.SENT] * len(items)
    for item in items:
        path = outbox.path_of(item)
        check(path.read_bytes(), item, path)


@pytest.mark.parametrize("eight_bit", [True, False])
def test_smtp_messages_fold_headers_within_76(newsletter: Newsletter, tmp_path: Path,
                                              eight_bit: bool) -> None:
    from tests.fakes.smtp_server import Behaviour

    items = [outgoing(newsletter, i, *reader) for i, reader in enumerate(READERS)]
    with smtp_server(Behaviour(eight_bit_mime=eight_bit)) as (port, server):
        smtp = SmtpTransport(SmtpConfig("127.0.0.1", port, connections=1, retry_wait=0.01),
                             "club-japon@example.org", MimeBuilder(FROM))
        try:
            assert [r.status for r in smtp.send(items)] == [Status.SENT] * len(items)
        finally:
            smtp.close()
    for item, (_, raw) in zip(items, server.received, strict=True):
        path = tmp_path / f"{item.id}.eml"
        path.write_bytes(raw)
        check(raw, item, path)


@pytest.mark.parametrize("used", [0, 4, 6, 9, 30, 60])
@pytest.mark.parametrize("text", ["Réunion du Club Japon à Lille : le bilan de l’année",
                                  "クラブ・ジャポン" * 10, "a" * 3 + "é" * 80])
def test_encoded_words_fit_after_any_prefix(text: str, used: int) -> None:
    encoded = encode_words(text, used)
    lines = ("x" * used + encoded).split("\r\n")
    assert all(len(line) <= MAX_HEADER_LINE for line in lines), lines
    assert all(len(word) <= 75 for word in re.findall(r"=\?utf-8\?b\?[^?]*\?=", encoded))
    assert strict(f"Subject: {encoded}\r\n\r\n".encode("ascii"))["Subject"] == text


@pytest.mark.parametrize("name", ["Jean-Pierre de la Fontaine-Villeneuve du Grand Chêne",
                                  "Zoé " * 30 + "Lefèvre"])
def test_encoded_words_end_at_spaces_where_there_are_some(name: str) -> None:
    # RFC 2047 ignores the space between encoded words, but some parsers show one (the
    # review saw Python's read "Gran d Chêne"): a word kept whole in one encoded word reads
    # right there too.
    encoded = encode_words(name, len("To: "))
    words = [base64.b64decode(w).decode() for w in re.findall(r"=\?utf-8\?b\?([^?]*)\?=",
                                                               encoded)]
    assert len(words) > 1 and "".join(words) == name
    assert all(word.endswith(" ") for word in words[:-1]), words

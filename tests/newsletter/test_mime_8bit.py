"""8bit bodies (RFC 6152): what the builder sends to a server that offers 8BITMIME."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest

from clubjapon_ops.delivery.message import (
    MAX_LINE,
    MimeBuilder,
    _crlf,
    _EightBitPart,
    _fold,
    _Shape,
)
from clubjapon_ops.delivery.transports.base import Outgoing, Status
from clubjapon_ops.delivery.transports.smtp import SmtpConfig, SmtpTransport
from clubjapon_ops.newsletter.render import _CLOSE, _OPEN, Compiled, PersonalMessage
from clubjapon_ops.newsletter.service import Newsletter
from tests.fakes.smtp_server import Behaviour, smtp_server
from tests.newsletter.conftest import SLUG
from tests.newsletter.test_render import FROM, newsletter, parse, reader  # noqa: F401


def naive(body: bytes) -> tuple[int, bool, bool]:
    lines = body.split(b"\r\n")
    return max(map(len, lines)), any(line.startswith(b".") for line in lines), b"\0" in body


@pytest.mark.parametrize("seed", range(200))
def test_fold_of_piece_shapes_equals_a_scan_of_the_joined_body(seed: int) -> None:
    rng = random.Random(seed)
    atoms = [b"a", b"xyz", b".", b"..", b"\r\n", b"\0", b"", b"\xe3\x81\x82"]
    pieces = [b"".join(rng.choice(atoms) for _ in range(rng.randrange(0, 8)))
              for _ in range(rng.randrange(1, 8))]
    assert _fold(_Shape.of(p) for p in pieces) == naive(b"".join(pieces))


def with_text(message: PersonalMessage, extra: str) -> PersonalMessage:
    """The same message with ``extra`` appended to the first static of its text part."""
    text = message.rendered.text
    text = dataclasses.replace(text, statics=(text.statics[0] + extra, *text.statics[1:]))
    return dataclasses.replace(message, rendered=dataclasses.replace(message.rendered,
                                                                     text=text))


@pytest.mark.parametrize("lang", ["fr", "en", "ja"])
@pytest.mark.parametrize("length", [0, 1, 57, 200])
def test_8bit_bodies_decode_to_the_personalised_parts(
    newsletter: Newsletter, lang: str, length: int  # noqa: F811
) -> None:
    message = newsletter.personalise(reader(lang, first="é" * length, last="鈴木"))
    mime = MimeBuilder(FROM).compose(message, edition=SLUG, eight_bit=True)
    parsed = parse(mime.data)
    parts = list(parsed.iter_parts())
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["8bit", "8bit"]
    html, text = parsed.get_body(("html",)), parsed.get_body(("plain",))
    assert html is not None and text is not None
    assert text.get_content().replace("\r\n", "\n") == message.text
    # The quoted-printable form pads before tags; the 8bit one does not: equal but for white
    # space.
    assert re.sub(r"\s+", "", html.get_content()) == re.sub(r"\s+", "", message.html)
    assert mime.data.endswith(b"\r\n") and not mime.dot_lines
    assert max(map(len, mime.data.split(b"\r\n"))) <= MAX_LINE
    # Smaller than quoted-printable, and the same message once decoded.
    quoted = MimeBuilder(FROM).build(message, edition=SLUG)
    assert len(mime.data) < len(quoted)


def test_a_line_too_long_for_8bit_goes_quoted_printable(
        newsletter: Newsletter) -> None:  # noqa: F811
    message = with_text(newsletter.personalise(reader("fr")), "x" * (MAX_LINE + 1) + "\n")
    mime = MimeBuilder(FROM).compose(message, edition=SLUG, eight_bit=True)
    parsed = parse(mime.data)
    assert [p["Content-Transfer-Encoding"] for p in parsed.iter_parts()] == [
        "quoted-printable"] * 2
    text = parsed.get_body(("plain",))
    assert text is not None and "x" * (MAX_LINE + 1) in text.get_content()
    exactly = with_text(newsletter.personalise(reader("fr")), "x" * MAX_LINE + "\n")
    assert b"Content-Transfer-Encoding: 8bit" in MimeBuilder(FROM).build(
        exactly, edition=SLUG, eight_bit=True)


def test_a_nul_in_a_name_sends_quoted_printable(newsletter: Newsletter) -> None:  # noqa: F811
    message = newsletter.personalise(reader("en", first="Ann\0e"))
    raw = MimeBuilder(FROM).build(message, edition=SLUG, eight_bit=True)
    assert b"\0" not in raw and b"Content-Transfer-Encoding: quoted-printable" in raw
    assert b"Ann=00e" in raw


@pytest.mark.parametrize("extra", ["\n.\n", "\n.hidden line\n", "\n..two dots\n"])
def test_lines_starting_with_a_dot_are_flagged(
    newsletter: Newsletter, extra: str  # noqa: F811
) -> None:
    builder = MimeBuilder(FROM)
    message = with_text(newsletter.personalise(reader("fr")), extra)
    assert builder.compose(message, edition=SLUG, eight_bit=True).dot_lines
    # Quoted-printable flags a line it starts with '.' as well (the SMTP transport then
    # dot-stuffs it).
    quoted = builder.compose(message, edition=SLUG)
    assert quoted.dot_lines == (b"\r\n." in quoted.data)


@pytest.mark.parametrize("asked", [True, False], ids=["SMTP_EIGHT_BIT", "default"])
@pytest.mark.parametrize("eight_bit_mime", [True, False], ids=["8bitmime", "7bit-server"])
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "plain"])
def test_smtp_sends_8bit_only_where_asked_and_offered_and_dot_stuffs(
    newsletter: Newsletter, eight_bit_mime: bool, pipelining: bool, asked: bool  # noqa: F811
) -> None:
    builder = MimeBuilder(FROM)
    # A lone '.' line would end DATA early if it were not dot-stuffed.
    tricky = with_text(newsletter.personalise(reader("ja", email_addr="dot@example.com")),
                       "\n.\n.hidden line\n")
    plain = newsletter.personalise(reader("fr", email_addr="plain@example.com"))
    behaviour = Behaviour(pipelining=pipelining, eight_bit_mime=eight_bit_mime)
    with smtp_server(behaviour) as (port, server):
        transport = SmtpTransport(SmtpConfig("127.0.0.1", port, connections=1,
                                             eight_bit=asked),
                                  "club-japon@example.org", builder)
        try:
            results = transport.send([Outgoing(1, "dot@example.com", tricky, SLUG),
                                      Outgoing(2, "plain@example.com", plain, SLUG)])
        finally:
            transport.close()
        assert [r.status for r in results] == [Status.SENT, Status.SENT]
        for address, message in (("dot@example.com", tricky), ("plain@example.com", plain)):
            received = server.message_for(address)
            parts = list(received.iter_parts())
            eight_bit = asked and eight_bit_mime
            assert [p["Content-Transfer-Encoding"] for p in parts] == (
                ["8bit"] * 2 if eight_bit else ["quoted-printable"] * 2)
            assert ("BODY=8BITMIME" in server.mail_options[address]) == eight_bit
            text = received.get_body(("plain",))
            assert text is not None
            assert text.get_content().replace("\r\n", "\n") == message.text
    assert "\n.\n.hidden line\n" in tricky.text


@pytest.mark.parametrize("seed", range(300))
def test_a_part_measured_once_tells_the_same_as_a_scan_of_each_body(seed: int) -> None:
    rng = random.Random(seed)
    bits = ["<p>", "text", "\n", ".", "..", "\r\n", "é", "x" * 300, "\0", ""]

    def piece(n: int) -> str:
        return "".join(rng.choice(bits) for _ in range(rng.randrange(0, n)))

    slots = ["greeting", "email", "unsubscribe_url"][: rng.randrange(0, 4)]
    source = piece(6) + "".join(f"{_OPEN}{slot}{_CLOSE}{piece(6)}" for slot in slots)
    part = _EightBitPart(Compiled.split(source))
    values = {slot: piece(3) for slot in slots}
    pieces, ok, dot = part.encode(values)
    body = b"".join(pieces)
    expected = _crlf(Compiled.split(source).fill(values)).encode("utf-8")
    assert body == expected
    longest, dot_lines, nul = naive(body)
    assert (ok, dot) == (longest <= MAX_LINE and not nul, dot_lines)


@pytest.mark.parametrize("static", ["x" * 1200, "a\n" + "x" * 1200, "x" * 1200 + "\nb"])
def test_a_part_without_slots_is_measured_too(static: str) -> None:
    pieces, ok, _dot = _EightBitPart(Compiled.split(static)).encode({})
    assert b"".join(pieces) == _crlf(static).encode() and not ok

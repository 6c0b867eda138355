"""The envelope sender of SMTP sends: the bounce address, and with VERP a token per row."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.returnpath import return_path
from clubjapon_ops.delivery.tokens import VerpSigner, verp_address, verp_token
from clubjapon_ops.delivery.transports import make_transport
from clubjapon_ops.delivery.transports.base import Outgoing, Status
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.settings import Settings
from tests.delivery.conftest import SLUG, home, make_settings  # noqa: F401
from tests.fakes.smtp_server import Behaviour, smtp_server

KEY = "test-secret-0123456789abcdef"


def test_a_token_names_its_row_and_survives_lower_and_upper_case() -> None:
    signer = VerpSigner(KEY)
    for row in (0, 1, 31, 32, 123_456, 2**40):
        token = signer.make(row)
        assert token == token.lower() and len(token) <= 24
        assert signer.read(token) == row
        assert signer.read(token.upper()) == row


def test_a_forged_or_foreign_token_names_nothing() -> None:
    token = VerpSigner(KEY).make(42)
    assert VerpSigner("another-key-0123456789abcdef").read(token) is None
    body, sig = token.split("-")
    assert VerpSigner(KEY).read(f"{body}b-{sig}") is None  # another row, same signature
    for junk in ("", "-", "abc", "1-xyz", "éé-éé", "a" * 200 + "-b"):
        assert VerpSigner(KEY).read(junk) is None


def test_the_token_is_found_in_the_address_whatever_its_case() -> None:
    assert verp_token("BOUNCES+AB-CD@Example.ORG", "bounces@example.org") == "ab-cd"
    assert verp_token("<bounces+ab-cd@example.org>", "bounces@example.org") == "ab-cd"
    assert verp_token("bounces@example.org", "bounces@example.org") is None
    assert verp_token("bounces+ab@other.org", "bounces@example.org") is None
    assert verp_token("other+ab@example.org", "bounces@example.org") is None


@pytest.fixture
def outgoing(home: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    newsletter = jobs.newsletter_for_sending(make_settings(home), SLUG)

    def make(row_id: int, email: str, *, test_copy: bool = False) -> Outgoing:
        contact = Contact(email=email, source="csv", first_name="Aki", language="ja")
        return Outgoing(row_id, email, newsletter.personalise(contact), SLUG,
                        test_copy=test_copy)

    return make


def _smtp_send(settings: Settings, items: list[Outgoing]) -> dict[str, str]:
    """Send through make_transport to aiosmtpd; return each recipient's MAIL FROM."""
    with smtp_server(Behaviour(pipelining=True)) as (port, server):
        settings = settings.with_overrides(smtp_port=port)
        transport = make_transport(settings, MimeBuilder(settings.mail_from))
        try:
            results = [transport.send([item], then=items[i + 1] if i + 1 < len(items) else None)[0]
                       for i, item in enumerate(items)]
        finally:
            transport.close()
    assert [r.status for r in results] == [Status.SENT] * len(items)
    return dict(server.mail_from)


def test_smtp_sends_use_the_from_address_by_default(home: Path, outgoing) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    settings = make_settings(home, CLUBJAPON_TRANSPORT="smtp", SMTP_HOST="127.0.0.1")
    got = _smtp_send(settings, [outgoing(1, "a@example.com")])
    assert got == {"a@example.com": parseaddr(settings.mail_from)[1]}


def test_smtp_sends_use_the_bounce_address(home: Path, outgoing) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    settings = make_settings(home, CLUBJAPON_TRANSPORT="smtp", SMTP_HOST="127.0.0.1",
                             CLUBJAPON_BOUNCE_ADDRESS="bounces@example.org",
                             CLUBJAPON_BOUNCE_VERP="false")
    got = _smtp_send(settings, [outgoing(1, "a@example.com"), outgoing(2, "b@example.com")])
    assert got == {"a@example.com": "bounces@example.org", "b@example.com": "bounces@example.org"}


def test_a_bounce_address_of_its_own_turns_verp_on(home: Path, outgoing) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    # VERP off, anyone could forge a DSN returning a reader's Message-ID (a hash of public
    # words); a return path the club runs takes bounces+TOKEN@ too, so VERP is the default.
    settings = make_settings(home, CLUBJAPON_TRANSPORT="smtp", SMTP_HOST="127.0.0.1",
                             CLUBJAPON_BOUNCE_ADDRESS="bounces@example.org")
    got = _smtp_send(settings, [outgoing(1, "a@example.com")])
    assert got["a@example.com"].startswith("bounces+")
    assert got["a@example.com"].endswith("@example.org")


def test_with_verp_each_message_names_its_row_pipelined_envelopes_included(
        home: Path, outgoing) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    settings = make_settings(home, CLUBJAPON_TRANSPORT="smtp", SMTP_HOST="127.0.0.1",
                             CLUBJAPON_BOUNCE_ADDRESS="bounces@example.org",
                             CLUBJAPON_BOUNCE_VERP="true")
    items = [outgoing(row, f"r{row}@example.com") for row in (7, 8, 900)]
    items.append(outgoing(5, "tester@example.com", test_copy=True))
    got = _smtp_send(settings, items)
    signer = VerpSigner(settings.secret or "")
    for item in items[:3]:
        sender = got[item.envelope_to]
        assert sender.startswith("bounces+") and sender.endswith("@example.org")
        token = verp_token(sender, "bounces@example.org")
        assert token is not None and signer.read(token) == item.id
    assert got["tester@example.com"] == "bounces@example.org"  # a test copy has no row


def test_verp_without_a_secret_stops_an_smtp_send(home: Path) -> None:  # noqa: F811
    settings = make_settings(home, CLUBJAPON_TRANSPORT="smtp", CLUBJAPON_BOUNCE_VERP="true")
    with pytest.raises(ConfigError, match="CLUBJAPON_SECRET"):
        return_path(settings.with_overrides(secret=None))


def test_outbox_files_carry_the_return_path(home: Path, outgoing) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    settings = make_settings(home, CLUBJAPON_BOUNCE_ADDRESS="bounces@example.org",
                             CLUBJAPON_BOUNCE_VERP="true")
    transport = make_transport(settings, MimeBuilder(settings.mail_from))
    item = outgoing(12, "a@example.com")
    assert transport.send([item])[0].status is Status.SENT
    written = next((settings.outbox_dir / SLUG).glob("12-*.eml")).read_bytes()
    first = written.split(b"\r\n", 1)[0].decode()
    token = verp_token(first.removeprefix("Return-Path: "), "bounces@example.org")
    assert token is not None and VerpSigner(settings.secret or "").read(token) == 12


def test_the_return_path_names_its_recipient_in_the_classic_verp_shape() -> None:
    token = VerpSigner(KEY).make(6)
    got = verp_address("bounces@bounce.example.org", token, "Yui.Tanaka+news@Example.CO.JP")
    assert got == f"bounces+{token}-yui.tanaka+news=example.co.jp@bounce.example.org"
    assert VerpSigner(KEY).read(verp_token(got, "bounces@bounce.example.org") or "") == 6


@pytest.mark.parametrize("recipient", ['"a b"@example.com', "a" * 40 + "@example.com",
                                       "x@localhost", None])
def test_a_recipient_that_does_not_fit_leaves_the_short_shape(recipient: str | None) -> None:
    # RFC 5321: a local part is at most 64 octets; a quoted one cannot be spliced in.
    token = VerpSigner(KEY).make(6)
    got = verp_address("bounces@example.org", token, recipient)
    assert got == f"bounces+{token}@example.org"
    assert len(got.rpartition("@")[0]) <= 64


def test_with_the_dash_delimiter_the_return_path_and_its_reading() -> None:
    token = VerpSigner(KEY).make(6)
    base = "bounces@bounce.example.org"
    got = verp_address(base, token, "Yui.Tanaka@Example.CO.JP", "-")
    assert got == f"bounces-{token}-yui.tanaka=example.co.jp@bounce.example.org"
    assert verp_address(base, token, None, "-") == f"bounces-{token}@bounce.example.org"
    # Both delimiters are read whatever the setting says now: bounces of messages sent
    # before it changed still name their rows.
    for address in (got, got.upper(), verp_address(base, token, "a@b.org", "+")):
        assert VerpSigner(KEY).read(verp_token(address, base) or "") == 6
    # Another mailbox whose name starts like ours is not ours.
    for other in (f"bounces2-{token}@bounce.example.org", f"bouncesx+{token}@bounce.example.org",
                  "bounces-@bounce.example.org"):
        assert verp_token(other, base) is None


@pytest.mark.parametrize(("delimiter", "address"), [
    ("-", "club-bounces@example.org"), ("+", "bounces+club@example.org")])
def test_a_bounce_address_holding_the_delimiter_is_refused_at_start(
    home: Path, delimiter: str, address: str  # noqa: F811
) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(home, CLUBJAPON_BOUNCE_ADDRESS=address,
                      CLUBJAPON_BOUNCE_VERP_DELIMITER=delimiter)
    assert str(refused.value).startswith(
        f"CLUBJAPON_BOUNCE_VERP_DELIMITER is {delimiter!r} and CLUBJAPON_BOUNCE_ADDRESS "
        f"({address}) has {delimiter!r} in its name")
    # VERP off: the address is used as it is, nothing is cut.
    make_settings(home, CLUBJAPON_BOUNCE_ADDRESS=address,
                  CLUBJAPON_BOUNCE_VERP_DELIMITER=delimiter, CLUBJAPON_BOUNCE_VERP="false")
    with pytest.raises(ConfigError, match=r"CLUBJAPON_BOUNCE_VERP_DELIMITER='_'.*expected \+ or -"):
        make_settings(home, CLUBJAPON_BOUNCE_VERP_DELIMITER="_")


def test_both_shapes_are_read_and_only_the_signature_counts() -> None:
    signer = VerpSigner(KEY)
    token = signer.make(6)
    assert signer.read(token) == 6  # messages sent before: local+token@domain
    assert signer.read(f"{token}-reader=example.com") == 6
    assert signer.read(f"{token}-someone=else.org") == 6  # the recipient is not what names
    body, sig = token.split("-")
    assert signer.read(f"{body}-{'a' * 13}-reader=example.com") is None
    assert signer.read(f"{body}-{sig}x-reader=example.com") is None

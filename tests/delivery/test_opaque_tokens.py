"""No link shows a reader's address (issue 25, item 8).

Before: an unsubscribe token was base64url(edition, address, language) plus a signature, so
anyone who saw a link (a proxy's log, a link scanner, a forwarded message) read the address in
it, and the confirm page printed it to whoever opened the link. Now a token names a ledger row,
signed; the address is found in the database when the reader acts. Links sent before keep
working (tests/delivery/test_unsubscribe_web.py drives them with ``make_legacy``).
"""

from __future__ import annotations

import base64
import binascii
import email
import re
import sqlite3
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select, text

from clubjapon_ops import jobs
from clubjapon_ops.delivery.tokens import TokenData, TokenSigner, VerpSigner
from clubjapon_ops.store import Store
from clubjapon_ops.store.pending import PendingUnsubscribes, pending_path
from clubjapon_ops.store.schema import deliveries, suppressions
from clubjapon_ops.web import create_app
from tests.delivery.conftest import SECRET, SLUG, make_settings, write_contacts

READERS = ["yui.tanaka@example.com", "jean.martin@example.com", "kenji.sato@example.com"]
KEY = "k" * 32
ONE_CLICK = {"data": "List-Unsubscribe=One-Click",
             "content_type": "application/x-www-form-urlencoded"}


def decodings(token: str) -> list[str]:
    """Every way a reader of the link could decode its parts: as is, base64url, base32."""
    found = [token]
    for part in re.split(r"[.\-~_]", token) + token.split("."):
        for decode in (lambda p: base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)),
                       lambda p: base64.b32decode(p.upper() + "=" * (-len(p) % 8))):
            try:
                found.append(decode(part).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                continue
    return found


def names_someone(token: str, address: str) -> bool:
    local = address.split("@")[0]
    return any(address in d or local in d for d in decodings(token))


def test_a_legacy_token_did_name_the_address_which_is_what_the_check_sees() -> None:
    # The check below is not vacuous: it finds the address in the links sent before.
    legacy = TokenSigner(KEY).make_legacy(SLUG, READERS[0], "ja")
    assert names_someone(legacy, READERS[0])


def test_a_row_token_names_the_row_and_the_language_only() -> None:
    signer = TokenSigner(KEY)
    token = signer.for_row(123456, "ja")
    assert signer.read(token) == TokenData("", "", "ja", row=123456)
    assert re.fullmatch(r"ja-[a-z2-7]+-[a-z2-7]{26}", token)
    assert signer.read(token.upper()) == TokenData("", "", "ja", row=123456)  # case-blind


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1],
    lambda t: t.replace("ja-", "fr-", 1),  # another language on the same signature
    lambda t: "ja-" + "b" + t.split("-", 2)[1][1:] + "-" + t.split("-", 2)[2],  # another row
    lambda t: t.rsplit("-", 1)[0],
    lambda t: t + "-x",
    lambda t: "ja-" + "a" * 14 + "-" + t.rsplit("-", 1)[1],  # more than 64 bits of row
], ids=["truncated", "language", "row", "unsigned", "extra", "oversized-row"])
def test_an_altered_row_token_is_refused(mangle: object) -> None:
    signer = TokenSigner(KEY)
    token = signer.for_row(4242, "ja")
    assert signer.read(mangle(token)) is None  # type: ignore[operator]


def test_row_test_and_verp_tokens_cannot_stand_for_one_another() -> None:
    signer, verp = TokenSigner(KEY), VerpSigner(KEY)
    assert signer.read(signer.for_test_copy("fr")) == TokenData("", "", "fr", test=True)
    # The same row in a return path's token is no unsubscribe link, and the reverse.
    verp_token = verp.make(7)
    assert signer.read("fr-" + verp_token) is None
    assert verp.read(signer.for_row(7, "fr").split("-", 1)[1]) is None
    # A test copy's signature over "fr" does not sign row tokens of any shape.
    test_sig = signer.for_test_copy("fr").split("-")[1]
    assert signer.read(f"fr-h-{test_sig}") is None


@pytest.fixture
def sent(home: Path, send_store: Store) -> Path:
    """The edition sent to READERS through the outbox: the folder of their messages."""
    write_contacts(home / "contacts.csv", READERS)
    jobs.crm_sync(make_settings(home), send_store)
    report = jobs.send_campaign(make_settings(home), send_store, SLUG)
    assert report.outcomes["sent"] == len(READERS)
    return make_settings(home).outbox_dir / SLUG


def links_of(raw: bytes, public_url: str) -> list[str]:
    message = email.message_from_bytes(raw, policy=policy.default)
    found = [message["List-Unsubscribe"].split(">")[0].lstrip("<")]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            found += re.findall(re.escape(public_url) + r"/unsubscribe/[^\s\"'<>]+",
                                part.get_content())
    return found


def test_no_link_in_a_sent_message_shows_its_readers_address(
    home: Path, sent: Path, send_store: Store
) -> None:
    public = make_settings(home).public_url
    for reader in READERS:
        raw = next(sent.glob(f"*-{reader}.eml")).read_bytes()
        links = links_of(raw, public)
        assert len(links) >= 3  # the header, the HTML footer and the text part's footer
        for link in links:
            token = link.rsplit("/", 1)[1]
            assert not names_someone(token, reader), link
        assert len(set(links)) == 1  # one link per message, wherever it is shown


def test_the_link_of_a_sent_message_unsubscribes_its_reader_and_the_page_names_nobody(
    home: Path, sent: Path, send_store: Store
) -> None:
    settings = make_settings(home)
    client = create_app(settings, lambda: send_store).test_client()
    raw = next(sent.glob(f"*-{READERS[1]}.eml")).read_bytes()
    path = links_of(raw, settings.public_url)[0].removeprefix(settings.public_url)
    page = client.get(path)
    assert page.status_code == 200
    assert READERS[1] not in page.get_data(as_text=True)
    assert "jean.martin" not in page.get_data(as_text=True)
    done = client.post(path, data={"List-Unsubscribe": "One-Click", "page": "1"})
    assert done.status_code == 200 and READERS[1] not in done.get_data(as_text=True)
    with send_store.transaction() as conn:
        rows = conn.execute(select(suppressions.c.email, suppressions.c.source,
                                   suppressions.c.reason)).all()
    assert [tuple(r) for r in rows] == [
        (READERS[1], "unsubscribe", f"unsubscribe link, edition {SLUG}")]


def test_a_signed_link_whose_row_is_not_there_changes_nothing(
    home: Path, sent: Path, send_store: Store
) -> None:
    client = create_app(make_settings(home), lambda: send_store).test_client()
    answer = client.post(f"/unsubscribe/{TokenSigner(SECRET).for_row(99999, 'fr')}",
                         **ONE_CLICK)
    assert answer.status_code == 400
    with send_store.transaction() as conn:
        assert conn.execute(select(suppressions.c.email)).all() == []


def test_a_row_link_kept_aside_while_the_store_is_held_reaches_the_right_reader(
    home: Path, sent: Path, send_store: Store
) -> None:
    settings = make_settings(home)
    with send_store.transaction() as conn:
        row = conn.execute(select(deliveries.c.id).where(
            deliveries.c.email == READERS[2])).scalar_one()
    client = create_app(settings, lambda: send_store).test_client()
    kept = PendingUnsubscribes(pending_path(home))
    token = TokenSigner(SECRET).for_row(row, "ja")
    if send_store.dialect == "sqlite":
        holder = sqlite3.connect(home / "var" / "clubjapon.sqlite3", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            assert client.post(f"/unsubscribe/{token}", **ONE_CLICK).status_code == 200
            # The file keeps the row, not the address: it names nobody either.
            content = kept.path.read_text(encoding="utf-8")
            assert f'"row": {row}' in content and READERS[2] not in content
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        with send_store.engine.connect() as conn, conn.begin():
            conn.execute(text("LOCK TABLE suppressions IN EXCLUSIVE MODE"))
            assert client.post(f"/unsubscribe/{token}", **ONE_CLICK).status_code == 200
            content = kept.path.read_text(encoding="utf-8")
            assert f'"row": {row}' in content and READERS[2] not in content
    # Whoever reaches the store next applies it (here: a drain, as the app's retry does).
    kept.drain(send_store, 5.0)
    with send_store.transaction() as conn:
        assert conn.execute(select(suppressions.c.email)).scalars().all() == [READERS[2]]
    assert not kept.waiting()

"""The outbox transport: one private file per ledger row, a safe name whatever the address."""

from __future__ import annotations

import email
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from clubjapon_ops import jobs
from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.transports import Outgoing, Status, make_transport
from clubjapon_ops.delivery.transports.outbox import OutboxTransport, eml_name
from clubjapon_ops.newsletter.service import Newsletter
from clubjapon_ops.store import Store
from clubjapon_ops.store.schema import deliveries
from tests.delivery.conftest import SLUG, make_settings, write_contacts

COLLIDING = ["a!b@example.com", "a#b@example.com", "a$b@example.com", "A!B@example.com"]
# Windows refuses these as a name's stem, whatever the extension.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
             *(f"lpt{i}" for i in range(10))}


@pytest.fixture
def newsletter(home: Path) -> Newsletter:
    return jobs.newsletter_for_sending(make_settings(home), SLUG)


@pytest.fixture
def private_umask() -> Iterator[None]:
    # The usual umask: what the outbox creates would be world-readable without its own modes.
    old = os.umask(0o022)
    yield
    os.umask(old)


def outgoing(newsletter: Newsletter, row: int, address: str) -> Outgoing:
    contact = Contact(email=address, source="csv", first_name="Ann", language="fr")
    return Outgoing(id=row, envelope_to=address, message=newsletter.personalise(contact),
                    edition=SLUG)


def recipient(path: Path) -> str:
    return str(email.message_from_bytes(path.read_bytes())["To"])


def test_addresses_that_look_alike_get_a_file_each_holding_their_own_message(
    tmp_path: Path, newsletter: Newsletter
) -> None:
    transport = OutboxTransport(tmp_path / "outbox", MimeBuilder(make_settings(tmp_path).mail_from))
    batch = [outgoing(newsletter, row, a) for row, a in enumerate(COLLIDING, start=41)]
    results = transport.send(batch)
    assert [r.status for r in results] == [Status.SENT] * 4
    files = sorted((tmp_path / "outbox" / SLUG).iterdir())
    assert len(files) == 4
    # Distinct even where the file system ignores case.
    assert len({f.name.lower() for f in files}) == 4
    for item, result in zip(batch, results, strict=True):
        path = tmp_path / "outbox" / SLUG / str(result.provider_id)
        assert recipient(path).endswith(f"<{item.envelope_to}>")
    # A resend of the same row replaces its file, never adds one.
    transport.send(batch[:1])
    assert len(list((tmp_path / "outbox" / SLUG).iterdir())) == 4


def test_a_campaign_to_look_alike_addresses_writes_one_file_per_ledger_row(
    home: Path, send_store: Store
) -> None:
    write_contacts(home / "contacts.csv", COLLIDING[:3])
    settings = make_settings(home)
    jobs.crm_sync(settings, send_store)
    report = jobs.send_campaign(settings, send_store, SLUG)
    assert report.outcomes["sent"] == 3
    with send_store.transaction() as conn:
        rows = conn.execute(select(deliveries.c.provider_message_id, deliveries.c.email)).all()
    folder = settings.outbox_dir / SLUG
    assert sorted(name for name, _ in rows) == sorted(p.name for p in folder.iterdir())
    assert len(rows) == len({name for name, _ in rows}) == 3
    for name, address in rows:
        assert recipient(folder / name).endswith(f"<{address}>")


@pytest.mark.parametrize("address", [
    "a!b@example.com", 'quoted"x"@example.com', "con@example.com", "con.x@example.com",
    "nul.@example.com", "trailing.@example.com", "jürgen@example.com", "ﾃｽﾄ@example.com",
    "a/b\\c:d*e?f|g<h>@example.com", "x" * 64 + "@" + "d" * 63 + "." + "e" * 63 + ".com",
    "CaSe@Example.COM", "..@example.com", " sp ace @example.com",
])
def test_outbox_names_are_safe_on_every_file_system(address: str) -> None:
    name = eml_name(123456789, address)
    assert re.fullmatch(r"[A-Za-z0-9@._+~-]+\.eml", name), name  # no \ / : * ? " < > |
    assert len(name.encode()) <= 150  # far below the 255 bytes of every file system
    assert name.split(".")[0].lower() not in _RESERVED
    assert not name.startswith(("-", ".")) and name[-5] not in ". "
    assert name == eml_name(123456789, address)  # the same row, the same name
    assert eml_name(123456790, address) != name


def test_outbox_folders_and_files_are_private(
    tmp_path: Path, newsletter: Newsletter, private_umask: None
) -> None:
    root = tmp_path / "var" / "outbox"
    transport = OutboxTransport(root, MimeBuilder(make_settings(tmp_path).mail_from))
    [result] = transport.send([outgoing(newsletter, 1, "ann@example.com")])
    assert result.status == Status.SENT
    for folder in (root, root / SLUG):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    [path] = (root / SLUG).iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_outbox_readable_by_others_is_made_private(
    tmp_path: Path, newsletter: Newsletter, private_umask: None
) -> None:
    root = tmp_path / "outbox"
    (root / SLUG).mkdir(parents=True, mode=0o755)
    transport = OutboxTransport(root, MimeBuilder(make_settings(tmp_path).mail_from))
    transport.send([outgoing(newsletter, 1, "ann@example.com")])
    for folder in (root, root / SLUG):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_a_non_ascii_address_fails_in_the_outbox_as_it_does_over_smtp(
    home: Path, newsletter: Newsletter
) -> None:
    item = outgoing(newsletter, 7, "jürgen@example.com")
    builder = MimeBuilder(make_settings(home).mail_from)
    smtp = make_transport(make_settings(home, CLUBJAPON_TRANSPORT="smtp", SMTP_PORT="9",
                                        CLUBJAPON_SEND_ATTEMPTS="1"), builder)
    outbox = make_transport(make_settings(home), builder)
    try:
        [over_smtp] = smtp.send([item])
        [in_outbox] = outbox.send([item])
    finally:
        smtp.close()
    assert over_smtp.status == Status.FAILED and "SMTPUTF8" in str(over_smtp.error)
    assert (in_outbox.status, in_outbox.error) == (over_smtp.status, over_smtp.error)
    assert not list((make_settings(home).outbox_dir).rglob("*.eml"))


def test_a_campaign_records_a_non_ascii_address_as_failed_not_unknown(
    home: Path, send_store: Store
) -> None:
    write_contacts(home / "contacts.csv", ["jürgen@example.com", "ann@example.com"])
    settings = make_settings(home)
    jobs.crm_sync(settings, send_store)
    jobs.send_campaign(settings, send_store, SLUG)
    with send_store.transaction() as conn:
        states = {r.email: (r.state, r.last_error) for r in conn.execute(select(deliveries))}
    assert states["ann@example.com"][0] == "sent"
    state, error = states["jürgen@example.com"]
    assert state == "failed" and "SMTPUTF8" in str(error)

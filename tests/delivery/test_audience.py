"""An edition's audience through the real sender and store, on SQLite and PostgreSQL: who is
planned, who leaves before their message goes out, and which variant each reader gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.delivery.sender import CampaignSender
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.store import Store
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.contacts import add_suppression
from clubjapon_ops.store.lists import LEFT, contact_ids, ledger_by_list, replace_memberships
from tests.delivery.conftest import SLUG, make_settings
from tests.delivery.test_sender import ScriptedTransport

AUDIENCE = """
audience:
  lists: [membres, Partenaires]
  exclude_lists: [Presse]
"""
# The inline list of sectors: for the people who came to the Opéra only.
ONLY_FOR = ("  - type: list\n    style: inline\n",
            "  - type: list\n    only_for: [Opéra 2025]\n    style: inline\n")
SECTORS = "Parmi les secteurs clés"


def edition_with(home: Path, audience: str = AUDIENCE, conditional: bool = True) -> None:
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    text = path.read_text(encoding="utf-8")
    if conditional:
        assert ONLY_FOR[0] in text
        text = text.replace(*ONLY_FOR)
    path.write_text(text + audience, encoding="utf-8")


def sync(home: Path, store: Store, rows: dict[str, str]) -> None:
    lines = ["email;first_name;language;listes"]
    lines += [f"{email};P{i};fr;{lists}" for i, (email, lists) in enumerate(rows.items())]
    (home / "contacts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    jobs.crm_sync(make_settings(home), store)


READERS = {
    "ana@example.com": "Membres|Opéra 2025",
    "ben@example.com": "Partenaires",
    "chie@example.com": "Membres|Presse",  # excluded: on Presse
    "dan@example.com": "Presse",
    "eve@example.com": "Membres",  # unsubscribed below: never in an audience
    "fay@example.com": "",
}


def make_sender(home: Path, store: Store, transport: ScriptedTransport) -> CampaignSender:
    newsletter = jobs.newsletter_for_sending(make_settings(home), SLUG)
    return CampaignSender(store, newsletter, transport)  # type: ignore[arg-type]


def states(store: Store) -> dict[str, str]:
    with store.transaction() as conn:
        return {r.email: r.state for r in conn.execute(
            ledger.deliveries.select().where(ledger.deliveries.c.edition == SLUG))}


@pytest.mark.parametrize("per_message", [False, True], ids=["batches", "lanes"])
def test_only_the_audience_is_planned_and_each_reader_gets_their_variant(
    home: Path, send_store: Store, per_message: bool
) -> None:
    edition_with(home)
    sync(home, send_store, READERS)
    with send_store.transaction() as conn:
        add_suppression(conn, "eve@example.com", "one-click", "unsubscribe")
    transport = ScriptedTransport(per_message=per_message)
    html: dict[str, str] = {}
    sent_by = transport.send

    def keep(batch, key=None, then=None):  # type: ignore[no-untyped-def]
        html.update({o.envelope_to: o.message.html for o in batch})
        return sent_by(batch, key, then)

    transport.send = keep  # type: ignore[method-assign]
    sender = make_sender(home, send_store, transport)
    report = sender.run(sender.prepare())
    assert report.planned == 2
    assert states(send_store) == {"ana@example.com": "sent", "ben@example.com": "sent"}
    assert SECTORS in html["ana@example.com"] and SECTORS not in html["ben@example.com"]
    # Render once: one variant per combination of conditions, not one per reader.
    assert len(sender.newsletter._variants) == 2


def test_a_reader_added_later_is_sent_next_time_and_one_removed_is_counted_apart(
    home: Path, send_store: Store
) -> None:
    edition_with(home, conditional=False)
    sync(home, send_store, READERS)
    sender = make_sender(home, send_store, ScriptedTransport())
    report = sender.prepare()
    assert report.planned == 3  # ana, ben, eve
    # Before anything goes out, ben is taken off Partenaires in the CRM.
    with send_store.transaction() as conn:
        ids = contact_ids(conn, ["ben@example.com"])
        replace_memberships(conn, "csv", {ids["ben@example.com"]: []})
    sender.run(report)
    assert states(send_store) == {"ana@example.com": "sent", "ben@example.com": LEFT,
                                  "eve@example.com": "sent"}
    # fay joins Membres: the next send plans and sends her, and only her.
    sync(home, send_store, {**READERS, "ben@example.com": "", "fay@example.com": "Membres"})
    again = make_sender(home, send_store, ScriptedTransport())
    second = again.run(again.prepare())
    assert second.planned == 1 and states(send_store)["fay@example.com"] == "sent"
    with send_store.transaction() as conn:
        by_list = ledger_by_list(conn, SLUG, ["membres", "partenaires"])
    assert by_list["membres"] == {"sent": 3}
    # ben is put back on Partenaires: the next send sends him after all.
    sync(home, send_store, {**READERS, "fay@example.com": "Membres"})
    third = make_sender(home, send_store, ScriptedTransport())
    assert third.run(third.prepare()).planned == 1
    assert states(send_store)["ben@example.com"] == "sent"


def test_unknown_lists_and_an_empty_audience_stop_the_send_before_planning(
    home: Path, send_store: Store
) -> None:
    sync(home, send_store, READERS)
    edition_with(home, "\naudience:\n  lists: [Membrs]\n", conditional=False)
    settings = make_settings(home)
    with pytest.raises(ConfigError, match=r"no list 'Membrs' .* did you mean 'Membres'"):
        jobs.send_campaign(settings, send_store, SLUG)
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "[Membrs]", "[Presse]\n  languages: [ja]"), encoding="utf-8")
    with pytest.raises(ConfigError, match="no reader in this audience: on Presse; reading ja"):
        jobs.send_campaign(settings, send_store, SLUG)
    assert states(send_store) == {}

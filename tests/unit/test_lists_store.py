"""Lists and memberships in the store: saved, replaced, retired, counted, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from clubjapon_ops.contacts import Contact
from clubjapon_ops.listnames import list_key
from clubjapon_ops.store import Store
from clubjapon_ops.store.contacts import add_suppression, upsert_contacts
from clubjapon_ops.store.lists import (
    AudienceQuery,
    SeenList,
    contact_ids,
    in_audience,
    known_lists,
    list_summaries,
    replace_memberships,
    retire_missing,
    save_lists,
)
from clubjapon_ops.store.schema import contacts

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _people(store: Store, *emails: str) -> dict[str, int]:
    with store.transaction() as conn:
        upsert_contacts(conn, [Contact(email=e, source="brevo") for e in emails])
        return contact_ids(conn, emails)


def test_list_names_match_without_case_or_accents() -> None:
    assert list_key("Partenaires Privilégiés") == list_key(" partenaires  privilegies")
    assert list_key("Membres") != list_key("Membre")


def test_a_later_sync_replaces_a_contacts_memberships(store: Store) -> None:
    ids = _people(store, "a@x.org", "b@x.org")
    with store.transaction() as conn:
        lists = save_lists(conn, "brevo", [SeenList("Membres", "1"), SeenList("Presse", "2")],
                           NOW)
        replace_memberships(conn, "brevo", {ids["a@x.org"]: [lists["membres"], lists["presse"]],
                                            ids["b@x.org"]: [lists["presse"]]})
        replace_memberships(conn, "brevo", {ids["a@x.org"]: [lists["membres"]]})
        summary = {s.name: (s.subscribed, s.suppressed) for s in list_summaries(conn)}
    assert summary == {"Membres": (1, 0), "Presse": (1, 0)}


def test_counts_tell_suppressed_members_apart(store: Store) -> None:
    ids = _people(store, "a@x.org", "b@x.org")
    with store.transaction() as conn:
        lists = save_lists(conn, "brevo", [SeenList("Membres", "1")], NOW)
        replace_memberships(conn, "brevo", {i: [lists["membres"]] for i in ids.values()})
        add_suppression(conn, "b@x.org", "one-click", "unsubscribe")
        [summary] = list_summaries(conn)
    assert (summary.subscribed, summary.suppressed) == (1, 1)


def test_a_renamed_list_is_reported_with_its_new_name(store: Store) -> None:
    ids = _people(store, "a@x.org")
    with store.transaction() as conn:
        lists = save_lists(conn, "brevo", [SeenList("Membres", "1"), SeenList("Presse", "2")],
                           NOW)
        replace_memberships(conn, "brevo", {ids["a@x.org"]: [lists["membres"]]})
        save_lists(conn, "brevo", [SeenList("Adhérents", "1"), SeenList("Presse", "2")], NOW)
        gone = retire_missing(conn, "brevo", ["adherents", "presse"], NOW)
        again = retire_missing(conn, "brevo", ["adherents", "presse"], NOW)
        known = known_lists(conn)
    assert [(g.name, g.renamed_to) for g in gone] == [("Membres", "Adhérents")]
    assert again == []  # said once, not at every sync
    assert set(known) == {"adherents", "presse"}


def test_an_audience_in_sql_keeps_lists_drops_excluded_and_languages(store: Store) -> None:
    with store.transaction() as conn:
        upsert_contacts(conn, [Contact(email="fr@x.org", source="brevo", language="fr"),
                               Contact(email="ja@x.org", source="brevo", language="ja"),
                               Contact(email="both@x.org", source="brevo", language="fr"),
                               Contact(email="none@x.org", source="brevo", language="fr")])
        ids = contact_ids(conn, ["fr@x.org", "ja@x.org", "both@x.org"])
        lists = save_lists(conn, "brevo", [SeenList("Membres"), SeenList("Presse")], NOW)
        replace_memberships(conn, "brevo", {
            ids["fr@x.org"]: [lists["membres"]], ids["ja@x.org"]: [lists["membres"]],
            ids["both@x.org"]: [lists["membres"], lists["presse"]]})

        def who(query: AudienceQuery | None) -> set[str]:
            return set(conn.execute(select(contacts.c.email).where(in_audience(query)))
                       .scalars())

        assert who(None) == {"fr@x.org", "ja@x.org", "both@x.org", "none@x.org"}
        assert who(AudienceQuery(lists=("membres",))) == {"fr@x.org", "ja@x.org", "both@x.org"}
        assert who(AudienceQuery(lists=("membres",), exclude=("presse",))) == {
            "fr@x.org", "ja@x.org"}
        assert who(AudienceQuery(lists=("membres",), languages=("ja",))) == {"ja@x.org"}

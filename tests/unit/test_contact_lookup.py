"""The store's contact look-ups for ops, on both engines: find by text, closest addresses."""

from __future__ import annotations

from clubjapon_ops.contacts import Contact
from clubjapon_ops.store import Store
from clubjapon_ops.store.contacts import (
    add_suppression,
    closest_emails,
    find_contacts,
    has_contacts,
    suppressed_among,
    upsert_contacts,
)


def _load(store: Store, *people: Contact) -> None:
    with store.transaction() as conn:
        upsert_contacts(conn, list(people))


def test_find_matches_any_case_in_address_names_and_company_wildcards_literal(
        store: Store) -> None:
    _load(store,
          Contact("hiroshi.yamamoto@example.jp", "csv", "Hiroshi", "Yamamoto", "Tōhoku Denki"),
          Contact("jean_dupont@example.com", "csv", "Jean", "Dupont", "100% Lille"),
          Contact("jeanxdupont@example.com", "csv", "Jeanne", None, None))
    with store.transaction() as conn:
        def emails(text: str) -> list[str]:
            return [f.contact.email for f in find_contacts(conn, text, 10)]

        assert emails("HIROSHI YAMA") == ["hiroshi.yamamoto@example.jp"]
        assert emails("tōhoku") == ["hiroshi.yamamoto@example.jp"]
        assert emails("n_d") == ["jean_dupont@example.com"]  # '_' is no wildcard
        assert emails("100%") == ["jean_dupont@example.com"]
        assert emails("jean") == ["jean_dupont@example.com", "jeanxdupont@example.com"]
        assert [f.contact.email for f in find_contacts(conn, "example", 1)] == [
            "hiroshi.yamamoto@example.jp"]


def test_closest_emails_names_the_typo_meant_best_first_and_not_the_far_ones(
        store: Store) -> None:
    with store.transaction() as conn:
        assert not has_contacts(conn)
        assert closest_emails(conn, "anyone@example.org") == []
    _load(store, *(Contact(f"member{i:04}@club.example", "csv") for i in range(300)),
          Contact("hiroshi.yamamoto@example.jp", "csv"),
          Contact("hiroshi.yamamoto@gmail.com", "csv"),
          Contact("someone.else@example.jp", "csv"))
    with store.transaction() as conn:
        assert has_contacts(conn)
        assert closest_emails(conn, "hiroshi.yamamto@example.jp") == [
            "hiroshi.yamamoto@example.jp"]
        # A typo in the domain: found through the local part.
        assert closest_emails(conn, "hiroshi.yamamoto@gmial.com")[0] == (
            "hiroshi.yamamoto@gmail.com")
        assert len(closest_emails(conn, "member0001@club.exampel", n=3)) == 3
        assert closest_emails(conn, "zz@nowhere.example") == []
        add_suppression(conn, "someone.else@example.jp", "test", "unsubscribe")
        assert suppressed_among(conn, ["someone.else@example.jp", "x@y.z"]) == {
            "someone.else@example.jp"}

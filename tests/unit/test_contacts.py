from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clubjapon_ops.contacts import (
    RawContact,
    normalise,
    normalise_email,
    normalise_language,
    parse_timestamp,
)
from clubjapon_ops.errors import InvalidContact
from clubjapon_ops.store.contacts import dedupe


def raw(**fields: object) -> RawContact:
    base: dict[str, object] = {"ref": "line 2", "source": "csv", "email": "a@example.com"}
    base.update(fields)
    return RawContact(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("  Jean.Dupont@Example.COM \t", "jean.dupont@example.com"),
        ("yui@Société.example", "yui@xn--socit-esab.example"),
        ("kenji@例え.jp", "kenji@xn--r8jz45g.jp"),
    ],
    ids=["trim-and-case", "idna-french", "idna-japanese"],
)
def test_email_is_trimmed_lowercased_and_idna_encoded(given: str, expected: str) -> None:
    assert normalise_email(given) == expected


@pytest.mark.parametrize(
    "given",
    ["", "   ", None, 42, "no-at-sign", "a@", "@example.com", "a b@example.com",
     "a@example.com\r\nBcc: victim@example.com", "x" * 300 + "@example.com"],
    ids=["empty", "blank", "none", "int", "no-at", "no-domain", "no-local", "space",
         "header-injection", "too-long"],
)
def test_invalid_emails_are_rejected(given: object) -> None:
    with pytest.raises(InvalidContact):
        normalise_email(given)


@pytest.mark.parametrize(
    ("label", "expected"),
    [("fr", "fr"), ("FR", "fr"), ("fr-FR", "fr"), ("fr_BE", "fr"), ("Français", "fr"),
     ("en", "en"), ("EN-gb", "en"), ("English", "en"), ("ja", "ja"), ("ja-JP", "ja"),
     ("JP", "ja"), ("Japanese", "ja"), ("日本語", "ja"), ("", "fr"), (None, "fr"),
     ("de", "fr")],
)
def test_language_variants_map_to_three_codes(label: str | None, expected: str) -> None:
    assert normalise_language(label) == expected


def test_names_are_nfc_on_one_line_and_html_is_kept_as_text() -> None:
    decomposed = "Ele\u0301onore"  # e + combining acute
    c = normalise(raw(first_name=f"  {decomposed}\r\n", last_name="<script>alert(1)</script>",
                      company="Takumi\nR&D"))
    assert c.first_name == "El\u00e9onore"
    assert c.last_name == "<script>alert(1)</script>"
    assert c.company == "Takumi R&D"
    assert "\n" not in (c.company or "") and "\r" not in (c.first_name or "")


def test_empty_names_become_none() -> None:
    c = normalise(raw(first_name="   ", last_name=""))
    assert c.first_name is None and c.last_name is None


@pytest.mark.parametrize("label", ["first_name", "last_name", "company"])
def test_an_over_long_name_is_dropped_and_the_contact_kept(label: str) -> None:
    notes: list[str] = []
    c = normalise(raw(**{label: "x" * 201, "email": "kept@example.com"}), notes)
    assert c.email == "kept@example.com"
    assert getattr(c, label) is None
    assert notes == [f"{label.replace('_', ' ')} longer than 200 characters"]


def test_a_name_of_200_characters_is_kept_whole() -> None:
    notes: list[str] = []
    assert normalise(raw(first_name="é" * 200), notes).first_name == "é" * 200
    assert notes == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"crm_id": "9" * 201}, "CRM id is longer than 200"),
        ({"company": ["a", "b"]}, "company is a list"),
        ({"opted_out": "peut-être"}, "opt-out is not a yes/no value"),
        ({"updated_at": "yesterday"}, "updated date is not a date"),
        ({"email": ""}, "no email address"),
    ],
)
def test_invalid_records_name_their_reference_and_reason(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidContact) as info:
        normalise(raw(**fields))
    assert info.value.ref == "line 2"
    assert info.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("oui", True), ("Yes", True), ("x", True), (True, True), ("non", False), ("", False),
     (None, False), ("false", False)],
)
def test_opt_out_flags(value: object, expected: bool) -> None:
    assert normalise(raw(opted_out=value)).opted_out is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-11-04T09:30:00Z", datetime(2025, 11, 4, 9, 30, tzinfo=UTC)),
        ("2025-11-04T10:30:00+01:00", datetime(2025, 11, 4, 9, 30, tzinfo=UTC)),
        ("04/11/2025", datetime(2025, 11, 4, tzinfo=UTC)),
        ("1762248600000", datetime(2025, 11, 4, 9, 30, tzinfo=UTC)),
        (1762248600000, datetime(2025, 11, 4, 9, 30, tzinfo=UTC)),
        ("", None),
    ],
)
def test_timestamps(value: object, expected: datetime | None) -> None:
    assert parse_timestamp(value, "date") == expected


def test_duplicates_merge_to_the_most_recently_updated() -> None:
    older = normalise(raw(email="Jean@Example.com", first_name="Old",
                          updated_at="2025-01-01T00:00:00Z"))
    newer = normalise(raw(email="jean@example.com", first_name="New",
                          updated_at="2025-06-01T00:00:00Z"))
    undated = normalise(raw(email="JEAN@example.com", first_name="Undated"))
    for order in ([older, newer, undated], [newer, older, undated], [undated, newer, older]):
        (winner,) = dedupe(order)
        assert winner.first_name == "New"


def test_duplicates_without_dates_keep_the_later_record() -> None:
    first = normalise(raw(email="a@example.com", first_name="First"))
    second = normalise(raw(email="A@example.com", first_name="Second"))
    assert [c.first_name for c in dedupe([first, second])] == ["Second"]

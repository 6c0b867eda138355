"""Looking contacts up as ops does, as a subprocess: contacts show and find, unsubscribe's
check of its address, and send on a store that was never synced."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.delivery.conftest import SLUG, home  # noqa: F401
from tests.e2e.test_suppressions_cli import cli

pytestmark = pytest.mark.e2e

HIROSHI = "hiroshi.yamamoto@example.jp"
TYPO = "hiroshi.yamamto@example.jp"
CSV = [
    "email;first_name;last_name;company;language;lists",
    f"{HIROSHI};Hiroshi;Yamamoto;Tōhoku Denki;ja;Presse|Membres",
    "jean.dupont@example.com;Jean;Dupont;Hokuto France;fr;Membres",
    "anna.smith@example.org;Anna;Smith;;en;",
    "hiroko.yamada@example.jp;Hiroko;Yamada;Hokuto France;ja;",
]


def db(home: Path) -> sqlite3.Connection:  # noqa: F811
    return sqlite3.connect(home / "var" / "clubjapon.sqlite3")


@pytest.fixture
def synced(home: Path) -> Path:  # noqa: F811
    (home / "contacts.csv").write_text("\n".join(CSV) + "\n", encoding="utf-8")
    result = cli(home, "sync")
    assert result.returncode == 0, result.stderr
    return home


def test_unsubscribe_of_a_mistyped_address_names_the_contact_meant_and_exits_2(
        synced: Path) -> None:
    result = cli(synced, "unsubscribe", TYPO)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{TYPO} is not a contact; did you mean {HIROSHI} or " in result.stderr
    assert "--anyway" in result.stderr and "unsubscribed" not in result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    with db(synced) as conn:
        assert conn.execute("SELECT email FROM suppressions").fetchall() == []

    nothing_close = cli(synced, "unsubscribe", "zzz@nowhere.example")
    assert nothing_close.returncode == 2
    assert "no stored address is close to it" in nothing_close.stderr

    meant = cli(synced, "unsubscribe", HIROSHI.upper(), "--reason", "phone call")
    assert meant.returncode == 0, meant.stderr
    assert f"{HIROSHI}: unsubscribed" in meant.stdout
    # An address that is not a contact yet may still be suppressed, on purpose.
    anyway = cli(synced, "unsubscribe", "new.reader@example.com", "--anyway")
    assert anyway.returncode == 0, anyway.stderr
    with db(synced) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT email FROM suppressions")) == [
            HIROSHI, "new.reader@example.com"]


def test_contacts_show_gives_the_contact_its_suppressions_editions_and_events(
        synced: Path) -> None:
    sent = cli(synced, "send", SLUG, "--yes")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert cli(synced, "unsubscribe", HIROSHI, "--reason", "phone call").returncode == 0
    with db(synced) as conn:
        (delivery,) = conn.execute("SELECT id FROM deliveries WHERE email = ?",
                                   (HIROSHI,)).fetchone()
        conn.execute(
            "INSERT INTO events (provider, event_key, delivery_id, email, type, provider_event,"
            " reason, occurred_at, received_at, raw) VALUES ('brevo', 'k1', ?, ?, 'open',"
            " 'opened', ?, '2025-11-05 08:00:00', '2025-11-05 08:00:01', '{}')",
            (delivery, HIROSHI, "seen \x1b[2J on a phone"))

    result = cli(synced, "contacts", "show", HIROSHI)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.splitlines()[0] == HIROSHI
    assert "Hiroshi Yamamoto" in out and "Tōhoku Denki" in out and "language:    ja" in out
    assert "opted out:   no" in out
    assert "unsubscribe" in out and "(phone call)" in out
    assert "lists:       Membres, Presse" in out
    # Times in the club's zone (CLUBJAPON_TIMEZONE, Europe/Paris by default), zone written:
    # the event stored at 08:00 UTC on 5 November is 09:00 CET.
    assert "2025-11-05 09:00:00 CET  open" in out
    assert f"{SLUG}  sent " in out and "1 attempt(s)" in out
    assert "open" in out and "brevo" in out
    # A control character from a stored value never reaches the terminal as such.
    assert "\x1b" not in out and "seen \\x1b[2J on a phone" in out

    with db(synced) as conn:  # a row the provider refused, as a 401 leaves it
        conn.execute("UPDATE deliveries SET state = 'retry', last_cause = '401' "
                     "WHERE email = 'anna.smith@example.org'")
    other = cli(synced, "contacts", "show", "anna.smith@example.org")
    assert other.returncode == 0 and "suppressed:  no" in other.stdout
    assert "lists:       none" in other.stdout
    assert f"{SLUG}  retry, sent " in other.stdout
    assert "provider's last answer: 401" in other.stdout

    unknown = cli(synced, "contacts", "show", TYPO)
    assert unknown.returncode == 1
    assert f"did you mean {HIROSHI} or" in unknown.stderr and unknown.stdout == ""


def test_contacts_find_matches_address_name_and_company_one_line_each(synced: Path) -> None:
    by_company = cli(synced, "contacts", "find", "hokuto")
    assert by_company.returncode == 0, by_company.stderr
    lines = by_company.stdout.splitlines()
    assert lines == ["hiroko.yamada@example.jp  ja  Hiroko Yamada  Hokuto France",
                     "jean.dupont@example.com  fr  Jean Dupont  Hokuto France"]
    by_name = cli(synced, "contacts", "find", "Hiroshi Yama")
    assert by_name.stdout.splitlines() == [f"{HIROSHI}  ja  Hiroshi Yamamoto  Tōhoku Denki"]
    by_domain = cli(synced, "contacts", "find", "@EXAMPLE.JP")
    assert len(by_domain.stdout.splitlines()) == 2
    # LIKE's wildcards are plain characters here.
    assert cli(synced, "contacts", "find", "%_").returncode == 1
    none = cli(synced, "contacts", "find", "nobody")
    assert none.returncode == 1 and "no contact" in none.stderr


def test_contacts_find_is_bounded(home: Path) -> None:  # noqa: F811
    lines = ["email;first_name;language"] + [f"m{i:03}@example.com;Membre;fr"
                                              for i in range(60)]
    (home / "contacts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli(home, "sync").returncode == 0
    result = cli(home, "contacts", "find", "membre")
    assert result.returncode == 0, result.stderr
    shown = result.stdout.splitlines()
    assert len(shown) == 51 and shown[0].startswith("m000@example.com")
    assert "there are more" in shown[-1]


def test_send_on_a_store_never_synced_exits_2_saying_to_sync(home: Path) -> None:  # noqa: F811
    result = cli(home, "send", SLUG, "--yes")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == "error: no contacts: run clubjapon-ops sync first"
    assert "ledger" not in result.stdout

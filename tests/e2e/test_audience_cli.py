"""An edition sent to its audience through the CLI: the plan by language and list, the exit
codes of a wrong audience, `status` by list. Subprocesses, a real SQLite file, the outbox."""

from __future__ import annotations

import email
import email.policy
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.conftest import POSTAL_ADDRESS, SECRET, SLUG, home  # noqa: F401
from tests.delivery.test_audience import ONLY_FOR, SECTORS

pytestmark = pytest.mark.e2e

CSV = """email;first_name;language;listes
ana@example.com;Ana;fr;Membres|Opéra 2025
ben@example.com;Ben;en;Partenaires
chie@example.com;Chie;ja;Membres|Presse
dan@example.com;Dan;fr;Presse
eve@example.com;Eve;fr;Membres
"""


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: F811
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_"))}
    env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(home / "contacts.csv"),
                "CLUBJAPON_SECRET": SECRET, "CLUBJAPON_POSTAL_ADDRESS": POSTAL_ADDRESS})
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def set_audience(home: Path, audience: str) -> None:  # noqa: F811
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    text = path.read_text(encoding="utf-8").split("\naudience:")[0]
    path.write_text(text.replace(*ONLY_FOR) + audience, encoding="utf-8")


def ledger(home: Path) -> dict[str, str]:  # noqa: F811
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        return dict(db.execute("SELECT email, state FROM deliveries"))


def plain_text(home: Path, address: str) -> str:  # noqa: F811
    [path] = (home / "var" / "outbox" / SLUG).glob(f"*{address}*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return str(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def test_members_and_partners_only_with_a_section_for_the_opera(home: Path) -> None:  # noqa: F811
    (home / "contacts.csv").write_text(CSV, encoding="utf-8")
    assert cli(home, "sync").returncode == 0
    assert cli(home, "unsubscribe", "eve@example.com").returncode == 0
    set_audience(home, "\naudience:\n  lists: [membres, Partenaires]\n"
                       "  exclude_lists: [Presse]\n")

    before = cli(home, "status", SLUG)
    assert before.returncode == 0, before.stderr
    assert "a send now would plan 2 (en 1, fr 1)" in before.stdout
    assert "new, by list: membres 1, Partenaires 1" in before.stdout

    plan = cli(home, "send", SLUG, "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "to send now: 2  (new: en 1, fr 1)" in plan.stdout  # eve is suppressed
    assert "audience: on membres or Partenaires; not on Presse" in plan.stdout
    assert "new, by list: membres 1, Partenaires 1" in plan.stdout
    assert "sections for part of it, new readers on: Opéra 2025 1" in plan.stdout
    assert "dry run: built 2 message(s)" in plan.stdout
    assert ledger(home) == {}

    sent = cli(home, "send", SLUG, "--yes")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert ledger(home) == {"ana@example.com": "sent", "ben@example.com": "sent"}
    assert SECTORS in plain_text(home, "ana@example.com")
    assert "Key sectors include" not in plain_text(home, "ben@example.com")

    status = cli(home, "status", SLUG)
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line.split()[1:] for line in status.stdout.splitlines()
            if line.startswith("    ") and not line.strip().startswith("list ")}
    assert rows == {"Membres": ["1", "1", "0", "0", "0"], "Opéra": ["2025", "1", "1", "0", "0",
                                                                   "0"],
                    "Partenaires": ["1", "1", "0", "0", "0"]}


def test_an_unknown_list_or_an_empty_audience_exits_2_and_sends_nothing(
    home: Path,  # noqa: F811
) -> None:
    (home / "contacts.csv").write_text(CSV, encoding="utf-8")
    assert cli(home, "sync").returncode == 0
    set_audience(home, "\naudience:\n  lists: [Partenaire]\n")
    typo = cli(home, "send", SLUG, "--yes")
    assert typo.returncode == 2, typo.stdout + typo.stderr
    assert "no list 'Partenaire' in the CRM's synced lists: did you mean 'Partenaires'?" in (
        typo.stderr)
    assert "to send now" not in typo.stdout  # refused before the plan
    set_audience(home, "\naudience:\n  lists: [Partenaires]\n  languages: [ja]\n")
    empty = cli(home, "send", SLUG, "--yes")
    assert empty.returncode == 2, empty.stdout + empty.stderr
    assert "no reader in this audience: on Partenaires; reading ja" in empty.stderr
    assert ledger(home) == {}


def test_the_lint_names_an_unknown_list_with_a_did_you_mean(home: Path) -> None:  # noqa: F811
    (home / "contacts.csv").write_text(CSV, encoding="utf-8")
    assert cli(home, "sync").returncode == 0
    set_audience(home, "\naudience:\n  exclude_lists: [Prese]\n")
    check = cli(home, "preview", SLUG, "--check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert ("error: config/editions/2025-11-04-lille.yaml audience.exclude_lists: no list "
            "'Prese' in the CRM's synced lists: did you mean 'Presse'? [lists]") in check.stdout

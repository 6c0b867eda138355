"""`make run`, the README's first command: the embedded demo, whatever .env says."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
LILLE = "2025-11-04-lille"
DRAFT = "2026-03-12-draft"  # sorts last, as the next edition being written would


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's files that `make run` reads, with an operator's .env."""
    for name in ("config", "templates"):
        shutil.copytree(PROJECT / name, tmp_path / name)
    shutil.copy(PROJECT / "Makefile", tmp_path / "Makefile")
    # A draft that does not pass the lint yet: its subject is far too long.
    text = (tmp_path / "config" / "editions" / f"{LILLE}.yaml").read_text(encoding="utf-8")
    long_subject = "Brouillon " * 20
    draft = text.replace("Club Japon des Hauts-de-France : retour sur la 3e édition",
                         long_subject, 1)
    assert draft != text
    (tmp_path / "config" / "editions" / f"{DRAFT}.yaml").write_text(draft, encoding="utf-8")
    # What an operator's .env holds: a real transport and a store of their own. Nothing
    # listens on port 9 here; a send through it would fail, not land in the outbox.
    (tmp_path / ".env").write_text(
        "CLUBJAPON_TRANSPORT=smtp\nSMTP_HOST=127.0.0.1\nSMTP_PORT=9\n"
        "CLUBJAPON_DATABASE_URL=sqlite:///var/production.sqlite3\n"
        "CLUBJAPON_SECRET=an-operator-secret-0123456789\n", encoding="utf-8")
    return tmp_path


@pytest.mark.skipif(MAKE is None, reason="no make: apt-get install make (see .ci/run)")
def test_make_run_sends_the_newest_ready_edition_to_the_outbox_only(project: Path) -> None:
    venv = Path(sys.prefix)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "HUBSPOT_", "BREVO_", "SMTP_", "SENDGRID_"))}
    env["EDITION"] = DRAFT  # nor can an edition named by hand skip the ready check
    # This test's venv is already installed: -o keeps make from installing into it again.
    result = subprocess.run(
        [str(MAKE), "-s", "-o", f"{venv}/.installed-run", f"VENV={venv}", "run"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outbox = project / "var" / "demo" / "outbox"
    sent = sorted((outbox / LILLE).glob("*.eml"))
    assert len(sent) == 46, result.stdout
    assert not (outbox / DRAFT).exists()
    assert "via outbox" in result.stdout and "smtp" not in result.stdout
    # The operator's store is never touched: the demo has its own.
    assert not (project / "var" / "production.sqlite3").exists()
    assert (project / "var" / "demo" / "clubjapon.sqlite3").is_file()
    # The commands it prints read the demo's store, not the operator's: pasted as they are,
    # status shows the messages just sent.
    pasted = [line.strip() for line in result.stdout.splitlines()
              if line.strip().startswith("CLUBJAPON_DATABASE_URL=")]
    assert [line.split()[-2:] for line in pasted] == [[LILLE, "--serve"], ["status", LILLE]]
    status = subprocess.run(["sh", "-c", pasted[1]], cwd=project, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert status.returncode == 0, status.stderr
    assert f"{LILLE}: 46 recipient(s) in the ledger" in status.stdout
    assert "sent 46" in status.stdout
    assert not (project / "var" / "production.sqlite3").exists()
    # The demo shows a footer as a real send must: the sample postal address, both parts.
    parsed = email.message_from_bytes(sent[0].read_bytes(), policy=email.policy.default)
    for part in parsed.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            assert "1 rue Exemple" in part.get_content(), part.get_content_type()

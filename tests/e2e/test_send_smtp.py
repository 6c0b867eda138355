"""Sending for real: the CLI as a subprocess, a real SQLite ledger, aiosmtpd on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from email.utils import parseaddr
from pathlib import Path

import pytest

from tests.delivery.conftest import POSTAL_ADDRESS, SECRET, SLUG, home, write_contacts  # noqa: F401
from tests.fakes.smtp_server import Behaviour, smtp_server

pytestmark = pytest.mark.e2e


def env_for(home: Path, port: int, **extra: str) -> dict[str, str]:  # noqa: F811
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_"))}
    env.update({
        "CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(home / "contacts.csv"),
        "CLUBJAPON_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
        "CLUBJAPON_SECRET": SECRET, "CLUBJAPON_POSTAL_ADDRESS": POSTAL_ADDRESS,
        "CLUBJAPON_SEND_RETRY_WAIT": "0.05",
        "CLUBJAPON_ERROR_BUDGET": "1000",
    })
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def ledger(home: Path) -> dict[str, str]:  # noqa: F811
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        return dict(db.execute("SELECT email, state FROM deliveries WHERE edition = ?", (SLUG,)))


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
def test_send_over_smtp_with_tempfails_rejects_and_a_dropped_connection(
    home: Path, pipelining: bool  # noqa: F811
) -> None:
    emails = [f"reader{i}@example.com" for i in range(60)]
    emails += ["greylist1@example.com", "greylist2@example.com", "nobody@example.com",
               "dropme@example.com"]
    write_contacts(home / "contacts.csv", emails)
    behaviour = Behaviour(tempfail_times={"greylist": 2}, reject=("nobody",),
                          drop_data_once=("dropme",), pipelining=pipelining)
    with smtp_server(behaviour) as (port, server):
        env = env_for(home, port)
        assert cli(env, "sync").returncode == 0
        result = cli(env, "send", SLUG, "--yes")
        assert result.returncode == 3, result.stdout + result.stderr  # partial: one failed
        rows = ledger(home)
        assert rows["nobody@example.com"] == "failed"
        assert rows["dropme@example.com"] == "unknown"
        assert rows["greylist1@example.com"] == rows["greylist2@example.com"] == "sent"
        assert server.tempfailed["greylist1@example.com"] == 2  # retried within the run
        # The ledger matches what the server received, recipient by recipient.
        received = server.counts
        for email, state in rows.items():
            assert received[email] == (1 if state == "sent" else 0), email
        assert "unknown 1" in result.stdout and "--resend-unknown" in result.stdout
        with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
            assert db.execute("SELECT source FROM suppressions WHERE email = ?",
                              ("nobody@example.com",)).fetchall() == [("bounce",)]

        message = server.message_for("reader3@example.com")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = message["List-Unsubscribe"].split(">")[0].lstrip("<")
        assert url.startswith("https://club-japon.example.org/unsubscribe/")
        html = message.get_body(("html",)).get_content()
        text = message.get_body(("plain",)).get_content()
        assert url in html.replace("&amp;", "&") and url in text

        again = cli(env, "send", SLUG, "--yes")
        # Nothing left to send, but the unknown row still waits for the operator.
        assert again.returncode == 3, again.stdout + again.stderr
        assert sum(received.values()) == 62  # 60 readers and 2 greylisted: none twice
        resend = cli(env, "send", SLUG, "--yes", "--resend-unknown")
        assert resend.returncode == 0
        assert received["dropme@example.com"] == 1 and ledger(home)["dropme@example.com"] == "sent"


@pytest.mark.parametrize(("commit_every", "pipelining"), [(1, False), (10, False), (1, True)],
                         ids=["commit-each", "commit-every-10", "commit-each-pipelining"])
def test_sigkill_mid_send_then_rerun_sends_each_message_once(
    home: Path, commit_every: int, pipelining: bool  # noqa: F811
) -> None:
    emails = [f"member{i}@example.com" for i in range(1500)]
    write_contacts(home / "contacts.csv", emails)
    # With pipelining, each connection also has the next message's envelope open at the kill.
    with smtp_server(Behaviour(data_delay=0.002, pipelining=pipelining)) as (port, server):
        env = env_for(home, port, SMTP_CONNECTIONS="2",
                      CLUBJAPON_SEND_COMMIT_EVERY=str(commit_every))
        assert cli(env, "sync").returncode == 0
        proc = subprocess.Popen([sys.executable, "-m", "clubjapon_ops", "send", SLUG, "--yes"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while sum(server.counts.values()) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = sum(server.counts.values())
        assert 300 <= killed_at < 1500, "the send should have been killed mid-way"

        rerun = cli(env, "send", SLUG, "--yes")
        with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
            statuses = [s for (s,) in db.execute(
                "SELECT status FROM job_runs WHERE job = 'send_campaign' ORDER BY id")]
        # The killed run could not record its end: the rerun marked it, and recorded its own.
        assert statuses[-2] == "abandoned" and statuses[-1] in ("success", "partial"), statuses
        rows = ledger(home)
        unknown = [e for e, s in rows.items() if s == "unknown"]
        # Only what was in flight at the kill is uncertain: at most one ledger commit's worth
        # per connection (one message with the default).
        assert len(unknown) <= 2 * commit_every, unknown
        assert rerun.returncode == (3 if unknown else 0), rerun.stdout + rerun.stderr
        assert set(rows) == set(emails)  # nothing forgotten
        for email in emails:
            if rows[email] == "sent":
                assert server.counts[email] == 1, email  # exactly once
            else:
                assert rows[email] == "unknown" and server.counts[email] <= 1, email


def test_dry_run_and_test_sends_leave_the_ledger_alone(home: Path) -> None:  # noqa: F811
    write_contacts(home / "contacts.csv",
                   [f"reader{i}@example.com" for i in range(12)] + ["zoé@example.com"])
    with smtp_server() as (port, server):
        env = env_for(home, port)
        assert cli(env, "sync").returncode == 0
        dry = cli(env, "send", SLUG, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "built 12 message(s)" in dry.stdout and "nothing sent" in dry.stdout
        # It crashed on this one (UnicodeEncodeError); a real send records it 'failed'.
        assert "1 address(es) with non-ASCII characters would fail" in dry.stdout
        test = cli(env, "send", SLUG, "--test-to", "me@example.org, you@example.org",
                   "--lang", "ja")
        assert test.returncode == 0, test.stdout + test.stderr
        assert sorted(server.counts) == ["me@example.org", "you@example.org"]
        message = server.message_for("me@example.org")
        assert message["Subject"].startswith("[TEST] クラブ・ジャポン")
        # The tester's address alone, not the reader's name.
        assert parseaddr(str(message["To"])) == ("", "me@example.org")
        bad = cli(env, "send", SLUG, "--test-to", "not-an-address")
        assert bad.returncode == 2 and "--test-to" in bad.stderr
        no_tty = cli(env, "send", SLUG)
        assert no_tty.returncode == 2 and "pass --yes" in no_tty.stderr
    assert not (home / "var" / "clubjapon.sqlite3").exists() or ledger(home) == {}

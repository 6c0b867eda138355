"""`clubjapon-ops bounces` and the bounce-mailbox job as subprocesses, against dovecot: the
summary, the exit codes, and a run killed mid-way then run again."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from clubjapon_ops.bounces.mailbox import PROCESSED, REVIEW
from clubjapon_ops.delivery.message import message_id
from tests.bounces.conftest import (
    BOUNCES,
    EXPECTED,
    MAIL_FROM,
    SECRET,
    corpus,
    forged_dsn,
    ours,
    tied_corpus,
)
from tests.conftest import REPO
from tests.dovecot import Dovecot

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]
# Every classified corpus message, and the ordinary one that stays.
MESSAGES = sorted(EXPECTED)


def _env(home: Path, dovecot: Dovecot, user: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "BOUNCE_"))}
    env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_SECRET=SECRET, CLUBJAPON_MAIL_FROM=MAIL_FROM,
               CLUBJAPON_BOUNCE_ADDRESS=BOUNCES, CLUBJAPON_BOUNCE_VERP="false")
    env.update(dovecot.env(user, **extra))
    return env


def cli(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def events(home: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        return [tuple(r) for r in db.execute(
            "SELECT provider, event_key, email, type FROM events ORDER BY event_key, email")]


def ledger(home: Path, env: dict[str, str], readers: list[str],
           edition: str = "2025-11-04-lille") -> None:
    """Ledger rows of messages sent to these readers yesterday (the database made first)."""
    assert cli(home, env, "suppressions", "list").returncode == 0
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        db.executemany(
            "INSERT INTO deliveries (edition, email, lang, state, attempts, created_at, "
            "updated_at, sent_at) VALUES (?, ?, 'fr', 'sent', 1, datetime('now', '-1 day'), "
            "datetime('now', '-1 day'), datetime('now', '-1 day'))",
            [(edition, r) for r in sorted(set(readers))])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    shutil.copytree(REPO / "jobs", tmp_path / "jobs")
    return tmp_path


def test_bounces_prints_the_summary_and_a_dry_run_each_message(
        home: Path, dovecot: Dovecot, mailbox_user: str) -> None:
    env = _env(home, dovecot, mailbox_user)
    ledger(home, env, ["userunknown@example.jp"])
    gmail = corpus("sisimai/lhost-gmail-01.eml")
    dovecot.append(mailbox_user, [ours(gmail, "2025-11-04-lille", "userunknown@example.jp"),
                                  corpus("sisimai/rfc3834-02.eml"),
                                  corpus("sisimai/is-not-bounce-01.eml"), gmail])
    dry = cli(home, env, "bounces", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("UID 1: hard: userunknown@example.jp (hard_bounce")
    assert lines[0].endswith("by message-id)")
    assert lines[1] == "UID 2: auto_reply"
    assert lines[2].startswith("UID 3: unclassified")
    assert lines[3].startswith("UID 4: hard: ties no reader to a message we sent")
    assert lines[-1] == ("dry run, nothing changed: read 4, hard 1, soft 0, delayed 0, "
                         "blocked 0, complaints 0, opt-outs 0, auto-replies 1, other reports 0, "
                         "unclassified 1 (UIDs 3), unverified 1 (UIDs 4), "
                         "unknown addresses 0")
    assert "CLUBJAPON_BOUNCE_VERP is off" in dry.stderr  # VERP off: said once a run
    assert dry.stderr.count("CLUBJAPON_BOUNCE_VERP is off") == 1
    assert dovecot.count(mailbox_user, PROCESSED) == 0
    done = cli(home, env, "bounces")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("read 4, hard 1,")
    assert "unclassified 1 (moved to Review), unverified 1 (moved to Review)" in done.stdout
    assert dovecot.count(mailbox_user, PROCESSED) == 2
    assert dovecot.count(mailbox_user, REVIEW) == 2
    assert dovecot.count(mailbox_user, "INBOX") == 0


def test_a_refused_login_exits_1_naming_the_user_setting(
        home: Path, dovecot: Dovecot, mailbox_user: str) -> None:
    env = _env(home, dovecot, mailbox_user, BOUNCE_IMAP_PASSWORD="not-the-password-4321")
    result = cli(home, env, "bounces")
    assert result.returncode == 1
    assert "BOUNCE_IMAP_USERNAME" in result.stderr and mailbox_user in result.stderr
    assert "not-the-password-4321" not in result.stderr + result.stdout


def test_an_unreachable_server_exits_1_naming_the_settings(
        home: Path, dovecot: Dovecot, mailbox_user: str, closed_port: int) -> None:
    env = _env(home, dovecot, mailbox_user, BOUNCE_IMAP_PORT=str(closed_port))
    result = cli(home, env, "bounces")
    assert result.returncode == 1
    assert "cannot connect to the IMAP server at 127.0.0.1" in result.stderr
    assert "BOUNCE_IMAP_HOST, BOUNCE_IMAP_PORT" in result.stderr


def test_the_job_is_left_out_until_the_mailbox_is_configured(
        home: Path, dovecot: Dovecot, mailbox_user: str) -> None:
    bare = {k: v for k, v in _env(home, dovecot, mailbox_user).items()
            if not k.startswith("BOUNCE_IMAP_")}
    listed = cli(home, bare, "jobs")
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith("bounce-mailbox"))
    assert "left out: BOUNCE_IMAP_HOST" in line
    assert line.split()[-2:] == ["-", "never"]  # no next run while left out
    refused = cli(home, bare, "run", "bounce-mailbox")
    assert refused.returncode == 2 and "BOUNCE_IMAP_HOST" in refused.stderr
    ledger(home, bare, ["kijitora@example.jp"])
    dovecot.append(mailbox_user, [ours(corpus("sisimai/lhost-exim-02.eml"), "2025-11-04-lille",
                                       "kijitora@example.jp")])
    ran = cli(home, _env(home, dovecot, mailbox_user), "run", "bounce-mailbox")
    assert ran.returncode == 0, ran.stderr
    assert "bounce-mailbox: success: read 1, hard 1" in ran.stdout


# Runs the job with batches of 5 and kills itself (SIGKILL, nothing cleaned up) at the
# N-th message: in 'classify' before its batch is committed, in 'filed' after the commit
# but before the messages leave the folder.
_KILLER = textwrap.dedent("""
    import os, signal, sys
    from clubjapon_ops.jobs import bounces as job
    from clubjapon_ops.settings import load_settings
    from clubjapon_ops.store import open_store

    where, at = sys.argv[1], int(sys.argv[2])
    seen = 0
    def tick(*_):
        global seen
        seen += 1
        if seen == at:
            os.kill(os.getpid(), signal.SIGKILL)
    classify = job.c.classify
    def counting(raw):
        if where == "classify":
            tick()
        return classify(raw)
    job.c.classify = counting
    settings = load_settings()
    job.read_bounces(settings, open_store(settings.database_url), batch_size=5,
                     on_message=tick if where == "filed" else None)
""")


@pytest.mark.parametrize(("where", "at"), [("classify", 13), ("filed", 12)])
def test_a_run_killed_mid_way_then_run_again_loses_nothing_and_records_nothing_twice(
        home: Path, tmp_path_factory: pytest.TempPathFactory, dovecot: Dovecot, where: str,
        at: int) -> None:
    messages, readers = tied_corpus("2025-11-04-lille")
    # A clean run elsewhere says what one run records.
    clean_home = tmp_path_factory.mktemp("clean")
    (clean_home / "config").mkdir()
    clean_user = dovecot.new_user()
    dovecot.append(clean_user, messages)
    clean_env = _env(clean_home, dovecot, clean_user)
    ledger(clean_home, clean_env, readers)
    assert cli(clean_home, clean_env, "bounces").returncode == 0
    expected = events(clean_home)
    stays = dovecot.count(clean_user, REVIEW)
    assert stays and dovecot.count(clean_user, "INBOX") == 0

    user = dovecot.new_user()
    dovecot.append(user, messages)
    env = _env(home, dovecot, user)
    ledger(home, env, readers)
    killed = subprocess.run([sys.executable, "-c", _KILLER, where, str(at)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    half = events(home)
    assert 0 < len(half) < len(expected)
    in_box = sum(dovecot.count(user, f) for f in ("INBOX", PROCESSED, REVIEW))
    assert in_box == len(messages)  # none vanished

    again = cli(home, env, "bounces")
    assert again.returncode == 0, again.stderr
    assert events(home) == expected
    assert not [k for k, n in Counter(e[1] for e in events(home)).items() if n > 1]
    assert dovecot.count(user, "INBOX") == 0
    assert dovecot.count(user, REVIEW) == stays
    assert dovecot.count(user, PROCESSED) == len(messages) - stays


def test_a_second_read_at_once_is_refused_naming_the_first(
        home: Path, dovecot: Dovecot, mailbox_user: str) -> None:
    # The review ran two at once: the second's MOVE failed on what the first had moved
    # (exit 1, its run recorded failed). Now the second says who holds the mailbox.
    dovecot.append(mailbox_user, [ours(corpus("sisimai/lhost-gmail-01.eml"), "2025-11-04-lille",
                                       "userunknown@example.jp")])
    env = _env(home, dovecot, mailbox_user)
    ledger(home, env, ["userunknown@example.jp"])  # makes var/ and the store
    from clubjapon_ops.store import open_store
    from clubjapon_ops.store.lock import bounce_lock

    store = open_store(f"sqlite:///{home / 'var' / 'clubjapon.sqlite3'}")
    try:
        with bounce_lock(store):
            second = cli(home, env, "bounces")
    finally:
        store.close()
    assert second.returncode == 2, second.stdout + second.stderr
    assert "another read of the bounce mailbox is running" in second.stderr
    assert f"pid {os.getpid()} on " in second.stderr
    assert dovecot.count(mailbox_user, "INBOX") == 1  # nothing read, nothing filed
    after = cli(home, env, "bounces")
    assert after.returncode == 0 and dovecot.count(mailbox_user, PROCESSED) == 1


def test_control_characters_of_a_forged_report_never_reach_the_terminal_nor_the_store(
        home: Path, dovecot: Dovecot, mailbox_user: str) -> None:
    # The review's forged DSN: BEL, ESC and TAB in Final-Recipient were stored and printed
    # raw by the summary and 'suppressions list' (terminal escape injection).
    env = _env(home, dovecot, mailbox_user)
    reader = "reader@example.com"
    ledger(home, env, [reader])
    hostile = ["victim\x07\x1b]0;owned\x07@example.com", "a\tb@example.com",
               "c\x1b[2Jd@example.com"]
    ours_returned = f"Message-ID: {message_id('2025-11-04-lille', reader, 'example.org')}"
    dovecot.append(mailbox_user, [forged_dsn(1, [*hostile, reader], ours_returned),
                                  forged_dsn(2, hostile)])
    raw = ("\x07", "\x1b", "\t", "\x9b")
    dry = cli(home, env, "bounces", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert not any(c in dry.stdout + dry.stderr for c in raw), repr(dry.stdout)
    lines = dry.stdout.splitlines()
    assert lines[0] == f"UID 1: hard: {reader} (hard_bounce, row 1 by message-id)"
    assert lines[1].startswith("UID 2: unclassified")  # no address left in it
    done = cli(home, env, "bounces")
    assert done.returncode == 0, done.stderr
    assert not any(c in done.stdout + done.stderr for c in raw), repr(done.stdout)
    assert [e[2] for e in events(home)] == [reader]
    listed = cli(home, env, "suppressions", "list")
    assert listed.returncode == 0 and reader in listed.stdout
    assert not any(c in listed.stdout for c in raw)

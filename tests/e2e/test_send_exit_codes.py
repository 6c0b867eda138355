"""What `send` says and exits with when work is left: rows waiting for a retry (3), a send
stopped by Ctrl-C (130). The CLI as a subprocess, a real SQLite ledger, aiosmtpd on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clubjapon_ops.store import open_store
from clubjapon_ops.store.lock import send_lock
from tests.delivery.conftest import SLUG, home, write_contacts  # noqa: F401
from tests.e2e.test_send_smtp import cli, env_for, ledger
from tests.fakes.smtp_server import Behaviour, smtp_server

pytestmark = pytest.mark.e2e


def test_a_rerun_while_rows_wait_for_their_retry_exits_3_and_says_until_when(
    home: Path,  # noqa: F811
) -> None:
    emails = [f"reader{i}@example.com" for i in range(20)]
    emails += [f"greylist{i}@example.com" for i in range(5)]
    write_contacts(home / "contacts.csv", emails)
    # Greylisted for longer than the run's own attempts: those rows end the run in 'retry'.
    with smtp_server(Behaviour(tempfail_times={"greylist": 100})) as (port, server):
        env = env_for(home, port, CLUBJAPON_SEND_ATTEMPTS="2", CLUBJAPON_TIMEZONE="UTC")
        assert cli(env, "sync").returncode == 0
        first = cli(env, "send", SLUG, "--yes")
        assert first.returncode == 3, first.stdout + first.stderr
        rerun = cli(env, "send", SLUG, "--yes")
        finished = datetime.now(UTC)
    out = rerun.stdout + rerun.stderr
    assert list(ledger(home).values()).count("retry") == 5
    assert sum(server.counts.values()) == 20  # nothing went out twice, nor during the rerun
    # Nothing to send now: the plan does not claim otherwise, and the rerun is not a success.
    assert "to send now: 0" in rerun.stdout, out
    assert "sent 0," in rerun.stdout, out
    assert rerun.returncode == 3, out
    waiting = re.search(r"5 message\(s\) wait for a retry until (\d\d:\d\d:\d\d) UTC", out)
    assert waiting, out
    # Five minutes after the first run's answers (RETRY_DELAY), on the clock of this machine.
    due = datetime.combine(finished.date(), datetime.strptime(waiting[1], "%H:%M:%S").time(),
                           UTC)
    assert timedelta(minutes=4) < due - finished <= timedelta(minutes=5), (due, finished)
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        statuses = [s for (s,) in db.execute(
            "SELECT status FROM job_runs WHERE job = 'send_campaign' ORDER BY id")]
    assert statuses == ["partial", "partial"]  # the rerun is recorded as not done either


def test_an_interrupted_send_exits_130(home: Path) -> None:  # noqa: F811
    emails = [f"reader{i}@example.com" for i in range(400)]
    write_contacts(home / "contacts.csv", emails)
    with smtp_server(Behaviour(data_delay=0.01)) as (port, server):
        env = env_for(home, port, SMTP_CONNECTIONS="1")
        assert cli(env, "sync").returncode == 0
        proc = subprocess.Popen([sys.executable, "-m", "clubjapon_ops", "send", SLUG, "--yes"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        # Interrupted mid-way, never before it got going (its start-up varies with the load).
        deadline = time.monotonic() + 120
        while sum(server.counts.values()) < 20:
            assert time.monotonic() < deadline and proc.poll() is None, "it never got going"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        sent = sum(server.counts.values())
    assert proc.returncode == 130, out + err
    assert 20 <= sent < 400, "the send should have stopped mid-way"
    assert "interrupted: run the same command again to go on" in out
    rows = ledger(home)
    assert list(rows.values()).count("sent") == sent  # the ledger stands for what went out


def test_nothing_listening_on_smtp_stops_at_once_naming_host_port_and_settings(
    home: Path, closed_port: int,  # noqa: F811
) -> None:
    write_contacts(home / "contacts.csv", [f"reader{i}@example.com" for i in range(40)])
    port = closed_port  # nobody listens there
    # A retry would wait at least a minute: a send that retried the connection per message
    # would outlast the timeout (no stopwatch: Python's start-up alone varies with the load).
    env = env_for(home, port, CLUBJAPON_SEND_RETRY_WAIT="600")
    assert cli(env, "sync").returncode == 0
    try:
        result = subprocess.run([sys.executable, "-m", "clubjapon_ops", "send", SLUG, "--yes"],
                                env=env, capture_output=True, text=True, timeout=55, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("still sending after 55 s: each message retries a connection nobody takes")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"127.0.0.1:{port}" in result.stderr, result.stderr
    assert "SMTP_HOST" in result.stderr and "SMTP_PORT" in result.stderr, result.stderr
    assert "refused" in result.stderr.lower(), result.stderr
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)  # nothing planned
        runs = db.execute(
            "SELECT status, error FROM job_runs WHERE job = 'send_campaign'").fetchall()
    assert len(runs) == 1 and runs[0][0] == "failed" and f"127.0.0.1:{port}" in runs[0][1]


def test_a_second_send_of_an_edition_exits_2_naming_the_holder(home: Path) -> None:  # noqa: F811
    write_contacts(home / "contacts.csv", [f"reader{i}@example.com" for i in range(10)])
    with smtp_server() as (port, server):
        env = env_for(home, port)
        assert cli(env, "sync").returncode == 0
        store = open_store(f"sqlite:///{home / 'var' / 'clubjapon.sqlite3'}")
        try:
            with send_lock(store, SLUG):  # this test process is the send in progress
                refused = cli(env, "send", SLUG, "--yes")
            after = cli(env, "send", SLUG, "--yes")
        finally:
            store.close()
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"another send of {SLUG} is running on this database (pid {os.getpid()} on " \
        in refused.stderr, refused.stderr
    assert "to send now" not in refused.stdout  # refused before it shows a plan
    assert after.returncode == 0, after.stderr  # the lock went with its holder
    assert sum(server.counts.values()) == 10  # all from the second run, none from the first
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        runs = db.execute("SELECT count(*) FROM job_runs WHERE job = 'send_campaign'").fetchone()
    assert runs == (1,)  # the refused send did nothing and is no run


@pytest.mark.parametrize("transport", ["smtp", "brevo", "sendgrid"])
def test_a_real_send_without_the_postal_address_exits_2_before_any_plan(
    home: Path, transport: str  # noqa: F811
) -> None:
    write_contacts(home / "contacts.csv", [f"reader{i}@example.com" for i in range(3)])
    with smtp_server() as (port, server):
        env = env_for(home, port, CLUBJAPON_POSTAL_ADDRESS="", CLUBJAPON_TRANSPORT=transport,
                      BREVO_API_KEY="k", SENDGRID_API_KEY="k",
                      BREVO_BASE_URL="http://127.0.0.1:9", SENDGRID_BASE_URL="http://127.0.0.1:9")
        assert cli(env, "sync").returncode == 0
        result = cli(env, "send", SLUG, "--yes")
        test_copy = cli(env, "send", SLUG, "--test-to", "me@example.org")
        outbox = cli({**env, "CLUBJAPON_TRANSPORT": "outbox"}, "send", SLUG, "--dry-run")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CLUBJAPON_POSTAL_ADDRESS is not set" in result.stderr, result.stderr
    assert "to send now" not in result.stdout  # refused before it shows a plan
    assert test_copy.returncode == 2 and "CLUBJAPON_POSTAL_ADDRESS" in test_copy.stderr
    assert server.received == []  # nothing left this machine
    assert ledger(home) == {}
    # The outbox keeps messages on this machine: no address needed (make run's demo).
    assert outbox.returncode == 0, outbox.stdout + outbox.stderr

"""Concurrent sends of one edition on SQLite: `send` in three processes at once, aiosmtpd on
127.0.0.1, and a fourth process that keeps taking SQLite's write lock.

One sender per edition: the others exit 2 naming the holder's pid (or, starting after it
finished, find nothing left to send), and no reader gets a message twice. The suite runs
CLUBJAPON_TEST_CONCURRENT_ROUNDS rounds (default 1, 6-9 s on the shared 2-core machine) of
CLUBJAPON_TEST_CONCURRENT_MESSAGES (default 2,000); .ci/run sets ten rounds (about 55-85 s),
and bench/bench_concurrent_send.py runs ten and times them. Before the edition lock and the
claim's state check, every round had all three senders exit 0, and 5 rounds of 18 sent 1 to 9
readers two copies.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.delivery.conftest import SLUG, home, write_contacts  # noqa: F401
from tests.e2e.test_send_smtp import cli, env_for, ledger
from tests.fakes.smtp_server import Behaviour, smtp_server

pytestmark = pytest.mark.e2e
ROUNDS = int(os.environ.get("CLUBJAPON_TEST_CONCURRENT_ROUNDS", "1"))
MESSAGES = int(os.environ.get("CLUBJAPON_TEST_CONCURRENT_MESSAGES", "2000"))

# Takes the write lock over and over (BEGIN IMMEDIATE, a few ms, COMMIT) until killed: the
# senders' writes keep finding the database busy, as with the web app or a sync running.
LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
print("ready", flush=True)
while True:
    db.execute("BEGIN IMMEDIATE")
    time.sleep(0.003)
    db.execute("COMMIT")
    time.sleep(0.002)
"""


@dataclass
class Round:
    """What one round of concurrent sends did."""

    emails: list[str]
    senders: list[subprocess.Popen[str]]
    outputs: list[tuple[str, str]]
    received: Counter[str]
    states: dict[str, str]
    seconds: float  # from the senders' start to the last one's exit

    @property
    def codes(self) -> list[int]:
        """The senders' exit codes, in start order."""
        return [s.returncode for s in self.senders]


def concurrent_sends(home: Path, n: int) -> Round:  # noqa: F811
    """Sync n readers, then three sends at once while a fourth process keeps taking the write
    lock; return what the SMTP server received and the ledger."""
    emails = [f"reader{i}@example.com" for i in range(n)]
    write_contacts(home / "contacts.csv", emails)
    # The send that holds the edition goes slowly until the two others have ended: however
    # late the machine starts them, they find it still sending (a later start would find
    # nothing left to send, and exit 0 instead of being refused).
    hold = threading.Event()
    with smtp_server(Behaviour(hold=hold)) as (port, server):
        env = env_for(home, port)
        assert cli(env, "sync").returncode == 0
        database = home / "var" / "clubjapon.sqlite3"
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(database)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout is not None and locker.stdout.readline().strip() == "ready"
            started = time.monotonic()
            senders = [subprocess.Popen(
                [sys.executable, "-m", "clubjapon_ops", "send", SLUG, "--yes"], env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
            # Each sender's output read as it comes (a full pipe would stall it).
            readers = [ThreadPoolExecutor(1).submit(s.communicate, timeout=300)
                       for s in senders]
            deadline = time.monotonic() + 120
            while sum(s.poll() is not None for s in senders) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            hold.set()  # on time or not: check() says what went wrong
            outputs = [r.result() for r in readers]
            seconds = time.monotonic() - started
        finally:
            locker.kill()
            locker.wait()
        received = Counter(server.counts)
    return Round(emails, senders, outputs, received, ledger(home), seconds)


def check(round_: Round) -> None:
    """Each reader received one message; the senders that were refused named the holder."""
    codes, report = round_.codes, "\n".join(out + err for out, err in round_.outputs)
    twice = sorted(e for e, k in round_.received.items() if k > 1)
    assert not twice, f"{len(twice)} readers got two copies, e.g. {twice[:3]}; exits {codes}"
    assert round_.received == Counter(round_.emails), report  # everyone once
    assert set(round_.states.values()) == {"sent"}, report
    # All three start together and a send of 2,000 lasts seconds: one holds the edition, and
    # at least one other is refused (a send starting after the holder ended would send 0).
    assert 0 in codes and 2 in codes and set(codes) <= {0, 2}, (codes, report)
    pids = {s.pid for s in round_.senders}
    for sender, (_, err) in zip(round_.senders, round_.outputs, strict=True):
        if sender.returncode == 2:
            # The refusal names the sender that holds the edition.
            named = re.search(r"another send of \S+ is running .*\(pid (\d+) on ", err)
            assert named and int(named[1]) in pids - {sender.pid}, err


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_sends_of_one_edition_send_each_message_once(
    home: Path, round_: int  # noqa: F811
) -> None:
    check(concurrent_sends(home, MESSAGES))

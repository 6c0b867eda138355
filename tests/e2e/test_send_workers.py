"""Parallel senders for real: `send --worker` in 3 processes, PostgreSQL, aiosmtpd on 127.0.0.1.

The issue asks for 20,000 contacts; aiosmtpd takes about 1.2 ms a message in one Python
thread, so the suite uses 3,000 (about 10 s); CLUBJAPON_TEST_WORKER_MESSAGES=20000 runs the
full size. bench/bench_workers.py measures throughput.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from clubjapon_ops.delivery.transports.smtp import CLAIM_PER_CONNECTION
from clubjapon_ops.store.schema import deliveries
from tests.conftest import use_database
from tests.delivery.conftest import SLUG, home, write_contacts  # noqa: F401
from tests.e2e.test_send_smtp import cli, env_for
from tests.fakes.smtp_server import Behaviour, smtp_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_only]
LANES = 2  # 500 rows a claim: a 3,000-message campaign is six claims for three workers


def start_workers(env: dict[str, str], n: int) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen([sys.executable, "-m", "clubjapon_ops", "--log-json", "send", SLUG,
                          "--worker"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]


def states(db: Engine) -> dict[str, str]:
    with db.connect() as conn:
        return dict(conn.execute(select(deliveries.c.email, deliveries.c.state)).all())


def count_sent(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).where(deliveries.c.state == "sent"))
                   .scalar_one())


def held_by(db: Engine, pid: int) -> int:
    """Rows the worker process ``pid`` holds (claimed_by is host:pid:nonce)."""
    with db.connect() as conn:
        return int(conn.execute(
            select(func.count())
            .where(deliveries.c.claimed_by.like(f"%:{pid}:%"),
                   deliveries.c.state.in_(("claimed", "sending")))
        ).scalar_one())


def synced(home: Path, url: str | None, port: int, n: int) -> dict[str, str]:  # noqa: F811
    assert url is not None
    use_database(home, url)
    write_contacts(home / "contacts.csv", [f"reader{i}@example.com" for i in range(n)])
    env = env_for(home, port, SMTP_CONNECTIONS=str(LANES))
    result = cli(env, "sync")
    assert result.returncode == 0, result.stderr
    return env


def test_three_workers_send_each_message_exactly_once(home: Path, db_engine: str) -> None:  # noqa: F811
    with smtp_server() as (port, server):
        env = synced(home, db_engine, port, 900)
        workers = start_workers(env, 3)
        outputs = [w.communicate(timeout=120) for w in workers]
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, out + err
    rows = states(create_engine(db_engine))
    assert set(rows.values()) == {"sent"} and len(rows) == 900
    assert server.counts == Counter(rows.keys())  # every reader once, nobody twice
    sent_by = [int(out.split("sent ", 1)[1].split(",", 1)[0]) for out, _ in outputs]
    # The workers' own counts add up (how the work splits depends on who started first).
    assert sum(sent_by) == 900


def test_a_killed_worker_leaves_no_duplicate_and_at_most_one_unknown_per_lane(
    home: Path, db_engine: str,  # noqa: F811
) -> None:
    n = int(os.environ.get("CLUBJAPON_TEST_WORKER_MESSAGES", "3000"))
    db = create_engine(db_engine)
    # A millisecond per message on the server: the workers overlap, whatever their start order.
    with smtp_server(Behaviour(data_delay=0.001)) as (port, server):
        env = synced(home, db_engine, port, n)
        workers = start_workers(env, 3)
        deadline = time.monotonic() + 180
        # Mid-run, a worker part-way through a batch: it has sent some and holds more. Which
        # one depends on who started first, so the victim is the first seen in that state.
        batch = CLAIM_PER_CONNECTION * LANES
        victim = None
        while victim is None:
            assert time.monotonic() < deadline, "no worker was ever caught mid-batch"
            assert any(w.poll() is None for w in workers), "all ended before one was killed"
            if count_sent(db) >= n // 10:
                # Every worker stopped while we look and kill: what we see is what the
                # survivors hold when the victim dies. A survivor that finished its rows and
                # found the victim still alive would leave its rows alone and end, and nobody
                # would settle them: a loaded machine leaves time for that between look and kill.
                running = [w for w in workers if w.poll() is None]
                for w in running:
                    w.send_signal(signal.SIGSTOP)
                held = {w.pid: held_by(db, w.pid) if w in running else 0 for w in workers}
                # Another worker must be mid-batch too: it will look for work again after the
                # kill, find the victim gone and settle its rows.
                victim = next((w for w in running if 0 < held[w.pid] < batch * 9 // 10
                               and any(held[o.pid] for o in running if o is not w)), None)
                if victim is not None:
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()  # reaped: the survivors must see the process gone
                for w in running:
                    if w is not victim:
                        w.send_signal(signal.SIGCONT)
            if victim is None:
                time.sleep(0.02)
        survivors = [w for w in workers if w is not victim]
        outputs = [w.communicate(timeout=180) for w in survivors]
        received = Counter(server.counts)
    rows = states(db)
    by_state = Counter(rows.values())
    # Everything settled: nothing left claimed, pending or in flight.
    assert set(by_state) <= {"sent", "unknown"}, by_state
    # The killed worker had at most one message in flight per SMTP connection.
    assert by_state["unknown"] <= LANES
    assert max(received.values()) == 1  # nobody received two copies
    for email, state in rows.items():
        if state == "sent":
            assert received[email] == 1, email
    # Unknown rows are reported by the survivor that settled them, and not resent.
    assert len(rows) == n
    report = "".join(out for out, _ in outputs)
    # The survivors took the killed worker's claimed rows back (it died holding a batch).
    assert "settled from an interrupted run" in report, report
    if by_state["unknown"]:
        assert "--resend-unknown" in report
    assert {w.returncode for w in survivors} <= {0, 3}

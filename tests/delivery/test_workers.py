"""Parallel senders on one campaign: disjoint claims, a shared rate limit, a dead peer's rows."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from clubjapon_ops import jobs
from clubjapon_ops.delivery.ratelimit import SharedTokenBucket
from clubjapon_ops.errors import ConfigError
from clubjapon_ops.store import Store, open_store, pacing
from clubjapon_ops.store import deliveries as ledger
from clubjapon_ops.store.schema import deliveries
from tests.delivery.conftest import SLUG, make_settings
from tests.delivery.test_ledger import LEASE, seed
from tests.delivery.test_sender import ScriptedTransport, sender, sync


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.sqlite_only
def test_sqlite_refuses_workers_saying_why(home: Path, send_store: Store) -> None:
    with pytest.raises(ConfigError, match=r"--worker needs PostgreSQL .*SKIP LOCKED"):
        jobs.send_campaign(make_settings(home), send_store, SLUG,
                           options=jobs.SendOptions(worker=True))


@pytest.mark.postgres_only
def test_concurrent_claims_never_share_a_row(send_store: Store) -> None:
    seed(send_store, 400)
    with send_store.transaction() as conn:
        ledger.plan(conn, SLUG)
    got: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def claimer(name: str) -> None:
        start.wait()
        mine = got.setdefault(name, [])
        while True:
            with send_store.transaction() as conn:
                batch = ledger.claim(conn, SLUG, name, 7, LEASE)
            if not batch:
                return
            mine += [c.id for c in batch]

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for mine in got.values() for i in mine]
    assert len(ids) == len(set(ids)) == 398  # 400 planned but p0 suppressed, p1 archived
    assert sum(1 for mine in got.values() if mine) >= 2  # the work was really shared


@pytest.mark.parametrize("per_message", [False, True], ids=["batches", "lanes"])
def test_a_worker_takes_over_the_rows_of_a_dead_peer(
    home: Path, send_store: Store, per_message: bool
) -> None:
    sync(home, send_store, 30)
    transport = ScriptedTransport(per_message=per_message)
    worker = sender(home, send_store, transport, worker=True)
    prepared = worker.prepare()
    # A peer claims rows after this worker started, then dies.
    dead = f"{socket.gethostname()}:{dead_pid()}:deadbeef"
    with send_store.transaction() as conn:
        ledger.claim(conn, SLUG, dead, 5, LEASE, state=ledger.CLAIMED)  # never handed over
        ledger.claim(conn, SLUG, dead, 2, LEASE, state=ledger.SENDING)  # in flight: uncertain
    report = worker.run(prepared)
    # Found when the queue ran dry: claimed rows sent, the uncertain ones reported, not resent.
    assert report.recovered == {"released": 5, "unknown": 2}
    assert report.ledger == {"sent": 28, "unknown": 2}
    assert len(transport.seen) == len(set(transport.seen)) == 28


def test_a_worker_leaves_a_live_peers_rows_alone(home: Path, send_store: Store) -> None:
    sync(home, send_store, 12)
    alive = f"{socket.gethostname()}:{os.getpid()}:peer"
    with send_store.transaction() as conn:
        ledger.plan(conn, SLUG)
        ledger.claim(conn, SLUG, alive, 4, LEASE, state=ledger.CLAIMED)
    worker = sender(home, send_store, ScriptedTransport(), worker=True)
    report = worker.run(worker.prepare())
    assert report.ledger == {"sent": 8, "claimed": 4} and report.recovered == {}


@pytest.mark.postgres_only
def test_the_rate_limit_is_shared_by_every_sender_on_the_store(
    send_store: Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bucket's own record, not a stopwatch: each take is stamped by the server's clock
    # (the row's updated_at) and told how long to wait; the moment each token may be used is
    # the sum. However slow the machine, those moments never exceed the rate in any window.
    url = send_store.engine.url.render_as_string(hide_password=False)
    others = [open_store(url) for _ in range(2)]
    usable: list[tuple[float, float]] = []  # (when the tokens may be used, how many)
    slept: list[float] = []
    record = threading.Lock()
    take = pacing.take_tokens

    def stamped(conn: Connection, name: str, rate: float, capacity: float, n: float) -> float:
        wait = take(conn, name, rate, capacity, n)
        at = conn.execute(text("SELECT EXTRACT(EPOCH FROM updated_at) FROM send_rate"
                               " WHERE name = :name"), {"name": name}).scalar_one()
        with record:
            usable.append((float(at) + wait, n))
        return wait

    def asleep(seconds: float) -> None:
        with record:
            slept.append(seconds)  # not slept: the record above is the proof

    monkeypatch.setattr(pacing, "take_tokens", stamped)
    # A slow rate, so that three buckets of their own would exceed it even on a machine
    # that takes a second per round trip to the store (nobody sleeps: the test is quick).
    rate = 2.0
    buckets = [SharedTokenBucket(s, rate=rate, sleep=asleep) for s in (send_store, *others)]
    start = threading.Barrier(3)
    waited: list[float] = []

    def spend(bucket: SharedTokenBucket) -> None:
        start.wait()
        for _ in range(10):
            waited.append(bucket.acquire())

    threads = [threading.Thread(target=spend, args=(b,)) for b in buckets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in others:
        s.close()
    assert sum(n for _, n in usable) == 30  # every token came from the store's one bucket
    assert sorted(slept) == sorted(w for w in waited if w > 0)  # each sender waits its turn
    # 30 messages at 2/s with a burst of 2: in any span of time, at most 2 + 2/s of it.
    # Three buckets of their own would let 6 go at once, and three times the rate after.
    moments = sorted(at for at, n in usable for _ in range(int(n)))
    for i, first in enumerate(moments):
        for j in range(i, len(moments)):
            assert j - i + 1 <= buckets[0].capacity + (moments[j] - first) * rate + 0.01, \
                (i, j, moments)
    assert moments[-1] - moments[0] >= (30 - buckets[0].capacity) / rate - 0.01


@pytest.mark.postgres_only
def test_parallel_workers_plan_once_and_send_each_row_once(
    home: Path, send_store: Store
) -> None:
    sync(home, send_store, 60)
    url = send_store.engine.url.render_as_string(hide_password=False)
    transports = [ScriptedTransport(per_message=True) for _ in range(3)]
    reports = []

    def work(transport: ScriptedTransport) -> None:
        store = open_store(url)
        try:
            s = sender(home, store, transport, worker=True)
            reports.append(s.run(s.prepare()))
        finally:
            store.close()

    threads = [threading.Thread(target=work, args=(t,)) for t in transports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = [a for t in transports for a in t.seen]
    assert len(seen) == len(set(seen)) == 60
    assert sorted(r.planned for r in reports) == [0, 0, 60]
    with send_store.transaction() as conn:
        assert set(conn.execute(select(deliveries.c.state)).scalars()) == {"sent"}

"""Benchmark parallel senders (`send --worker`) on PostgreSQL to a local SMTP sink (not a test).

    .venv/bin/python bench/bench_workers.py --sink /tmp/postfix/x            # 20,000, 1/2/4
    .venv/bin/python bench/bench_workers.py --contacts 5000 --workers 1,2 --url postgresql+psycopg://...
    .venv/bin/python bench/bench_workers.py --smoke   # seconds: does the bench still work?

The SMTP server is Postfix's smtp-sink (fast, C): `apt-get download postfix`, then
`dpkg -x postfix_*.deb DIR`, and pass DIR as --sink; without --sink, bench/_smtp_sink.py (Python,
far slower: for --smoke). Without --url a throwaway cluster with production durability (fsync,
synchronous commit) is started with .ci/postgres. --smoke (30 messages, 1 and 2 workers, one
connection each) uses the tests' server (CLUBJAPON_TEST_POSTGRES_URL) when it is set.

For each number of workers: a fresh schema, N contacts, then that many `clubjapon-ops send
EDITION --worker` processes. Printed: messages/s (wall clock from launch to the last exit,
Python start-up included, and steady state from the first to the last `sent_at`), the share
of the lanes' time spent waiting on the database (every psycopg execute and commit, timed in
the workers), and the PostgreSQL server's CPU seconds per 1,000 messages.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SLUG = "2025-11-04-lille"
SKIPPED = 77  # exit status of a --smoke run without a system package it needs (automake's)


def worker() -> None:
    """Run `send --worker` in this process, timing every database call; write the figures."""
    import atexit

    import psycopg

    spent = {"db_s": 0.0, "calls": 0}
    lock = threading.Lock()

    def timed(method: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                with lock:
                    spent["db_s"] += time.perf_counter() - began
                    spent["calls"] += 1
        return wrapper

    for cls, names in ((psycopg.Cursor, ("execute", "executemany")),
                       (psycopg.Connection, ("commit", "rollback"))):
        for name in names:
            setattr(cls, name, timed(getattr(cls, name)))

    def write() -> None:
        Path(os.environ["BENCH_STATS"]).write_text(json.dumps(spent))

    atexit.register(write)
    from clubjapon_ops.cli import main

    sys.argv = ["clubjapon-ops", "-q", "send", SLUG, "--worker"]
    main()


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(folder: Path | None, base: Path) -> tuple[subprocess.Popen[str], int]:
    """Postfix's smtp-sink from ``folder``, else bench/_smtp_sink.py; once it listens."""
    if folder is None:
        sink = subprocess.Popen([sys.executable, str(REPO / "bench" / "_smtp_sink.py"),
                                 str(base / "sink-counts")], stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None
        line = sink.stdout.readline().strip()  # its port, printed once it listens
        if not line.isdigit():
            raise SystemExit("bench/_smtp_sink.py did not start")
        return sink, int(line)
    port = free_port()
    sink_cmd = [str(folder / "usr/sbin/smtp-sink"), "-c", f"127.0.0.1:{port}", "1000"]
    if os.geteuid() == 0:
        sink_cmd[1:1] = ["-u", "nobody"]
    libs = {"LD_LIBRARY_PATH": str(folder / "usr/lib/postfix")}
    sink = subprocess.Popen(sink_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **libs}, text=True)
    deadline = time.monotonic() + 10
    while True:  # until it accepts a connection
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink, port
        except OSError:
            if sink.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"smtp-sink did not start on port {port}") from None
            time.sleep(0.05)


def server_cpu_seconds() -> float:
    """CPU seconds used so far by every postgres process (the server's share of the work)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if name.startswith("postgres"):
            fields = stat[stat.rindex(")") + 2:].split()
            # utime + stime, plus cutime + cstime: backends that ended (a worker's session)
            # are counted in the postmaster that reaped them.
            total += sum(int(f) for f in fields[11:15]) / tick
    return total


def make_home(base: Path) -> Path:
    """A project root with the real editions and templates."""
    home = base / "home"
    (home / "config").mkdir(parents=True)
    shutil.copytree(REPO / "config" / "editions", home / "config" / "editions")
    shutil.copytree(REPO / "templates", home / "templates")
    return home


def populate(url: str, n: int) -> None:
    """Store n contacts (languages in turn) straight through the store."""
    from clubjapon_ops.contacts import Contact
    from clubjapon_ops.store import open_store
    from clubjapon_ops.store.contacts import upsert_contacts

    store = open_store(url)
    langs = ("fr", "en", "ja")
    people = [Contact(email=f"reader{i}@example.com", source="csv", first_name=f"Prénom{i}",
                      last_name=f"Nom{i}", language=langs[i % 3]) for i in range(n)]
    with store.transaction() as conn:
        for i in range(0, n, 1000):
            upsert_contacts(conn, people[i:i + 1000])
    store.close()


def one_run(server_url: str, home: Path, port: int, n: int, k: int, lanes: int,
            base: Path) -> dict[str, Any]:
    """A fresh schema, n contacts, k workers; return the figures."""
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{server_url}{'&' if '?' in server_url else '?'}options=-csearch_path%3D{schema}"
    try:
        populate(url, n)
        env = {k_: v for k_, v in os.environ.items()
               if not k_.startswith(("CLUBJAPON_", "SMTP_"))}
        env.update({
            "CLUBJAPON_HOME": str(home), "CLUBJAPON_DATABASE_URL": url,
            "CLUBJAPON_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
            "SMTP_CONNECTIONS": str(lanes), "CLUBJAPON_SECRET": "bench-secret-0123456789abcdef",
            "CLUBJAPON_ERROR_BUDGET": "1000",
            # A send that leaves the machine names the club's postal address.
            "CLUBJAPON_POSTAL_ADDRESS": "Club Japon des Hauts-de-France; 59000 Lille",
        })
        stats = [base / f"stats-{k}-{i}.json" for i in range(k)]
        cpu0, began = server_cpu_seconds(), time.perf_counter()
        procs = [subprocess.Popen([sys.executable, __file__, "--as-worker"],
                                  env={**env, "BENCH_STATS": str(s)}, cwd=home,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for s in stats]
        errors = [p.communicate()[1] for p in procs]
        wall = time.perf_counter() - began
        cpu = server_cpu_seconds() - cpu0
        for p, err in zip(procs, errors, strict=True):
            if p.returncode != 0:
                raise SystemExit(f"a worker failed ({p.returncode}): {err[-2000:]}")
        with admin.connect() as conn:
            sent, first, last = conn.execute(text(
                f'SELECT count(*), min(sent_at), max(sent_at) FROM "{schema}".deliveries'
                " WHERE state = 'sent'")).one()
        figures = [json.loads(s.read_text()) for s in stats]
        db_s = sum(f["db_s"] for f in figures)
        steady = (last - first).total_seconds() if sent > 1 else 0.0
        return {
            "workers": k, "sent": sent, "wall_s": wall, "rate_wall": sent / wall,
            "rate_steady": sent / steady if steady else 0.0,
            "db_share": db_s / (k * lanes * steady) if steady else 0.0,
            "db_ms_per_msg": 1000 * db_s / max(sent, 1),
            "db_calls_per_msg": sum(f["calls"] for f in figures) / max(sent, 1),
            "server_cpu_s_per_1000": 1000 * cpu / max(sent, 1),
            "load": os.getloadavg(),
        }
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a PostgreSQL server (else a throwaway durable cluster)")
    parser.add_argument("--sink", type=Path,
                        help="folder where postfix_*.deb was extracted (dpkg -x); "
                             "without it, a slow Python sink")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--lanes", type=int, default=4, help="SMTP_CONNECTIONS per worker")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: does the bench still work? (the suite runs it)")
    args = parser.parse_args()
    if args.smoke:
        args.contacts, args.workers, args.lanes = 30, "1,2", 1
        args.url = args.url or os.environ.get("CLUBJAPON_TEST_POSTGRES_URL") or None
        if args.url is None and not list(Path("/usr/lib/postgresql").glob("*/bin")):
            print("PostgreSQL is not installed (apt-get install -y postgresql): "
                  "bench_workers needs it")
            sys.exit(SKIPPED)
    base = Path(tempfile.mkdtemp(prefix="bench-workers-", dir="/tmp"))
    os.chmod(base, 0o755)  # the postgres user must reach the throwaway cluster's folder
    cluster = base / "pg"
    url = args.url
    if url is None:
        started = subprocess.run([REPO / ".ci" / "postgres", "start", cluster, "durable"],
                                 check=True, capture_output=True, text=True).stdout
        url = started.strip().split("=", 1)[1]
    sink, port = start_sink(args.sink, base)
    try:
        home = make_home(base)
        print(f"{args.contacts:,} messages per run, {args.lanes} SMTP connections per worker, "
              f"{os.cpu_count()} CPU(s), PostgreSQL {'given' if args.url else 'durable throwaway'}")
        print(f"{'workers':>7} {'msg/s wall':>10} {'msg/s steady':>12} {'db share':>8} "
              f"{'db ms/msg':>9} {'db calls/msg':>12} {'pg cpu s/1k':>11}  load avg (1, 5, 15)")
        results = []
        for k in (int(x) for x in args.workers.split(",")):
            r = one_run(url, home, port, args.contacts, k, args.lanes, base)
            assert r["sent"] == args.contacts, r
            results.append(r)
            print(f"{k:>7} {r['rate_wall']:>10,.0f} {r['rate_steady']:>12,.0f} "
                  f"{r['db_share']:>8.0%} {r['db_ms_per_msg']:>9.2f} "
                  f"{r['db_calls_per_msg']:>12.2f} {r['server_cpu_s_per_1000']:>11.2f}  "
                  + ", ".join(f"{x:.2f}" for x in r["load"]), flush=True)
        best = max(results, key=lambda r: r["rate_steady"])
        print(f"fastest: {best['workers']} worker(s), {best['rate_steady']:,.0f} msg/s steady, "
              f"{best['rate_wall']:,.0f} msg/s wall")
    finally:
        sink.terminate()
        sink.wait()
        if sink.stdout is not None:
            sink.stdout.close()
        if args.url is None:
            subprocess.run([REPO / ".ci" / "postgres", "stop", cluster], check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--as-worker"]:
        worker()
    else:
        main()

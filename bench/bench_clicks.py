"""GET /r/<token> through the real `web` (waitress) on loopback: requests/s and latency while
every click is counted.

Run: .venv/bin/python bench/bench_clicks.py [--requests 20000] [--clients 8]
Starts `clubjapon-ops web` on a free loopback port over a SQLite store holding the links of
one edition (three languages, four links each), then keep-alive clients (one connection each,
each its own user agent) follow those links as fast as they can. Prints requests/s, p50, p99
and max latency, and waits until the store holds every click (target >= 1,000 req/s with a
p99 under 50 ms, issue 25).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from clubjapon_ops.delivery.clicks import ClickSigner
from clubjapon_ops.settings import load_settings
from clubjapon_ops.store import open_store
from clubjapon_ops.store.clicks import StoredLink, remember_links

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-clicks-secret-0123456789"
HOST = "club-japon.example.org"


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(home: Path) -> list[str]:
    """A project with a store holding twelve links; their paths (/r/<token>)."""
    shutil.copytree(ROOT / "templates", home / "templates")
    (home / "config").mkdir()
    settings = load_settings(home, environ={"CLUBJAPON_SECRET": SECRET})
    signer = ClickSigner(SECRET)
    links = [StoredLink(signer.link_id("bench-edition", lang, str(key)), "bench-edition", lang,
                        str(key), f"link {key}", f"https://example.org/{lang}/{key}?q=été")
             for lang in ("fr", "en", "ja") for key in range(4)]
    store = open_store(settings.database_url)
    with store.transaction() as conn:
        remember_links(conn, links)
    store.close()
    return [f"/r/{link.id}" for link in links]


def wait_for(port: int, deadline: float) -> None:
    """Until the server answers /healthz (not a sleep: its answer)."""
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the web app did not answer in time")


def client(port: int, paths: list[str], n: int, agent: str, out: list[float]) -> None:
    """Ask for ``n`` paths over one keep-alive connection; append each latency (s)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": HOST, "User-Agent": agent}
    for i in range(n):
        start = time.perf_counter()
        conn.request("GET", paths[i % len(paths)] if i % 7 else paths[0], headers=headers)
        answer = conn.getresponse()
        answer.read()
        out.append(time.perf_counter() - start)
        if answer.status not in (200, 302):
            raise SystemExit(f"unexpected answer {answer.status}")


def load(port: int, paths: list[str], args: argparse.Namespace, name: str) -> int:
    """Run the clients against ``paths``; print the figures; return the requests made."""
    latencies: list[list[float]] = [[] for _ in range(args.clients)]
    each = args.requests // args.clients
    threads = [threading.Thread(target=client, args=(port, paths, each,
                                                     f"Mozilla/5.0 (bench {i})", latencies[i]))
               for i in range(args.clients)]
    start, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    times = sorted(t for one in latencies for t in one)
    total = len(times)
    print(f"  {name:<26} {total / elapsed:>7,.0f} req/s  {elapsed:6.2f} s  "
          f"p50 {times[total // 2] * 1000:5.1f} ms  "
          f"p99 {times[min(total - 1, int(total * 0.99))] * 1000:6.1f} ms  "
          f"max {times[-1] * 1000:6.1f} ms  (clients used {time.process_time() - cpu:.1f} "
          "CPU-s)")
    return total


def counted(db: Path) -> int:
    """Clicks the store holds (readers and scanners)."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT SUM(readers + scanners) FROM link_clicks").fetchone()
    return int(row[0] or 0)


def main() -> None:
    """Serve, load, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: does the bench still work? (the suite runs it)")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.clients = 400, 4
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        paths = prepare(home)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBJAPON_")}
        env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_SECRET": SECRET})
        server = subprocess.Popen(
            [sys.executable, "-m", "clubjapon_ops", "web", "--port", str(port)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(port, time.monotonic() + 60)
            print(f"through waitress on loopback, {args.clients} keep-alive clients, "
                  f"{args.requests:,} requests each run")
            # The same server's /healthz first: the ceiling of Flask and waitress on this
            # machine now, against which the redirects' figures read.
            load(port, ["/healthz"], args, "GET /healthz (no work)")
            total = load(port, paths, args, "GET /r/<token> (counted)")
            db = home / "var" / "clubjapon.sqlite3"
            deadline = time.monotonic() + 60
            while counted(db) < total and time.monotonic() < deadline:
                time.sleep(0.2)  # the counter writes every second, clicks 5 s old
            print("  target for /r/: >= 1,000 req/s with a p99 under 50 ms")
            print(f"  counted in the store: {counted(db):,} of {total:,} clicks, "
                  f"in {len(paths)} rows at most (one per link and day)")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()

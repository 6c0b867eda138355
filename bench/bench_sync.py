"""Benchmark the HubSpot sync against the local HubSpot-shaped server (not a test).

    .venv/bin/python bench/bench_sync.py                  # everything, about two minutes
    .venv/bin/python bench/bench_sync.py --skip-limited   # without the rate-limited run
    .venv/bin/python bench/bench_sync.py --lists-only     # only the lists run (issue 22)

For 10,000 and 100,000 contacts: a full sync into a fresh SQLite file, then 1% of the
contacts change and an incremental sync runs. Then a full sync against a server that
enforces HubSpot's 100 requests per 10 s (rolling), to show how close to that limit the
pacing runs without a 429. The server runs in its own process, each sync in a fresh child
process, so that peak RSS is the sync's own. Targets (issue 3): full >= 5,000 contacts/s;
incremental of 1,000 changes < 3 s; peak RSS < 150 MB and at most 10% more at 100,000
contacts than at 10,000; rate-limited run >= 90% of the limit with zero 429s.

Lists (issue 22): 10,000 contacts in 20 lists (each contact on two) against the same
enforced limit, a full sync then an incremental one (both read every list's members again):
the requests each costs, by kind, and zero 429s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.fakes

from tests.fakes.hubspot_crm import TOKEN  # noqa: E402


def child(url: str, home: str, full: bool) -> None:
    """Run one sync in this process and print its figures as JSON."""
    from clubjapon_ops import jobs
    from clubjapon_ops.crm.hubspot import HubSpotSource, hubspot_source
    from clubjapon_ops.settings import load_settings
    from clubjapon_ops.store import open_store

    settings = load_settings(Path(home), environ={
        "CLUBJAPON_CRM": "hubspot", "HUBSPOT_TOKEN": TOKEN, "HUBSPOT_BASE_URL": url,
    })
    store = open_store(settings.database_url)
    source: HubSpotSource = hubspot_source(settings)
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    started = time.perf_counter()
    report = jobs.crm_sync(settings, store, full=full, source=source)
    took = time.perf_counter() - started
    stats = source.client.stats
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_kb = usage.ru_maxrss
    print(json.dumps({
        "mode": "full" if report.full else "incremental",
        "contacts": report.fetched,
        "seconds": took,
        "cpu_s": usage.ru_utime + usage.ru_stime - cpu_before,
        "rate": report.fetched / took if took else 0.0,
        "requests": stats.requests,
        "rate_limited": stats.rate_limited,
        "paced_s": stats.paced_s,
        "peak_rss_mb": peak_kb / 1024,
        "created": report.upserts.created,
        "updated": report.upserts.updated,
        "lists": len(report.lists.seen),
        "list_memberships": report.lists.memberships,
    }))


class Server:
    """The fake HubSpot in a subprocess."""

    def __init__(self, contacts: int, per_window: int | None = None, lists: int = 0) -> None:
        args = [sys.executable, "-m", "tests.fakes.hubspot_crm", "--contacts", str(contacts),
                "--lists", str(lists)]
        if per_window:
            args += ["--per-window", str(per_window), "--window-s", "10"]
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def call(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST" if data
                                         else "GET", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run_child(url: str, home: str, full: bool) -> dict[str, Any]:
    """Run one sync in a fresh interpreter; return its figures."""
    args = [sys.executable, __file__, "--child", url, home] + (["--full"] if full else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def show(label: str, r: dict[str, Any]) -> None:
    print(f"{label:<34} {r['contacts']:>7} contacts in {r['seconds']:7.2f} s = "
          f"{r['rate']:>7.0f} contacts/s ({r['contacts'] / r['cpu_s']:>5.0f}/CPU-s) | "
          f"{r['requests']:>5} requests, "
          f"{r['rate_limited']} x 429 | peak RSS {r['peak_rss_mb']:.1f} MB", flush=True)


def sized(n: int) -> dict[str, dict[str, Any]]:
    """Full sync of n contacts, then an incremental sync after 1% changed."""
    server = Server(n)
    try:
        with tempfile.TemporaryDirectory() as home:
            (Path(home) / "config").mkdir()
            full = run_child(server.url, home, full=True)
            show(f"full sync, {n:,} contacts", full)
            changed = len(server.call("/__fake/touch", {"count": n // 100})["ids"])
            incremental = run_child(server.url, home, full=False)
            show(f"incremental, {changed:,} changed", incremental)
            if incremental["contacts"] != changed:
                print(f"  !! the incremental sync fetched {incremental['contacts']} contacts, "
                      f"expected exactly the {changed} changed")
    finally:
        server.stop()
    return {"full": full, "incremental": incremental}


def limited(n: int) -> None:
    """Full sync against a server enforcing 100 requests per 10 s."""
    server = Server(n, per_window=100)
    try:
        with tempfile.TemporaryDirectory() as home:
            (Path(home) / "config").mkdir()
            r = run_child(server.url, home, full=True)
            stats = server.call("/__fake/stats")
    finally:
        server.stop()
    show(f"full sync, 100 req/10 s, {n:,}", r)
    per_s = r["requests"] / r["seconds"]
    print(f"  {per_s:.2f} requests/s against a limit of 10.00/s = {per_s * 10:.1f}% of the "
          f"limit; server counted {stats.get('429', 0)} x 429, client paced "
          f"{r['paced_s']:.1f} s")


def with_lists(n: int, lists: int) -> None:
    """n contacts in ``lists`` lists, against 100 requests per 10 s: what lists cost."""
    server = Server(n, per_window=100, lists=lists)
    try:
        with tempfile.TemporaryDirectory() as home:
            (Path(home) / "config").mkdir()
            for full in (True, False):
                before = server.call("/__fake/stats")
                r = run_child(server.url, home, full=full)
                after = server.call("/__fake/stats")
                spent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                on_lists = sum(v for k, v in spent.items() if k.startswith("GET /crm/v3/lists/"))
                search = spent.get("POST /crm/v3/lists/search", 0)
                show(f"{r['mode']} sync, {n:,} in {lists} lists", r)
                print(f"  lists: {r['lists']} synced, {r['list_memberships']:,} memberships, "
                      f"{search} search + {on_lists} memberships requests "
                      f"(of {r['requests']} in all); server counted {spent.get('429', 0)} x 429, "
                      f"client paced {r['paced_s']:.1f} s")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("URL", "HOME"), help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--limited-contacts", type=int, default=50_000)
    parser.add_argument("--skip-limited", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: does the bench still work? (the suite runs it)")
    parser.add_argument("--lists-contacts", type=int, default=10_000)
    parser.add_argument("--lists", type=int, default=20)
    parser.add_argument("--lists-only", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.contacts, args.small, args.skip_limited = 300, 100, True
        args.lists_contacts, args.lists = 200, 3
    if args.child:
        child(args.child[0], args.child[1], args.full)
        return
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f} (machine shared)")
    if args.lists_only:
        with_lists(args.lists_contacts, args.lists)
        return
    small = sized(args.small)
    large = sized(args.contacts)
    growth = large["full"]["peak_rss_mb"] / small["full"]["peak_rss_mb"] - 1
    print(f"peak RSS growth {args.small:,} -> {args.contacts:,} contacts: {growth:+.1%}")
    if not args.skip_limited:
        limited(args.limited_contacts)
    with_lists(args.lists_contacts, args.lists)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

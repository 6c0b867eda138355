"""Benchmark `suppressions import` on SQLite, and how long it holds the store (not a test).

    .venv/bin/python bench/bench_suppressions_import.py              # 100,000 and 300,000 rows
    .venv/bin/python bench/bench_suppressions_import.py --smoke      # 2,000 rows, a few seconds
    .venv/bin/python bench/bench_suppressions_import.py --src /work/main/src   # another tree

For each size: a CSV of N addresses (email,reason; 1 in 10 already suppressed under `crm`)
is imported by the real CLI, in its own process, into a fresh SQLite file. Meanwhile a probe
in this process takes SQLite's write lock (BEGIN IMMEDIATE, then ROLLBACK) every 20 ms, as a
reader's one-click unsubscribe would: the longest it waited is how long the import held the
store at once (issue 26: at most about a second; one transaction of 69-85 s before).
Printed: rows, seconds, rows/s, the probe's longest and median wait, the CLI's summary line.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_home(root: Path, rows: int) -> tuple[Path, Path]:
    """A project root with a migrated database, some 'crm' suppressions, and the CSV."""
    home = root / f"home-{rows}"
    (home / "config").mkdir(parents=True)
    csv_file = home / "import.csv"
    with csv_file.open("w", encoding="utf-8") as out:
        out.write("email,reason\n")
        for i in range(rows):
            out.write(f"reader{i}@example.com,old list {i % 7}\n")
    return home, csv_file


def cli(home: Path, src: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI of the tree ``src`` in its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBJAPON_")}
    env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_SECRET="bench-secret-0123456789abcdef")
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from clubjapon_ops.cli import main; sys.argv[0] = 'clubjapon-ops'; main()")
    return subprocess.run([sys.executable, "-c", code, str(src), *args], env=env,
                          capture_output=True, text=True, check=False)


def seed(home: Path, src: Path, rows: int) -> Path:
    """Create the database (through the CLI) and suppress 1 in 10 under 'crm'."""
    done = cli(home, src, "suppressions", "list")
    if done.returncode != 0:
        raise SystemExit(f"cannot create the database: {done.stderr.strip()}")
    db = home / "var" / "clubjapon.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO suppressions (email, reason, source, created_at) "
            "VALUES (?, 'opted out in the CRM', 'crm', '2026-01-01 00:00:00')",
            [(f"reader{i}@example.com",) for i in range(0, rows, 10)])
    return db


def probe(db: Path, stop: threading.Event, waits: list[float]) -> None:
    """Take the write lock every 20 ms, as a one-click would; record each wait."""
    conn = sqlite3.connect(db, timeout=600, isolation_level=None)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # held for the whole timeout: count it, go on
            waits.append(time.perf_counter() - started)
            continue
        waits.append(time.perf_counter() - started)
        conn.execute("ROLLBACK")
        stop.wait(0.02)
    conn.close()


def run(root: Path, src: Path, rows: int) -> None:
    """Import ``rows`` addresses and print the figures."""
    home, csv_file = make_home(root, rows)
    db = seed(home, src, rows)
    waits: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=probe, args=(db, stop, waits))
    watcher.start()
    started = time.perf_counter()
    done = cli(home, src, "suppressions", "import", str(csv_file))
    took = time.perf_counter() - started
    stop.set()
    watcher.join()
    summary = (done.stdout.strip().splitlines() or [done.stderr.strip()])[0]
    print(f"{rows:>8,} rows  {took:7.2f} s  {rows / took:9,.0f} rows/s  "
          f"longest wait for the store {max(waits, default=0):6.2f} s "
          f"(median {statistics.median(waits or [0]) * 1000:.1f} ms, {len(waits)} probes)  "
          f"| {summary}")
    if done.returncode != 0:
        raise SystemExit(f"import failed: {done.stderr.strip()}")


def main() -> None:
    """Parse the arguments and run each size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="2,000 rows only")
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 300_000])
    parser.add_argument("--src", type=Path, default=REPO / "src",
                        help="the source tree whose CLI runs (to compare with another)")
    args = parser.parse_args()
    sizes = [2_000] if args.smoke else args.rows
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        for rows in sizes:
            run(Path(tmp), args.src.resolve(), rows)


if __name__ == "__main__":
    main()

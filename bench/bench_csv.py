"""Benchmark the CSV reader alone (not a test): rows/s and peak RSS over a generated export.

    .venv/bin/python bench/bench_csv.py                 # 1,000,000 rows
    .venv/bin/python bench/bench_csv.py --rows 200000

Writes the export once into a temporary folder, then reads it with CsvSource in a fresh
child process (so peak RSS is the reader's own), three times, and prints the best run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_export(path: Path, rows: int) -> None:
    """A French spreadsheet export: ';', a quoted company with a line break now and then."""
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        out.write("E-mail;Prénom;Nom;Entreprise;Langue;Désabonné;Date de modification;Poste\n")
        for i in range(rows):
            company = f'"Société {i % 97}\nR&D"' if i % 50 == 0 else f"Entreprise {i % 1000}"
            out.write(f"user{i}@example.com;Camille;Dubois-{i};{company};fr;non;"
                      f"2025-11-{1 + i % 28:02d}T10:00:00Z;Juriste\n")


def child(path: str) -> None:
    """Read the whole export once and print the figures as JSON."""
    from clubjapon_ops.crm.csvfile import CsvSource

    started = time.perf_counter()
    records = rejected = 0
    for page in CsvSource(Path(path)).pages(None, full=True):
        records += len(page.records)
        rejected += len(page.rejected)
    took = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"records": records, "rejected": rejected, "seconds": took,
                      "rows_per_s": records / took, "peak_rss_mb": peak_mb}))


def main() -> None:
    """Generate the export, time three reads, print the best."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: does the bench still work? (the suite runs it)")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.runs = min(args.rows, 2000), 1
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.csv"
        write_export(path, args.rows)
        results = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, __file__, "--child", str(path)],
                                 check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out))
        best = min(results, key=lambda r: r["seconds"])
        runs = ", ".join(f"{r['seconds']:.2f}" for r in results)
        print(f"{best['records']:,} rows in {best['seconds']:.2f} s: "
              f"{best['rows_per_s']:,.0f} rows/s, peak RSS {best['peak_rss_mb']:.0f} MB "
              f"(runs: {runs} s)")


if __name__ == "__main__":
    main()

"""Benchmark the preview's front page (not a test): time to list N editions, first and warm.

    .venv/bin/python bench/bench_preview_index.py               # 21 editions
    .venv/bin/python bench/bench_preview_index.py --editions 60

Copies config/ and templates/ into a temporary project, adds N-1 copies of the shipped
edition under other names, and asks the preview app for "/" through Flask's test client
(no network): the first request, then the median of the next ones. Every request lists every
edition file, as `edition list` does, so the figure grows with the number of editions.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = "2025-11-04-lille.yaml"


def main() -> None:
    """Build the project, then time the index."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editions", type=int, default=21)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: does the bench still work? (the suite runs it)")
    args = parser.parse_args()
    if args.smoke:
        args.editions, args.requests = 3, 3

    from clubjapon_ops.settings import load_settings
    from clubjapon_ops.store import open_store
    from clubjapon_ops.web import create_preview_app

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "config", root / "config")
        shutil.copytree(REPO / "templates", root / "templates")
        editions = root / "config" / "editions"
        text = (editions / SHIPPED).read_text(encoding="utf-8")
        for i in range(args.editions - 1):
            (editions / f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}-copy{i}.yaml").write_text(
                text, encoding="utf-8")
        settings = load_settings(root, environ={"CLUBJAPON_HOME": str(root)})
        client = create_preview_app(settings, lambda: open_store(settings.database_url)
                                    ).test_client()
        times = []
        for _ in range(args.requests):
            started = time.perf_counter()
            answer = client.get("/")
            times.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise SystemExit(f"GET / answered {answer.status_code}")
    print(f"preview index of {args.editions} editions: first request "
          f"{times[0] * 1000:.0f} ms, then median {statistics.median(times[1:]) * 1000:.1f} ms "
          f"(max {max(times[1:]) * 1000:.1f} ms) over {args.requests - 1}")


if __name__ == "__main__":
    main()

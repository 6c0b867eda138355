"""An edition's audience at 100,000 contacts in 20 lists: the plan `send` prints before
anything is sent, and the whole `send --dry-run`, on SQLite and on PostgreSQL.

    .venv/bin/python bench/bench_audience.py                        # SQLite, in a temp dir
    .venv/bin/python bench/bench_audience.py --database-url postgresql+psycopg://...

The store is filled through the store's own functions (contacts, lists, memberships: each
contact on two lists); the edition names five lists, excludes one, and has two sections for
part of the audience. Printed: the time of the checks and the plan (audience by language
and by list: what `send --dry-run` and the confirmation prompt show), and of the whole
`clubjapon-ops send EDITION --dry-run` as a subprocess (which also builds every message).
Target (issue 22): the plan under 3 s on both engines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.audience import AudienceGate
from clubjapon_ops.jobs.audience import audience_plan, check_audience
from clubjapon_ops.newsletter.service import find_edition
from clubjapon_ops.settings import load_settings
from clubjapon_ops.store import open_store
from clubjapon_ops.store.contacts import upsert_contacts
from clubjapon_ops.store.deliveries import plan_summary
from clubjapon_ops.store.lists import SeenList, contact_ids, replace_memberships, save_lists
from clubjapon_ops.store.types import utcnow

REPO = Path(__file__).resolve().parents[1]
SLUG = "2025-11-04-lille"
AUDIENCE = """
audience:
  lists: [Liste 1, Liste 2, Liste 3, Liste 4, Liste 5]
  exclude_lists: [Liste 20]
"""


def fill(url: str, n: int, lists: int) -> None:
    """n contacts, ``lists`` lists, each contact on two of them."""
    store = open_store(url)
    names = [f"Liste {k + 1}" for k in range(lists)]
    with store.transaction() as conn:
        ids = save_lists(conn, "bench", [SeenList(name) for name in names], utcnow())
    keys = [ids[name.casefold()] for name in names]
    step = 5000
    for start in range(0, n, step):
        batch = [Contact(email=f"reader{i}@example.com", source="bench", first_name=f"P{i}",
                         language=("fr", "en", "ja")[i % 3]) for i in range(start, start + step)]
        with store.transaction() as conn:
            upsert_contacts(conn, batch)
            found = contact_ids(conn, [c.email for c in batch])
            replace_memberships(conn, "bench", {
                found[f"reader{i}@example.com"]: {keys[i % lists], keys[(i * 7 + 3) % lists]}
                for i in range(start, start + step)})
    store.close()


def edition(home: Path) -> None:
    shutil.copytree(REPO / "config" / "editions", home / "config" / "editions")
    shutil.copytree(REPO / "templates", home / "templates")
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("  - type: list\n    style: inline\n",
                        "  - type: list\n    only_for: [Liste 2]\n    style: inline\n")
    text = text.replace("  - type: cta\n", "  - type: cta\n    except_for: [Liste 3]\n")
    path.write_text(text + AUDIENCE, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--lists", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--skip-dry-run", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: does the bench still work? (the suite runs it)")
    args = parser.parse_args()
    if args.smoke:
        args.contacts = 300  # the edition names lists 1-5 and 20: all twenty are made
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        edition(home)
        url = args.database_url or f"sqlite:///{home / 'bench.sqlite3'}"
        env = {"CLUBJAPON_DATABASE_URL": url, "CLUBJAPON_SECRET": "bench-secret-0123456789ab"}
        settings = load_settings(home, environ=env)
        started = time.perf_counter()
        fill(url, args.contacts, args.lists)
        print(f"{settings.masked_database_url().split(':')[0]}: {args.contacts:,} contacts on "
              f"2 of {args.lists} lists each, filled in {time.perf_counter() - started:.1f} s")
        store = open_store(url)
        content = find_edition(settings, SLUG)
        started = time.perf_counter()
        check_audience(store, content)
        gate = AudienceGate(content)
        with store.transaction() as conn:
            summary = plan_summary(conn, SLUG, gate.where)
        plan = audience_plan(store, content)
        took = time.perf_counter() - started
        print(f"  plan (checks, by language, by list): {took:.2f} s  (target < 3 s): to send "
              f"{summary['to_send']:,}, by language {summary['new_by_language']}, by list "
              f"{plan.by_list}, sections' lists {plan.conditional}")
        store.close()
        if not args.skip_dry_run:
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "clubjapon_ops", "send", SLUG, "--dry-run"],
                env={**os.environ, "CLUBJAPON_HOME": str(home), **env},
                capture_output=True, text=True, check=False)
            took = time.perf_counter() - started
            last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr
            print(f"  clubjapon-ops send --dry-run: exit {out.returncode} in {took:.1f} s: {last}")
        if args.database_url:
            drop(args.database_url)


def drop(url: str) -> None:
    """Empty the PostgreSQL database the bench filled."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


if __name__ == "__main__":
    main()

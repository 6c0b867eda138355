"""Benchmark the bounce mailbox against a local dovecot (not a test).

    .venv/bin/python bench/bench_bounces.py            # 1,000 then 10,000 messages
    .venv/bin/python bench/bench_bounces.py --sizes 10000

For each size: a fresh dovecot mailbox (tests/dovecot.py, 127.0.0.1) is loaded with that many
real reports (the vendored corpus's bounces and complaints, each copy with its own
Message-ID and its own recipients, who all have a ledger row in a fresh SQLite store; a
bounce that quotes a Message-ID returns ours, to its first recipient, as a real one would),
then `clubjapon-ops bounces` runs in a child process: fetched in batches, classified,
matched, recorded as events, suppressed, moved to Processed (or, a report that ties no
reader, to Review). Printed: wall time, messages/s and the
child's peak RSS. Target (issue 16): 10,000 messages in under a minute, memory flat (peak
RSS about the same at 1,000 and 10,000).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.dovecot and the corpus table

from sqlalchemy import insert  # noqa: E402
from tests.bounces.conftest import EXPECTED, corpus, ours  # noqa: E402
from tests.dovecot import HOW_TO, dovecot_available, running_dovecot  # noqa: E402

from clubjapon_ops.bounces.classify import classify  # noqa: E402
from clubjapon_ops.settings import load_settings  # noqa: E402
from clubjapon_ops.store import open_store  # noqa: E402
from clubjapon_ops.store.schema import deliveries  # noqa: E402

SECRET = "bench-secret-0123456789abcdef"
SKIPPED = 77  # exit status of a --smoke run without a system package it needs (automake's)
TEMPLATES = [(name, addresses) for name, (kind, addresses) in sorted(EXPECTED.items())
             if kind in ("hard", "soft", "delayed", "complaint") and addresses]


def messages(count: int) -> tuple[list[bytes], list[str]]:
    """``count`` reports, each naming recipients of its own; and those recipients."""
    out: list[bytes] = []
    emails: list[str] = []
    for n in range(count):
        name, addresses = TEMPLATES[n % len(TEMPLATES)]
        raw = corpus(name)
        for k, address in enumerate(addresses):
            mine = f"r{n}.{k}@bench.example.org"
            raw = raw.replace(address.encode(), mine.encode())
            emails.append(mine)
        if EXPECTED[name][0] != "complaint" and classify(raw).returned_message_id:
            raw = ours(raw, "2025-11-04-lille", f"r{n}.0@bench.example.org")
        # Its own Message-ID, first among the headers: another report, not a copy.
        out.append(f"Message-ID: <bench-{n}@mx.example.net>\r\n".encode() + raw)
    return out, emails


# The measured run: `clubjapon-ops -q bounces`, printing its own peak RSS (VmHWM) at exit.
# Not ru_maxrss: on Linux a child's includes the RSS of the process it was forked from.
_RUN = """
import atexit, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print("VmHWM", line.split()[1], file=sys.stderr)
atexit.register(peak)
from clubjapon_ops.cli import main
main(["-q", "bounces"])
"""


def load(size: int, home: Path, port: int, user: str) -> None:
    """In a child process: the ledger rows and the mailbox of one size."""
    from tests.dovecot import Dovecot

    server = Dovecot(Path("/nonexistent"), port, 0, Path("/nonexistent"))
    settings = load_settings(home, environ={"CLUBJAPON_HOME": str(home)})
    raws, emails = messages(size)
    store = open_store(settings.database_url)
    sent = datetime.now(UTC) - timedelta(days=2)
    with store.transaction() as conn:
        conn.execute(insert(deliveries), [
            {"edition": "2025-11-04-lille", "email": e, "lang": "fr", "state": "sent",
             "attempts": 1, "created_at": sent, "updated_at": sent, "sent_at": sent}
            for e in emails])
    store.close()
    server.append(user, raws)
    print(len(emails))


def main() -> None:
    """Load, run and print the figures for each size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--load", nargs=4, help=argparse.SUPPRESS)  # size home port user
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: does the bench still work? (the suite runs it)")
    args = parser.parse_args()
    if args.smoke:
        args.sizes = [40]
    if args.load:
        size, home, port, user = args.load
        load(int(size), Path(home), int(port), user)
        return
    if not dovecot_available():
        print(HOW_TO)
        sys.exit(SKIPPED)
    with running_dovecot() as server:
        for size in args.sizes:
            home = Path(tempfile.mkdtemp(prefix="bench-bounces-"))
            (home / "config").mkdir()
            user = server.new_user()
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("CLUBJAPON_", "BOUNCE_"))}
            env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_SECRET=SECRET, **server.env(user))
            # Loaded by another process: this one stays small (see _RUN).
            started = time.perf_counter()
            loaded = subprocess.run(
                [sys.executable, __file__, "--load", str(size), str(home), str(server.port),
                 user], env=env, capture_output=True, text=True, check=True)
            load_s = time.perf_counter() - started
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", _RUN], env=env,
                                    capture_output=True, text=True, check=False)
            took = time.perf_counter() - started
            if result.returncode != 0:
                raise SystemExit(f"bounces failed: {result.stderr}")
            peak = next(int(line.split()[1]) for line in result.stderr.splitlines()
                        if line.startswith("VmHWM"))
            print(f"{size:>6} messages ({loaded.stdout.strip()} recipients): loaded in "
                  f"{load_s:.1f} s; bounces {took:.1f} s = {size / took:,.0f} msg/s, "
                  f"peak RSS {peak / 1024:.0f} MB")
            print(f"        {result.stdout.strip()[:160]}")
            print(f"        in Processed: {server.count(user, 'Processed')}, "
                  f"in Review: {server.count(user, 'Review')}, "
                  f"left in INBOX: {server.count(user, 'INBOX')}")


if __name__ == "__main__":
    main()

"""Ten rounds of three concurrent `send`s of one edition on SQLite, with a fourth process
taking the write lock over and over, to aiosmtpd on 127.0.0.1 (not a test; the suite runs
one round of the same thing, tests/e2e/test_send_concurrent.py).

    .venv/bin/python bench/bench_concurrent_send.py                  # 10 rounds of 2,000
    .venv/bin/python bench/bench_concurrent_send.py --rounds 3 --messages 500

Printed per round: the senders' exit codes (0 sent, 2 refused: another send holds the
edition), the seconds from their start to the last exit, readers who received two copies;
then the total. Exits 1 if any round broke the rule (a duplicate, a reader missed, a refusal
that did not name the holder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.test_send_concurrent import check, concurrent_sends  # noqa: E402


def main() -> int:
    """Run the rounds; print each and the total."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: does the bench still work? (the suite runs it)")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.messages = 1, 30
    failed = 0
    began = time.monotonic()
    for n in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="bench-concurrent-") as tmp:
            home = Path(tmp)
            shutil.copytree(REPO / "config" / "editions", home / "config" / "editions")
            shutil.copytree(REPO / "templates", home / "templates")
            round_began = time.monotonic()
            result = concurrent_sends(home, args.messages)
            twice = sum(1 for k in result.received.values() if k > 1)
            try:
                check(result)
                verdict = "ok"
            except AssertionError as exc:
                failed += 1
                verdict = f"FAILED: {str(exc).splitlines()[0][:200]}"
            print(f"round {n:>2}: exits {result.codes}, senders {result.seconds:5.1f} s, "
                  f"round {time.monotonic() - round_began:5.1f} s, duplicates {twice}: "
                  f"{verdict}", flush=True)
    load = os.getloadavg()[0]
    print(f"{args.rounds} rounds of {args.messages} in {time.monotonic() - began:.1f} s "
          f"(load average {load:.1f}); {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

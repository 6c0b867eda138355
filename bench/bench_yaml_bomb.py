"""Refusing the review's YAML alias bomb (issue 26, item 6): how long until the error.

Writes a 10 KB edition of nested aliases (each level lists the one before ten times: 10^N
strings once expanded) and times load_edition's refusal, best of 20, next to loading the real
edition; then 'edition list' and 'edition new --from' on a project holding the bomb, as a
subprocess (Python start-up included). Run: .venv/bin/python bench/bench_yaml_bomb.py
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter import content
from clubjapon_ops.newsletter.content import load_edition

REPO = Path(__file__).resolve().parent.parent
BOMB = "2026-01-01-bomb"


def bomb(levels: int, width: int = 10) -> str:
    """An edition whose strings number width**levels once its aliases are expanded."""
    lines = ["number: 9", "date: 2026-01-01", 'a0: &a0 ["lol"]']
    for n in range(1, levels + 1):
        lines.append(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * width)}]")
    # Padded with ordinary text to the review's 10 KB.
    lines += [f"# {'x' * 70}" for _ in range(max(0, (10_240 - len("".join(lines))) // 73))]
    return "\n".join(lines) + "\n"


def best(action: object, runs: int = 20) -> float:
    """The fastest of ``runs`` calls, in milliseconds (the cache is emptied each time)."""
    times = []
    for _ in range(runs):
        content._load.cache_clear()
        start = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def refused(path: Path) -> None:
    try:
        load_edition(path)
    except ConfigError:
        return
    raise SystemExit("the bomb loaded: not refused")


def cli(home: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "clubjapon_ops", "--log-text", *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"CLUBJAPON_HOME": str(home), "PATH": "/usr/bin:/bin"})
    return (time.perf_counter() - start) * 1000, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="two bombs only: does the bench still work? (the suite runs it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for name in ("config", "templates"):
            shutil.copytree(REPO / name, home / name)
        real = home / "config/editions/2025-11-04-lille.yaml"
        path = home / "config/editions" / f"{BOMB}.yaml"
        print(f"real edition, parsed and validated: {best(lambda: load_edition(real)):.2f} ms")
        took, _ = cli(home, "edition", "list")
        print(f"'edition list' without the bomb (start-up, the real edition): {took:.0f} ms")
        for levels in (6, 30) if args.smoke else (6, 9, 12, 30):
            path.write_text(bomb(levels), encoding="utf-8")
            size = path.stat().st_size
            print(f"bomb of 10^{levels} strings ({size:,} bytes): refused in "
                  f"{best(lambda: refused(path)):.3f} ms")
        took, listed = cli(home, "edition", "list")
        line = next(x for x in listed.stdout.splitlines() if x.startswith(BOMB))
        print(f"'edition list' with the bomb: {took:.0f} ms, exit {listed.returncode}: {line}")
        took, new = cli(home, "edition", "new", "2026-06-18-amiens", "--from", BOMB)
        print(f"'edition new --from' the bomb: {took:.0f} ms, exit {new.returncode}: "
              f"{new.stderr.strip()}")


if __name__ == "__main__":
    main()

"""Every benchmark still runs: each bench/bench_*.py, with --smoke (tiny sizes), in a subprocess.

A change that breaks a benchmark (a setting it does not give, a function it calls renamed)
fails here, not months later when someone wants the figures. The figures themselves are not
checked: a smoke run's sizes say nothing about speed (speed is read by hand, bench/README.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BENCHES = sorted((REPO / "bench").glob("bench_*.py"))
SKIPPED = 77  # a bench's --smoke exit status when a system package it needs is missing
# A figure as the benches print them: a number with its unit.
FIGURE = re.compile(r"\d[\d,.]*\s?(msg/s|rows/s|contacts/s|ms|s|MB|KB)\b")


def test_every_bench_script_is_found() -> None:
    assert len(BENCHES) >= 8 and all(p.name.startswith("bench_") for p in BENCHES)


@pytest.mark.parametrize("script", BENCHES, ids=[p.stem for p in BENCHES])
def test_the_bench_runs_in_smoke_mode_and_prints_its_figures(script: Path) -> None:
    # The caller's settings stay out (a bench sets its own), except the tests' PostgreSQL.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "BREVO_", "HUBSPOT_", "SENDGRID_",
                                "BOUNCE_"))}
    if os.environ.get("CLUBJAPON_TEST_POSTGRES_URL"):
        env["CLUBJAPON_TEST_POSTGRES_URL"] = os.environ["CLUBJAPON_TEST_POSTGRES_URL"]
    result = subprocess.run([sys.executable, str(script), "--smoke"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode == SKIPPED:
        pytest.skip(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert FIGURE.search(result.stdout), result.stdout[-3000:]

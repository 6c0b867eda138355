"""`sync` on a terminal shows a live count, then the summary in its place."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_sync_on_a_terminal_counts_as_it_goes(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    export = tmp_path / "contacts.csv"
    export.write_text("email\n" + "".join(f"reader{i}@example.com\n" for i in range(2500)),
                      encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBJAPON_")}
    env.update(CLUBJAPON_HOME=str(tmp_path), CLUBJAPON_CSV_PATH=str(export))
    main, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "clubjapon_ops", "--log-text", "-q", "sync"],
            stdout=subprocess.PIPE, stderr=terminal, env=env, timeout=60, check=False)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
    assert result.returncode == 0
    assert b"syncing: 1,000 fetched" in shown and b"syncing: 2,000 fetched" in shown
    assert b"2500 fetched, 2500 created" in result.stdout

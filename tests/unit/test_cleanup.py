from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clubjapon_ops.errors import Interrupted
from clubjapon_ops.jobs import cleanup
from clubjapon_ops.settings import Settings
from clubjapon_ops.store import Store
from clubjapon_ops.store.runs import recent_runs

NOW = datetime(2026, 11, 26, 4, 15, tzinfo=UTC)


def message(folder: Path, name: str, age_days: float, size: int = 10) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = (NOW - timedelta(days=age_days)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_old_messages_go_recent_ones_and_other_files_stay(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    outbox = settings.outbox_dir
    old = message(outbox, "2026-09/old.eml", 40, size=100)
    recent = message(outbox, "recent.eml", 3)
    other = message(outbox, "notes.txt", 400)
    outside = message(tmp_path / "elsewhere", "keep.eml", 400)
    (outbox / "link.eml").symlink_to(outside)
    report = cleanup.outbox_cleanup(settings, store, older_than_days=30, now=NOW)
    assert not old.exists()
    assert recent.exists() and other.exists() and outside.exists()
    assert (report.deleted, report.kept, report.freed_bytes) == (1, 1, 100)
    with store.transaction() as conn:
        (run,) = recent_runs(conn)
    assert (run["job"], run["status"], run["counts"]["deleted"]) == ("outbox_cleanup", "success", 1)


def test_a_missing_outbox_is_nothing_to_clean(settings: Settings, store: Store) -> None:
    report = cleanup.outbox_cleanup(settings, store, now=NOW)
    assert (report.deleted, report.kept) == (0, 0)


def test_a_stop_request_ends_the_clean_up_between_batches(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cleanup, "BATCH", 2)
    for i in range(5):
        message(settings.outbox_dir, f"m{i}.eml", 60)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted) as info:
        cleanup.outbox_cleanup(settings, store, stop=stop, now=NOW)
    assert info.value.counts["deleted"] == 2
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 3
    with store.transaction() as conn:
        assert recent_runs(conn)[0]["status"] == "stopped"

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clubjapon_ops.errors import AlreadyRunning, ConfigError, StoreError
from clubjapon_ops.store import Store, open_store
from clubjapon_ops.store.lock import lock_path, scheduler_lock


def test_a_second_holder_is_refused_and_told_who_holds_the_lock(store: Store) -> None:
    with scheduler_lock(store) as held:
        assert str(lock_path(store)) in held
        other = open_store(str(store.engine.url))  # another opening of the same database
        refused = pytest.raises(AlreadyRunning, match=rf"already running .*pid {os.getpid()} on ")
        with refused, scheduler_lock(other):
            pass
        other.close()
    # Released on exit: the next one gets it, and the file names no holder any more.
    with scheduler_lock(store):
        pass
    assert lock_path(store).read_text() == ""


def test_the_lock_file_sits_next_to_the_database(store: Store) -> None:
    database = Path(str(store.engine.url.database))
    assert lock_path(store) == database.parent / "clubjapon.sqlite3.scheduler-lock"


def test_an_in_memory_database_cannot_hold_a_scheduler() -> None:
    memory = open_store("sqlite://")
    with pytest.raises(ConfigError, match="database file"), scheduler_lock(memory):
        pass


def test_other_databases_are_refused_until_their_lock_exists() -> None:
    class PostgresStore:
        dialect = "postgresql"

    with pytest.raises(StoreError, match="not implemented for postgresql yet"):
        scheduler_lock(PostgresStore())  # type: ignore[arg-type]


def test_a_symlink_to_the_database_shares_its_lock(store: Store, tmp_path: Path) -> None:
    database = Path(str(store.engine.url.database))
    alias = tmp_path / "alias.sqlite3"
    alias.symlink_to(database)
    other = open_store(f"sqlite:///{alias}")
    with scheduler_lock(store), pytest.raises(AlreadyRunning), scheduler_lock(other):
        pass
    other.close()

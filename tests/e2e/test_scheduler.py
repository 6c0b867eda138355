"""The scheduler as ops run it: real processes, signals and one SQLite file."""

from __future__ import annotations

import csv
import fcntl
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import use_database
from tests.e2e.test_cli import run

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ROWS = 20_000
PAGE = 500  # CsvSource's page size


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "jobs").mkdir()
    return tmp_path


@pytest.fixture
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "contacts.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["Courriel", "Prénom", "Nom", "Langue"])
        writer.writerows([f"member{i}@club{i % 50}.example.org", f"P{i}", "Nom", "fr"]
                         for i in range(ROWS))
    return path


def due_sync_job(home: Path, name: str = "sync-now") -> None:
    """A crm_sync job whose one-off time has just passed: a scheduler runs it at start."""
    when = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    (home / "jobs" / f"{name}.toml").write_text(
        f'function = "crm_sync"\nenabled = true\n[trigger]\ndate = {when}\n'
        'misfire_grace = "1h"\n', encoding="utf-8")


class Scheduler:
    """A `clubjapon-ops scheduler` process, its stderr in a file."""

    count = 0

    def __init__(self, home: Path, csv_path: Path) -> None:
        Scheduler.count += 1
        self.log = home / f"scheduler-{Scheduler.count}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBJAPON_")}
        env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(csv_path)})
        with self.log.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "clubjapon_ops", "--log-json", "scheduler"],
                stdout=subprocess.DEVNULL, stderr=err, env=env,
            )

    def logged(self, message: str) -> bool:
        return f'"msg": "{message}"' in self.log.read_text(encoding="utf-8")

    def wait_started(self) -> None:
        wait_for(lambda: self.logged("scheduler started"), self)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def wait_for(condition: Callable[[], bool], scheduler: Scheduler | None = None,
             timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if scheduler is not None and scheduler.process.poll() is not None:
            raise AssertionError(f"scheduler exited:\n{scheduler.log.read_text()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # gentle: the scheduler needs the CPU more than this loop


def lock_is_held(home: Path) -> bool:
    """True while some process holds the scheduler's flock on the SQLite database."""
    fd = os.open(home / "var" / "clubjapon.sqlite3.scheduler-lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock, had this test taken it
    return False


def query(home: Path, sql: str) -> list[tuple[Any, ...]]:
    db = home / "var" / "clubjapon.sqlite3"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)  # never create it by looking
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def contact_count(home: Path) -> int:
    return int(query(home, "SELECT count(*) FROM contacts")[0][0])


def job_runs(home: Path) -> list[tuple[Any, ...]]:
    return query(home, "SELECT status, trigger, counts, declared_job FROM job_runs ORDER BY id")


@pytest.fixture
def processes() -> Iterator[list[Scheduler]]:
    started: list[Scheduler] = []
    yield started
    for scheduler in started:  # never leave one behind, whatever failed
        if scheduler.process.poll() is None:
            scheduler.process.kill()
            scheduler.process.wait()


def test_sigterm_during_a_long_sync_ends_the_page_exits_0_and_a_restart_completes_it(
    home: Path, big_csv: Path, processes: list[Scheduler]
) -> None:
    due_sync_job(home)
    first = Scheduler(home, big_csv)
    processes.append(first)
    first.wait_started()
    wait_for(lambda: contact_count(home) > 0, first)  # the sync is under way
    assert first.terminate() == 0

    (status, trigger, counts, declared), = job_runs(home)
    committed = contact_count(home)
    assert (status, trigger, declared) == ("stopped", "scheduler", "sync-now")
    assert 0 < committed < ROWS and committed % PAGE == 0  # whole pages only
    assert f'"created": {committed},' in counts  # the record matches the store
    assert first.logged("stop requested: the running job ends its current batch")

    # The interrupted run does not count as done: the next start runs it again, once.
    second = Scheduler(home, big_csv)
    processes.append(second)
    wait_for(lambda: len(job_runs(home)) == 2 and job_runs(home)[1][0] == "success", second)
    assert second.terminate() == 0
    assert contact_count(home) == ROWS
    last = job_runs(home)[1][2]
    assert f'"created": {ROWS - committed},' in last and f'"unchanged": {committed},' in last


def test_one_scheduler_per_database_and_a_killed_one_leaves_no_lock(
    home: Path, big_csv: Path, processes: list[Scheduler]
) -> None:
    due_sync_job(home)
    crashed = Scheduler(home, big_csv)
    processes.append(crashed)
    crashed.wait_started()
    wait_for(lambda: contact_count(home) > 0, crashed)
    crashed.process.kill()  # SIGKILL mid-sync: no clean-up at all
    crashed.process.wait()
    assert [r[0] for r in job_runs(home)] == ["running"]

    survivor = Scheduler(home, big_csv)  # the kernel dropped the lock with the process
    processes.append(survivor)
    survivor.wait_started()

    refused = run(home, "--log-text", "scheduler", env={"CLUBJAPON_CSV_PATH": str(big_csv)})
    assert refused.returncode == 1
    last_line = refused.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: another scheduler is already running on this database")
    assert f"pid {survivor.process.pid} on " in last_line
    # At once: it did not wait for the lock, which the survivor still holds, alive (a wait
    # would have outlasted run()'s timeout; no stopwatch: Python's start-up varies with load).
    assert survivor.process.poll() is None
    assert lock_is_held(home)

    wait_for(lambda: [r[0] for r in job_runs(home)] == ["abandoned", "success"], survivor)
    assert survivor.terminate() == 0
    assert contact_count(home) == ROWS


def test_jobs_lists_next_runs_and_run_runs_a_job_as_the_scheduler_would(home: Path) -> None:
    for path in (REPO / "jobs").glob("*.toml"):
        shutil.copy(path, home / "jobs")
    listed = run(home, "jobs")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert re.search(r"cron '30 2 \* \* \*' \(Europe/Paris\)\s+\d{4}-\d\d-\d\d 02:30 CES?T\s+never",
                     lines["nightly-crm-sync"])
    assert "(disabled)" in lines["send-edition-example"]
    assert "send_campaign" in lines["send-edition-example"]
    assert "not in this version" not in lines["send-edition-example"]

    done = run(home, "run", "nightly-crm-sync")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("nightly-crm-sync: success: source csv")
    (status, trigger, _counts, declared), = job_runs(home)
    assert (status, trigger, declared) == ("success", "run", "nightly-crm-sync")
    status = run(home, "status")
    assert re.search(r"nightly-crm-sync\s+run\s+\S+ \S+ [A-Z]+\s+success", status.stdout)
    listed = run(home, "jobs")
    assert re.search(r"nightly-crm-sync .* success \(run\)", listed.stdout)

    refused = run(home, "run", "send-edition-example")
    assert refused.returncode == 2 and "enabled = false; add --force" in refused.stderr
    unknown = run(home, "run", "no-such-job")
    assert unknown.returncode == 2 and "no job named 'no-such-job'" in unknown.stderr


def test_sigterm_during_run_ends_the_page_and_exits_130(home: Path, big_csv: Path) -> None:
    due_sync_job(home, "sync-by-hand")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBJAPON_")}
    env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(big_csv)})
    process = subprocess.Popen([sys.executable, "-m", "clubjapon_ops", "run", "sync-by-hand"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: (home / "var" / "clubjapon.sqlite3").exists()
                 and bool(query(home, "SELECT 1 FROM sqlite_master WHERE name = 'contacts'"))
                 and contact_count(home) > 0)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "sync-by-hand: stopped: sync stopped after page" in err
    (status, trigger, counts, _), = job_runs(home)
    assert (status, trigger) == ("stopped", "run")
    assert f'"created": {contact_count(home)},' in counts


@pytest.mark.parametrize("command", [["scheduler"], ["jobs"], ["run", "nightly-crm-sync"]])
def test_an_invalid_job_file_stops_every_command_at_start_naming_file_and_field(
    home: Path, command: list[str]
) -> None:
    shutil.copy(REPO / "jobs" / "nightly-crm-sync.toml", home / "jobs")
    (home / "jobs" / "broken.toml").write_text(
        'function = "crm_sync"\nenabled = true\n[trigger]\ncron = "30 25 * * *"\n')
    result = run(home, "--log-text", *command)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("configuration error: jobs/broken.toml: trigger.cron:")
    assert not (home / "var" / "clubjapon.sqlite3").exists()  # refused before any work


@pytest.mark.parametrize("command", [["scheduler"], ["jobs"], ["run"]])
def test_help_of_the_scheduling_commands_needs_no_config(home: Path, command: list[str]) -> None:
    (home / ".env").write_text("SMTP_PORT=not-a-port\n")
    (home / "jobs" / "broken.toml").write_text("not toml at all = = =\n")
    result = run(home, *command, "--help")
    assert result.returncode == 0
    assert "Usage: clubjapon-ops" in result.stdout and "Example" in result.stdout


@pytest.mark.postgres_only
def test_on_postgresql_a_second_scheduler_refuses_and_a_killed_one_frees_the_lock(
    home: Path, db_engine: str, processes: list[Scheduler]
) -> None:
    use_database(home, db_engine)  # every process started in home reads it from .env
    csv_path = home / "none.csv"
    first = Scheduler(home, csv_path)
    processes.append(first)
    first.wait_started()
    refused = run(home, "--log-text", "scheduler")
    assert refused.returncode == 1
    last_line = refused.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: another scheduler is already running on this database")
    assert f"pid {first.process.pid} on " in last_line and "advisory lock" in last_line
    first.process.kill()  # SIGKILL: the server ends the session, and the lock with it
    first.process.wait()
    second = Scheduler(home, csv_path)
    processes.append(second)
    second.wait_started()
    assert second.terminate() == 0

"""`clubjapon-ops bounces` against a hostile IMAP server (tests/fakes/hostile_imap.py): a
FETCH answered with a 300 MB literal, or never finished; memory stays bounded, the run ends
at its deadline or at SIGTERM, with one clear line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bounces.conftest import BOUNCES, MAIL_FROM, SECRET
from tests.fakes.hostile_imap import Hostility, hostile_imap

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]
# Runs the CLI as its only child and says how much memory that child took at its peak.
_PEAK = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
print(json.dumps({"code": done.returncode, "out": done.stdout, "err": done.stderr,
                  "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _env(home: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "BOUNCE_"))}
    env.update(CLUBJAPON_HOME=str(home), CLUBJAPON_SECRET=SECRET, CLUBJAPON_MAIL_FROM=MAIL_FROM,
               CLUBJAPON_BOUNCE_ADDRESS=BOUNCES, BOUNCE_IMAP_HOST="127.0.0.1",
               BOUNCE_IMAP_PORT=str(port), BOUNCE_IMAP_USERNAME="bounces",
               BOUNCE_IMAP_PASSWORD="hostile-password-1234", BOUNCE_IMAP_SECURITY="none",
               **extra)
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    return tmp_path


def test_a_literal_far_bigger_than_asked_is_never_buffered_whole(home: Path) -> None:
    # The review: 300-400 MB answered to a FETCH of 256 KiB took bounces to 3.4-4.4 GB.
    hostility = Hostility(literal_bytes=300 << 20)
    with hostile_imap(hostility) as port:
        probe = subprocess.run(
            [sys.executable, "-c", _PEAK, sys.executable, "-m", "clubjapon_ops", "bounces"],
            env=_env(home, port), capture_output=True, text=True, timeout=600, check=True)
    run = json.loads(probe.stdout)
    assert hostility.sent > 299 << 20  # the server did send it all
    assert run["code"] == 0, run["err"]
    assert run["peak_kib"] < 200 << 10, run["peak_kib"]  # far below the 300 MB literal
    assert "sent messages longer than the 256 KiB asked for" in run["err"]
    assert "127.0.0.1" in run["err"]
    # Read on its first 256 KiB: junk, put aside for a person, not read again.
    assert run["out"].startswith("read 1, ") and "unclassified 1 (moved to Review)" in run["out"]


@pytest.mark.parametrize("hostility", [Hostility(endless=True), Hostility(endless_login=True)],
                         ids=["fetch", "login"])
def test_an_answer_that_never_ends_stops_at_the_deadline(home: Path,
                                                         hostility: Hostility) -> None:
    with hostile_imap(hostility) as port:
        done = subprocess.run([sys.executable, "-m", "clubjapon_ops", "bounces"],
                              env=_env(home, port, BOUNCE_IMAP_DEADLINE="1"),
                              capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "BOUNCE_IMAP_DEADLINE=1 s" in last and "127.0.0.1" in last, last
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("hostility", [Hostility(endless=True), Hostility(endless_login=True)],
                         ids=["fetch", "login"])
def test_sigterm_stops_an_answer_that_never_ends(home: Path, hostility: Hostility) -> None:
    with hostile_imap(hostility) as port:
        proc = subprocess.Popen([sys.executable, "-m", "clubjapon_ops", "bounces"],
                                env=_env(home, port), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert hostility.fetching.wait(60), "the FETCH never came"
            proc.send_signal(signal.SIGTERM)
            # The deadline is 600 s: without the stop the run would outlast this wait.
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    assert "bounces: stopped: bounce mailbox stopped; run it again to finish" in err


@pytest.mark.parametrize("hostility", [Hostility(endless=True, padding=500_000),
                                       Hostility(endless_login=True, padding=500_000)],
                         ids=["fetch", "login"])
def test_a_flood_of_long_lines_stops_the_run_naming_the_server(home: Path,
                                                               hostility: Hostility) -> None:
    # Lines of 500 KB as fast as the server can write them: imaplib keeps every untagged
    # line until the command ends; past 16 MiB more than was asked, the run stops.
    with hostile_imap(hostility) as port:
        done = subprocess.run([sys.executable, "-m", "clubjapon_ops", "bounces"],
                              env=_env(home, port), capture_output=True, text=True,
                              timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "with more data than was asked for" in last and "127.0.0.1" in last, last


class _Wire:
    """What imaplib reads from: the bytes a server sent, as its read() and readline() see them."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, size: int) -> bytes:
        chunk = self.data[self.at:self.at + size]
        self.at += len(chunk)
        return chunk

    def readline(self) -> bytes:
        end = self.data.find(b"\n", self.at) + 1 or len(self.data)
        line = self.data[self.at:end]
        self.at = end
        return line


def test_the_guard_keeps_what_was_asked_and_drops_the_rest_of_a_literal() -> None:
    from clubjapon_ops.bounces.mailbox import MAX_FETCH, _Guard

    body = b"a" * MAX_FETCH + b"b" * 1000
    wire = _Wire(b"* 1 FETCH (BODY[]<0> {%d}\r\n" % len(body) + body + b")\r\n")
    guard = _Guard(wire)
    assert wire.readline() == b"* 1 FETCH (BODY[]<0> {%d}\r\n" % MAX_FETCH
    assert wire.read(MAX_FETCH) == b"a" * MAX_FETCH  # the 1,000 b's read and dropped
    assert wire.readline() == b")\r\n" and guard.oversized == 1


def test_the_guard_refuses_a_literal_too_big_to_name() -> None:
    from clubjapon_ops.bounces.mailbox import TooMuchData, _Guard

    wire = _Wire(b"* 1 FETCH (BODY[]<0> {" + b"9" * 5000 + b"}\r\n")
    _Guard(wire)
    with pytest.raises(TooMuchData):
        wire.readline()

"""What a failing email API leaves behind, and what a rerun makes of it: the CLI as a
subprocess, a real SQLite ledger, and the Brevo and SendGrid fakes on 127.0.0.1, which count
every message they take. Across the failing run and the rerun each reader gets the edition
exactly once (or, where the provider may have taken a batch without a key to resend it under,
at most once and the rows say 'unknown').

A definite refusal (400, 401, 403, 422, a 429 to the last attempt) took nothing: the rows
wait in 'retry' with no idempotency key and their cause recorded, and `send --now` sends them
at once; a refused credential does not use up an attempt. An answer that leaves it open (a
5xx, a timeout, a dropped connection) keeps Brevo's key, and the same run resends the batch
under it before it lapses.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.conftest import POSTAL_ADDRESS, SECRET, SLUG, home, write_contacts  # noqa: F401
from tests.fakes import brevo_email, sendgrid_email
from tests.fakes.server import FakeServer, serving

pytestmark = pytest.mark.e2e
READERS = 46  # the club's demo audience: three requests, one per language


@pytest.fixture(params=["brevo", "sendgrid"])
def provider(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, FakeServer]]:
    api: Any = (brevo_email.FakeBrevoEmail() if request.param == "brevo"
                else sendgrid_email.FakeSendGridEmail())
    with serving(api) as server:
        yield request.param, api, server


def env_for(home: Path, name: str, url: str, **extra: str) -> dict[str, str]:  # noqa: F811
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_"))}
    key = brevo_email.API_KEY if name == "brevo" else sendgrid_email.API_KEY
    env.update({
        "CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(home / "contacts.csv"),
        "CLUBJAPON_TRANSPORT": name, f"{name.upper()}_API_KEY": key,
        f"{name.upper()}_BASE_URL": url, "CLUBJAPON_SECRET": SECRET,
        "CLUBJAPON_POSTAL_ADDRESS": POSTAL_ADDRESS, "CLUBJAPON_SEND_RETRY_WAIT": "0",
        "CLUBJAPON_HTTP_ATTEMPTS": "2", "CLUBJAPON_HTTP_TIMEOUT": "1.5",
        "CLUBJAPON_TIMEZONE": "Europe/Paris",
    })
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def rows(home: Path) -> dict[str, tuple[str, str | None, str | None, int]]:  # noqa: F811
    """email -> (state, last cause, batch key, attempts)."""
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        return {e: (s, c, k, a) for e, s, c, k, a in db.execute(
            "SELECT email, state, last_cause, batch_key, attempts FROM deliveries "
            "WHERE edition = ?", (SLUG,))}


def audience(home: Path) -> list[str]:  # noqa: F811
    emails = [f"member{i}@example.com" for i in range(READERS)]
    write_contacts(home / "contacts.csv", emails)
    return emails


def refuse(status: int) -> Callable[[Any], None]:
    # Every request of the run is refused: three languages; a refused credential stops the
    # run at its first request.
    return lambda api: api.refuse(status, times=1 if status == 403 else 3)


def rate_limited(api: Any) -> None:
    api.rate_limit(times=6, retry_after=0)  # two attempts for each of the three requests


REFUSALS = {
    "400": refuse(400), "403": refuse(403), "422": refuse(422), "429": rate_limited,
}


@pytest.mark.parametrize("cause", list(REFUSALS))
def test_a_refusal_leaves_the_rows_to_retry_with_their_cause_and_send_now_sends_each_once(
    home: Path, provider: tuple[str, Any, FakeServer], cause: str,  # noqa: F811
) -> None:
    name, api, server = provider
    emails = audience(home)
    env = env_for(home, name, server.url)
    assert cli(env, "sync").returncode == 0
    REFUSALS[cause](api)
    first = cli(env, "send", SLUG, "--yes")
    out = first.stdout + first.stderr
    assert first.returncode == 3, out
    after = rows(home)
    # Nothing was taken: every row waits for a retry, without a key, the answer recorded.
    assert api.received() == {}
    assert {(s, c, k) for s, c, k, _ in after.values()} == {("retry", cause, None)}, after
    assert "unknown" not in {s for s, _, _, _ in after.values()}
    assert "nothing from it was saved" not in out
    assert f"{READERS} message(s) wait for a retry until " in first.stdout, out
    assert (" CET" in first.stdout) or (" CEST" in first.stdout), first.stdout
    status = cli(env, "status", SLUG)
    assert f"{READERS} retry, last cause: {cause}" in status.stdout, status.stdout
    # A plain rerun leaves them to their time; --now sends them at once, each once.
    again = cli(env, "send", SLUG, "--yes")
    assert "sent 0," in again.stdout and api.received() == {}, again.stdout + again.stderr
    now = cli(env, "send", SLUG, "--yes", "--now")
    assert now.returncode == 0, now.stdout + now.stderr
    assert f"sent {READERS}, failed 0, retry 0, unknown 0" in now.stdout
    assert api.received() == dict.fromkeys(emails, 1)
    assert {s for s, _, _, _ in rows(home).values()} == {"sent"}


def test_a_wrong_api_key_is_not_overwritten_uses_no_attempt_and_send_now_sends_each_once(
    home: Path, provider: tuple[str, Any, FakeServer],  # noqa: F811
) -> None:
    name, api, server = provider
    emails = audience(home)
    env = env_for(home, name, server.url)
    assert cli(env, "sync").returncode == 0
    wrong = dict(env, **{f"{name.upper()}_API_KEY": "a-wrong-key-for-the-test"})
    first = cli(wrong, "send", SLUG, "--yes")
    out = first.stdout + first.stderr
    assert first.returncode == 3, out
    assert f"{name.upper()}_API_KEY" in first.stdout and "--now" in first.stdout, out
    assert "a-wrong-key-for-the-test" not in out
    assert api.received() == {}
    after = rows(home)
    # The refused credential said nothing about the messages: no attempt used, no key kept.
    assert set(after.values()) == {("retry", "401", None, 0)}, after
    # A later run that finds nothing due does not hide the 401 ("key lapsed", "unknown").
    assert cli(wrong, "send", SLUG, "--yes").returncode == 3
    status = cli(env, "status", SLUG)
    assert f"{READERS} retry, last cause: 401" in status.stdout, status.stdout
    fixed = cli(env, "send", SLUG, "--yes", "--now")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert api.received() == dict.fromkeys(emails, 1)
    assert {(s, a) for s, _, _, a in rows(home).values()} == {("sent", 1)}


def test_a_brevo_5xx_to_the_end_is_resent_by_the_same_run_under_its_key_each_once(
    home: Path,  # noqa: F811
) -> None:
    api = brevo_email.FakeBrevoEmail()
    with serving(api) as server:
        emails = audience(home)
        env = env_for(home, "brevo", server.url, CLUBJAPON_SEND_RETRY_DELAY="0")
        assert cli(env, "sync").returncode == 0
        api.fail_after_taking(times=1)  # the first request is taken, then answered 500,
        api.server_error(times=1)  # and its retry under the same key answered 500 too
        result = cli(env, "send", SLUG, "--yes")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    # One line per failed attempt with the next try's time, and the progress line's words.
    assert "waiting for Brevo (500) — next try in " in result.stderr, out
    assert '"next_try_at"' in result.stderr, out
    assert api.duplicates, "the resend went under the batch's key"
    assert api.received() == dict.fromkeys(emails, 1)
    assert {s for s, _, _, _ in rows(home).values()} == {"sent"}
    assert "send progress" not in result.stderr  # no 'done=46 total=46' line


UNCERTAIN = {
    # The request is taken and its answer lost, to the last attempt.
    "timeout": lambda api: api.slow(delay=3, times=2),
    "connection lost": lambda api: api.fail_after_taking(times=2, status=0),
    # Nothing is taken, but the client cannot know that.
    "dropped before taking": lambda api: api.drop(times=2),
}


@pytest.mark.parametrize("fault", list(UNCERTAIN))
def test_brevo_resends_a_batch_whose_answer_was_lost_under_its_key_each_once(
    home: Path, fault: str,  # noqa: F811
) -> None:
    api = brevo_email.FakeBrevoEmail()
    with serving(api) as server:
        emails = audience(home)
        env = env_for(home, "brevo", server.url, CLUBJAPON_SEND_RETRY_DELAY="0")
        assert cli(env, "sync").returncode == 0
        UNCERTAIN[fault](api)
        result = cli(env, "send", SLUG, "--yes")
        rerun = cli(env, "send", SLUG, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert rerun.returncode == 0 and "sent 0," in rerun.stdout
    assert api.received() == dict.fromkeys(emails, 1)
    assert {s for s, _, _, _ in rows(home).values()} == {"sent"}


def test_a_sendgrid_5xx_to_the_end_waits_for_a_retry_and_send_now_sends_each_once(
    home: Path,  # noqa: F811
) -> None:
    api = sendgrid_email.FakeSendGridEmail()
    with serving(api) as server:
        emails = audience(home)
        env = env_for(home, "sendgrid", server.url)
        assert cli(env, "sync").returncode == 0
        api.server_error(times=2)  # the first request, to its last attempt
        first = cli(env, "send", SLUG, "--yes")
        status = cli(env, "status", SLUG)
        now = cli(env, "send", SLUG, "--yes", "--now")
    assert first.returncode == 3, first.stdout + first.stderr
    assert "waiting for SendGrid (500) — next try in " in first.stderr
    assert "retry, last cause: 500" in status.stdout, status.stdout
    assert now.returncode == 0, now.stdout + now.stderr
    assert api.received() == dict.fromkeys(emails, 1)


@pytest.mark.parametrize("fault", ["timeout", "connection lost"])
def test_sendgrid_without_a_key_leaves_a_batch_that_may_have_been_taken_unknown(
    home: Path, fault: str,  # noqa: F811
) -> None:
    api = sendgrid_email.FakeSendGridEmail()
    with serving(api) as server:
        emails = audience(home)
        env = env_for(home, "sendgrid", server.url)
        assert cli(env, "sync").returncode == 0
        UNCERTAIN[fault](api)
        first = cli(env, "send", SLUG, "--yes")
        rerun = cli(env, "send", SLUG, "--yes", "--now")
        status = cli(env, "status", SLUG)
    assert first.returncode == 3 and rerun.returncode == 3
    after = rows(home)
    unknown = {e for e, (s, _, _, _) in after.items() if s == "unknown"}
    # SendGrid took that request: never sent again without the operator (no duplicate).
    assert 0 < len(unknown) < READERS
    assert api.received() == dict.fromkeys(emails, 1)
    cause = fault
    assert {after[e][1] for e in unknown} == {cause}
    assert f"unknown, last cause: {cause}" in status.stdout, status.stdout


def test_times_shown_to_people_are_in_the_club_s_zone_with_the_zone_written(
    home: Path,  # noqa: F811
) -> None:
    audience(home)
    (home / "jobs").mkdir()
    (home / "jobs" / "sync.toml").write_text(
        'name = "sync"\nfunction = "crm_sync"\nenabled = true\n\n[trigger]\ncron = "30 2 * * *"\n',
        encoding="utf-8")
    env = env_for(home, "brevo", "http://127.0.0.1:9", CLUBJAPON_TIMEZONE="Asia/Tokyo")
    ran = cli(env, "--log-text", "run", "sync")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # The scheduler's (and run's) lines on a terminal: Tokyo time, zone written.
    assert re.search(r"^\d\d:\d\d:\d\d JST INFO +job started", ran.stderr, re.M), ran.stderr
    status = cli(env, "status")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d JST +success", status.stdout), \
        status.stdout
    assert "(UTC)" not in status.stdout
    # JSON logs keep UTC.
    logged = cli(env, "--log-json", "run", "sync")
    assert re.search(r'"ts": "[^"]+\+00:00"', logged.stderr), logged.stderr

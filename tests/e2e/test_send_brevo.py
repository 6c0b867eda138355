"""Sending through Brevo for real: the CLI as a subprocess, a real SQLite ledger, and the fake
Brevo email API on 127.0.0.1. Every check is made recipient by recipient against what the
fake took."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clubjapon_ops.delivery.tokens import TokenSigner
from tests.delivery.conftest import POSTAL_ADDRESS, SECRET, SLUG, home, write_contacts  # noqa: F401
from tests.fakes.brevo_email import API_KEY, FakeBrevoEmail
from tests.fakes.server import FakeServer, serving

pytestmark = pytest.mark.e2e
SUBJECT_WORD = {"fr": "Club Japon", "en": "Club Japon", "ja": "クラブ・ジャポン"}


@pytest.fixture
def fake() -> Iterator[tuple[FakeBrevoEmail, FakeServer]]:
    api = FakeBrevoEmail()
    with serving(api) as server:
        yield api, server
        api.release()  # a request still held would keep its thread waiting


def env_for(home: Path, url: str, **extra: str) -> dict[str, str]:  # noqa: F811
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_"))}
    env.update({
        "CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(home / "contacts.csv"),
        "CLUBJAPON_TRANSPORT": "brevo", "BREVO_API_KEY": API_KEY, "BREVO_BASE_URL": url,
        "CLUBJAPON_SECRET": SECRET, "CLUBJAPON_POSTAL_ADDRESS": POSTAL_ADDRESS,
        "CLUBJAPON_SEND_RETRY_WAIT": "0",
        "CLUBJAPON_HTTP_TIMEOUT": "10", "CLUBJAPON_ERROR_BUDGET": "5000",
    })
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def ledger(home: Path) -> dict[str, tuple[str, str | None, str | None]]:  # noqa: F811
    """email -> (state, provider message id, batch key)."""
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        return {e: (s, m, k) for e, s, m, k in db.execute(
            "SELECT email, state, provider_message_id, batch_key FROM deliveries "
            "WHERE edition = ?", (SLUG,))}


def audience(home: Path, n: int) -> dict[str, str]:  # noqa: F811
    """n contacts in fr, en, ja in turn; email -> language."""
    emails = [f"member{i}@example.com" for i in range(n)]
    write_contacts(home / "contacts.csv", emails)
    return {e: ("fr", "en", "ja")[i % 3] for i, e in enumerate(emails)}


def check_each_recipient(api: FakeBrevoEmail, langs: dict[str, str], home: Path) -> None:  # noqa: F811
    """Everyone got exactly one message, in their language, with their own unsubscribe link
    (its token names the reader's own ledger row, never the address)."""
    assert api.received() == dict.fromkeys(langs, 1)
    assert api.invalid == [] and api.unfilled == []
    signer = TokenSigner(SECRET)
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        row_of = dict(db.execute("SELECT id, email FROM deliveries WHERE edition = ?",
                                 (SLUG,)).fetchall())
    for message in api.delivered:
        lang = langs[message.recipient]
        assert SUBJECT_WORD[lang] in message.subject, message.recipient
        url = message.headers["List-Unsubscribe"].split(">")[0].lstrip("<")
        token = signer.read(url.rsplit("/", 1)[1])
        assert token is not None and token.row is not None and token.lang == lang
        assert row_of[token.row] == message.recipient and message.recipient not in url
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.recipient in message.text and url in message.text


def test_2500_readers_in_three_languages_each_get_the_edition_once(
    home: Path, fake: tuple[FakeBrevoEmail, FakeServer],  # noqa: F811
) -> None:
    api, server = fake
    langs = audience(home, 2500)
    env = env_for(home, server.url)
    assert cli(env, "sync").returncode == 0
    result = cli(env, "send", SLUG, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{SLUG}: sent 2500, failed 0, retry 0, unknown 0" in result.stdout
    # 1,000 rows per batch, one request per language in each: 3 batches x 3 languages.
    assert api.accepted == 9 and api.duplicates == []
    check_each_recipient(api, langs, home)
    rows = ledger(home)
    assert set(rows) == set(langs)
    for email, (state, message_id, _key) in rows.items():
        assert state == "sent", email
        assert message_id == api.message_for(email).message_id, email


def test_a_201_with_one_message_id_for_many_versions_leaves_no_row_unknown(
    home: Path, fake: tuple[FakeBrevoEmail, FakeServer],  # noqa: F811
) -> None:
    api, server = fake
    api.single_id_answers = True  # the 201 example of Brevo's reference
    langs = audience(home, 46)
    env = env_for(home, server.url)
    assert cli(env, "sync").returncode == 0
    result = cli(env, "send", SLUG, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{SLUG}: sent 46, failed 0, retry 0, unknown 0" in result.stdout
    assert api.accepted == 3
    check_each_recipient(api, langs, home)
    assert {state for state, _, _ in ledger(home).values()} == {"sent"}


def test_an_answer_lost_to_a_timeout_is_resent_under_its_key_and_delivered_once(
    home: Path, fake: tuple[FakeBrevoEmail, FakeServer],  # noqa: F811
) -> None:
    api, server = fake
    langs = audience(home, 300)
    env = env_for(home, server.url, CLUBJAPON_HTTP_TIMEOUT="1.5")
    assert cli(env, "sync").returncode == 0
    api.slow(delay=3)  # the first request is taken, its answer comes after the timeout
    result = cli(env, "send", SLUG, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{SLUG}: sent 300, failed 0, retry 0, unknown 0" in result.stdout
    first_key = api.delivered[0].idempotency_key
    assert first_key is not None and first_key in api.duplicates
    check_each_recipient(api, langs, home)
    rows = ledger(home)
    assert {state for state, _, _ in rows.values()} == {"sent"}
    # The resent request was answered "already taken": no id for its versions, ids for the rest.
    for email, (_state, message_id, _key) in rows.items():
        got = api.message_for(email)
        lost = got.idempotency_key in api.duplicates
        assert message_id == (None if lost else got.message_id), email


def test_sigkill_while_brevo_holds_a_request_then_rerun_delivers_each_once(
    home: Path, fake: tuple[FakeBrevoEmail, FakeServer],  # noqa: F811
) -> None:
    api, server = fake
    langs = audience(home, 1500)
    env = env_for(home, server.url)
    assert cli(env, "sync").returncode == 0
    # Batch 1 (1,000 rows) goes in requests 1-3; batch 2 (500) in 4-6. Request 5 is taken
    # and held open: request 4 was answered, request 6 never leaves.
    api.hold(at=5)
    proc = subprocess.Popen([sys.executable, "-m", "clubjapon_ops", "send", SLUG, "--yes"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert api.holding.wait(timeout=60), "the send never reached the held request"
        before = ledger(home)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        api.release()
    states = [s for s, _, _ in before.values()]
    assert states.count("sent") == 1000 and states.count("sending") == 500
    batch_keys = {k for s, _, k in before.values() if s == "sending"}
    assert len(batch_keys) == 1 and None not in batch_keys
    killed_keys = list(dict.fromkeys(m.idempotency_key for m in api.delivered))
    assert len(killed_keys) == 5  # request keys in order: five requests were taken
    in_flight = {e for e, (s, _, _) in before.items() if s == "sending"}
    taken_in_flight = {m.recipient for m in api.delivered if m.recipient in in_flight}
    assert len(api.delivered) == 1000 + len(taken_in_flight)
    # Two whole languages of batch 2 were taken, the third not at all.
    assert len({langs[e] for e in taken_in_flight}) == 2
    assert taken_in_flight == {e for e in in_flight if langs[e] in {langs[t] for t in
                                                                     taken_in_flight}}

    rerun = cli(env, "send", SLUG, "--yes")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "settled from an interrupted run: {'retry': 500}" in rerun.stdout
    # The keyed batch went again as it was, under its keys: two answered duplicate_parameter
    # (taken before the kill), the third delivered now.
    assert api.duplicates == killed_keys[3:5]
    assert api.accepted == 6
    check_each_recipient(api, langs, home)
    after = ledger(home)
    assert {s for s, _, _ in after.values()} == {"sent"}
    for email in langs:
        assert (after[email][2] in batch_keys) == (before[email][0] == "sending"), email

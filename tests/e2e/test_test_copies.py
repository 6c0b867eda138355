"""Test copies (`send --test-to`): the CLI as a subprocess, then their links against the web app."""

from __future__ import annotations

import email
import os
import sqlite3
import subprocess
import sys
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import pytest

from clubjapon_ops.settings import load_settings
from clubjapon_ops.store import open_store
from clubjapon_ops.web import create_app
from tests.delivery.conftest import POSTAL_ADDRESS, SECRET, SLUG, home, write_contacts  # noqa: F401

pytestmark = pytest.mark.e2e
READER = "yui@example.com"


def env_for(home: Path) -> dict[str, str]:  # noqa: F811
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_"))}
    env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(home / "contacts.csv"),
                "CLUBJAPON_TRANSPORT": "outbox", "CLUBJAPON_SECRET": SECRET})
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def suppressions(home: Path) -> list[tuple[str, ...]]:  # noqa: F811
    with sqlite3.connect(home / "var" / "clubjapon.sqlite3") as db:
        return [tuple(r) for r in db.execute("SELECT email, source FROM suppressions")]


@pytest.fixture
def synced(home: Path) -> dict[str, str]:  # noqa: F811
    write_contacts(home / "contacts.csv", [READER, "jean@example.com"])
    env = env_for(home)
    result = cli(env, "sync")
    assert result.returncode == 0, result.stderr
    return env


def send_test_copy(home: Path, env: dict[str, str],  # noqa: F811
                   *to: str) -> tuple[str, list[Path]]:
    result = cli(env, "send", SLUG, "--test-to", ",".join(to), "--contact", READER)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, sorted((home / "var" / "outbox").rglob("*.eml"))


def links(message: EmailMessage) -> set[str]:
    """The unsubscribe link of the List-Unsubscribe header and of the text part."""
    header = str(message["List-Unsubscribe"]).split(">")[0].lstrip("<")
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    shown = {w for w in text.split() if "/unsubscribe/" in w}
    return {header, *shown}


def test_a_test_copy_rendered_as_a_reader_cannot_unsubscribe_them(
    home: Path, synced: dict[str, str]  # noqa: F811
) -> None:
    _, files = send_test_copy(home, synced, "me@example.org")
    assert len(files) == 1
    message = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    found = links(message)
    assert len(found) == 1  # the header and the visible link are one and the same
    settings = load_settings(home, environ={"CLUBJAPON_SECRET": SECRET})
    path = found.pop().removeprefix(settings.public_url)
    store = open_store(settings.database_url)
    try:
        client = create_app(settings, lambda: store).test_client()
        answers = [
            client.post(path, data="List-Unsubscribe=One-Click",
                        content_type="application/x-www-form-urlencoded"),
            client.post(path, data={"List-Unsubscribe": "One-Click", "page": "1"}),
            client.get(path),
        ]
    finally:
        store.close()
    assert suppressions(home) == []
    for answer in answers:
        assert answer.status_code == 200
        assert answer.get_data(as_text=True) == "test copy: nothing was changed\n"
    # The reader's real link still works: only the test copy's is harmless.
    send = cli(synced, "send", SLUG, "--yes")
    assert send.returncode == 0, send.stdout + send.stderr
    real = next((home / "var" / "outbox" / SLUG).glob(f"*-{READER}.eml"))
    real_message = email.message_from_bytes(real.read_bytes(), policy=policy.default)
    assert isinstance(real_message, EmailMessage)
    assert links(real_message) != links(message)
    # Nor does it pass for the reader's message: a Message-ID of its own.
    assert real_message["Message-ID"] != message["Message-ID"]


def test_test_copies_have_a_folder_of_their_own_and_the_command_says_where(
    home: Path, synced: dict[str, str]  # noqa: F811
) -> None:
    stdout, files = send_test_copy(home, synced, "me@example.org", "you@example.org")
    assert not (home / "var" / "outbox" / SLUG).exists()
    assert [f.parent for f in files] == [home / "var" / "outbox" / "test-copies" / SLUG] * 2
    for address in ("me@example.org", "you@example.org"):
        path = next(f for f in files if f.name == f"fr-{address}-1.eml")  # as the contact reads
        assert f"[fr] {address}: sent to {path}, rendered as the contact {READER}" in stdout
        # The tester's address alone: no reader's name.
        assert parseaddr(email.message_from_bytes(path.read_bytes())["To"]) == ("", address)
    # Each copy has an ID of its own: a mail service drops a message whose ID it has seen,
    # and marketing sends a second copy after each correction.
    ids = {email.message_from_bytes(f.read_bytes())["Message-ID"] for f in files}
    _, again = send_test_copy(home, synced, "me@example.org")
    assert len(ids | {email.message_from_bytes(f.read_bytes())["Message-ID"] for f in again}) == 3
    assert cli(synced, "send", SLUG, "--yes").returncode == 0
    assert sorted(p.name.split("-", 1)[1] for p in (home / "var" / "outbox" / SLUG).iterdir()) \
        == ["jean@example.com.eml", f"{READER}.eml"]


def test_test_copies_with_nothing_listening_on_smtp_stop_at_once_naming_the_settings(
    home: Path, synced: dict[str, str], closed_port: int  # noqa: F811
) -> None:
    port = closed_port  # nobody listens there
    # Not a retried connection per copy: a retry would wait at least a minute here, past the
    # command's timeout (no stopwatch: Python's start-up alone varies with the load).
    env = {**synced, "CLUBJAPON_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1",
           "SMTP_PORT": str(port), "CLUBJAPON_SEND_RETRY_WAIT": "600",
           "CLUBJAPON_POSTAL_ADDRESS": POSTAL_ADDRESS}
    result = cli(env, "send", SLUG, "--test-to", "a@example.org,b@example.org,c@example.org",
                 "--contact", READER)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "SMTP_PORT" in result.stderr


def copies_in(home: Path) -> dict[str, EmailMessage]:  # noqa: F811
    folder = home / "var" / "outbox" / "test-copies" / SLUG
    found = {}
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found[path.name] = message
    return found


def test_test_copies_in_several_languages_each_kept_and_said(
    home: Path, synced: dict[str, str]  # noqa: F811
) -> None:
    first = cli(synced, "send", SLUG, "--test-to", "me@example.org,you@example.org",
                "--lang", "fr", "--lang", "ja")
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(copies_in(home)) == ["fr-me@example.org-1.eml", "fr-you@example.org-1.eml",
                                       "ja-me@example.org-1.eml", "ja-you@example.org-1.eml"]
    folder = home / "var" / "outbox" / "test-copies" / SLUG
    assert (f"  [fr] me@example.org: sent to {folder / 'fr-me@example.org-1.eml'}, rendered as "
            "the sample reader Camille Martin") in first.stdout.splitlines()
    assert (f"  [ja] you@example.org: sent to {folder / 'ja-you@example.org-1.eml'}, rendered "
            "as the sample reader 佐藤 陽翔") in first.stdout.splitlines()
    # Again, in every language: nothing is overwritten, each copy has a number of its own.
    again = cli(synced, "send", SLUG, "--test-to", "me@example.org", "--lang", "all")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "[en] me@example.org: sent" in again.stdout and "Emily Clarke" in again.stdout
    copies = copies_in(home)
    assert sorted(copies) == [
        "en-me@example.org-1.eml", "fr-me@example.org-1.eml", "fr-me@example.org-2.eml",
        "fr-you@example.org-1.eml", "ja-me@example.org-1.eml", "ja-me@example.org-2.eml",
        "ja-you@example.org-1.eml"]
    for name, message in copies.items():
        lang, address = name.split("-", 1)[0], name.split("-", 1)[1].rsplit("-", 1)[0]
        assert message["Content-Language"] == lang
        assert parseaddr(str(message["To"])) == ("", address)  # the tester alone: no name
        assert str(message["Subject"]).startswith("[TEST] ")
    assert len({m["Message-ID"] for m in copies.values()}) == len(copies)
    # A comma-separated list works as well; a language the edition is not written in does not.
    both = cli(synced, "send", SLUG, "--test-to", "me@example.org", "--lang", "en,fr")
    assert both.returncode == 0 and both.stdout.count(" sent to ") == 2, both.stdout
    wrong = cli(synced, "send", SLUG, "--test-to", "me@example.org", "--lang", "de")
    assert wrong.returncode == 2
    assert f"{SLUG} is not written in de: choose among fr, en, ja, or all" in wrong.stderr

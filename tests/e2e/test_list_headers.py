"""Every newsletter says it is list mail (issue 23): List-Id (RFC 2919), under the DKIM
signature, and the headers that stop out-of-office replies, through the real CLI over SMTP
(aiosmtpd), into the outbox (test copies too) and to the Brevo and SendGrid fakes (whose
requests the vendored specs check). A List-Id setting that is no list id stops the CLI at
start with one sentence naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import dkim
import pytest

from tests.delivery.conftest import POSTAL_ADDRESS, SECRET, SLUG, home, write_contacts  # noqa: F401
from tests.delivery.test_dkim import dkim_env, dns_for, key_file, key_pem  # noqa: F401
from tests.fakes import brevo_email, sendgrid_email
from tests.fakes.server import serving
from tests.fakes.smtp_server import smtp_server

pytestmark = pytest.mark.e2e
READERS = ["aiko@example.com", "jean@example.com", "emma@example.com"]
LIST_ID = "Club Japon des Hauts-de-France <newsletter.example.org>"
BULK = {"X-Auto-Response-Suppress": "OOF, AutoReply", "Precedence": "bulk"}


def env_for(home: Path, transport: str, **extra: str) -> dict[str, str]:  # noqa: F811
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_"))}
    env.update({
        "CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(home / "contacts.csv"),
        "CLUBJAPON_TRANSPORT": transport, "CLUBJAPON_SECRET": SECRET,
        "CLUBJAPON_POSTAL_ADDRESS": POSTAL_ADDRESS, "CLUBJAPON_SEND_RETRY_WAIT": "0",
    })
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def send(home: Path, env: dict[str, str], *args: str) -> None:  # noqa: F811
    write_contacts(home / "contacts.csv", READERS)
    assert cli(env, "sync").returncode == 0
    result = cli(env, "send", SLUG, "--yes", *args)
    assert result.returncode == 0, result.stdout + result.stderr


def check_mime(raw: bytes, list_id: str = LIST_ID) -> None:
    message = message_from_bytes(raw, policy=policy.strict)
    assert str(message["List-Id"]) == list_id
    for name, value in BULK.items():
        assert message.get_all(name) == [value], name


def test_smtp_messages_carry_list_id_signed_and_the_bulk_headers(
        home: Path, key_file: Path, key_pem: bytes) -> None:  # noqa: F811
    with smtp_server() as (port, server):
        send(home, env_for(home, "smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port),
                           **dkim_env(key_file)))
        raws = [content for _, content in server.received]
    assert len(raws) == len(READERS)
    for raw in raws:
        check_mime(raw)
        assert dkim.verify(raw, dnsfunc=dns_for(key_pem))
        signature = message_from_bytes(raw, policy=policy.default)["DKIM-Signature"]
        signed = "".join(str(signature).split()).split("h=")[1].split(";")[0].lower()
        assert "list-id" in signed.split(":")
        # A List-Id added or changed on the way breaks the signature.
        forged = raw.replace(b"<newsletter.example.org>", b"<other.example.net>")
        assert not dkim.verify(forged, dnsfunc=dns_for(key_pem))


def test_outbox_messages_and_test_copies_carry_them_with_the_list_id_set(
        home: Path) -> None:  # noqa: F811
    env = env_for(home, "outbox", CLUBJAPON_LIST_ID="lettre.club-japon.example")
    send(home, env)
    result = cli(env, "send", SLUG, "--test-to", "me@example.net", "--contact", READERS[0])
    assert result.returncode == 0, result.stdout + result.stderr
    files = sorted((home / "var" / "outbox").rglob("*.eml"))
    assert len(files) == len(READERS) + 1  # the readers' and one test copy
    assert any("test" in str(f.relative_to(home / "var" / "outbox")) for f in files)
    for file in files:
        check_mime(file.read_bytes(),
                   "Club Japon des Hauts-de-France <lettre.club-japon.example>")


@pytest.mark.parametrize("name", ["brevo", "sendgrid"])
def test_the_api_payloads_carry_them(home: Path, name: str) -> None:  # noqa: F811
    api: Any = (brevo_email.FakeBrevoEmail() if name == "brevo"
                else sendgrid_email.FakeSendGridEmail())
    key = brevo_email.API_KEY if name == "brevo" else sendgrid_email.API_KEY
    with serving(api) as server:
        send(home, env_for(home, name, **{f"{name.upper()}_API_KEY": key,
                                          f"{name.upper()}_BASE_URL": server.url}))
    expected = {"List-Id": LIST_ID, **BULK}
    if name == "brevo":
        for reader in READERS:
            headers = api.message_for(reader).headers
            assert {k: headers.get(k) for k in expected} == expected
    else:
        assert len(api.bodies) == 3  # one request per language
        for body in api.bodies:
            assert {k: body["headers"].get(k) for k in expected} == expected


@pytest.mark.parametrize("bad", ["<newsletter.example.org>", "news letter.example.org",
                                 "lettre.clubjaponé.fr", "newsletter"])
def test_a_list_id_that_is_no_list_id_stops_the_cli_with_one_sentence(
        home: Path, bad: str) -> None:  # noqa: F811
    result = cli(env_for(home, "outbox", CLUBJAPON_LIST_ID=bad), "send", SLUG, "--yes")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CLUBJAPON_LIST_ID" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (home / "var" / "outbox").exists()

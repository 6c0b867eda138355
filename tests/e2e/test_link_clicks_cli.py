"""Issue 25 through the real CLI: every transport sends the click redirects, test copies the
links themselves, and SendGrid is asked not to track anyone (its vendored spec checks the field).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.clicks_helpers import CLICK, PHOTOS_URL, SLUG, add_links, click_links, parts
from tests.delivery.clicks_helpers import read_eml as read_file
from tests.delivery.conftest import POSTAL_ADDRESS, SECRET, home, write_contacts  # noqa: F401
from tests.fakes import brevo_email, sendgrid_email
from tests.fakes.server import serving
from tests.fakes.smtp_server import smtp_server

pytestmark = pytest.mark.e2e
READERS = ["ami@example.com", "ben@example.com", "chie@example.com", "dan@example.com"]


def env_for(home: Path, transport: str, **extra: str) -> dict[str, str]:  # noqa: F811
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_"))}
    env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_CSV_PATH": str(home / "contacts.csv"),
                "CLUBJAPON_TRANSPORT": transport, "CLUBJAPON_SECRET": SECRET,
                "CLUBJAPON_POSTAL_ADDRESS": POSTAL_ADDRESS, "CLUBJAPON_SEND_RETRY_WAIT": "0"})
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def send(home: Path, env: dict[str, str], *extra: str) -> None:  # noqa: F811
    add_links(home)
    write_contacts(home / "contacts.csv", READERS)
    assert cli(env, "sync").returncode == 0
    result = cli(env, "send", SLUG, "--yes", *extra)
    assert result.returncode == 0, result.stdout + result.stderr


def assert_redirected(text: str, html: str, unsubscribe: str = "/unsubscribe/") -> None:
    """Both parts carry the image link and the button as redirects, and not their targets."""
    # The HTML says the button's link twice: Outlook's VML button and everyone else's.
    links = CLICK.findall(text)
    assert len(links) == 2 and links == list(dict.fromkeys(CLICK.findall(html)))
    for part in (text, html):
        assert "photos.example.org/2025/lille\"" not in part and "inscription." not in part
        assert unsubscribe in part  # the unsubscribe link is not rewritten


def test_outbox_sends_redirects_and_a_test_copy_the_links_themselves(
    home: Path  # noqa: F811
) -> None:
    env = env_for(home, "outbox")
    send(home, env)
    sent = sorted((home / "var" / "outbox" / SLUG).glob("*.eml"))
    assert len(sent) == len(READERS)
    for path in sent:
        assert_redirected(*parts(read_file(path)))
    result = cli(env, "send", SLUG, "--test-to", "me@example.org", "--contact", READERS[0])
    assert result.returncode == 0, result.stdout + result.stderr
    copies = [p for p in (home / "var" / "outbox").rglob("*.eml") if p not in sent]
    assert len(copies) == 1
    text, html = parts(read_file(copies[0]))
    assert "/r/" not in text and "/r/" not in html
    assert PHOTOS_URL in text and PHOTOS_URL in html


def test_smtp_sends_redirects(home: Path) -> None:  # noqa: F811
    with smtp_server() as (port, server):
        send(home, env_for(home, "smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port)))
        for address in READERS:
            message = server.message_for(address)
            assert_redirected(*parts(message))
            assert "/r/" not in str(message["List-Unsubscribe"])


def test_brevo_sends_redirects(home: Path) -> None:  # noqa: F811
    api = brevo_email.FakeBrevoEmail()
    with serving(api) as server:
        send(home, env_for(home, "brevo", BREVO_API_KEY=brevo_email.API_KEY,
                           BREVO_BASE_URL=server.url))
    assert len(api.delivered) == len(READERS)
    for message in api.delivered:
        assert_redirected(message.text, message.html)
        assert "/r/" not in message.headers["List-Unsubscribe"]


def test_sendgrid_sends_redirects_and_asks_for_no_tracking(home: Path) -> None:  # noqa: F811
    api = sendgrid_email.FakeSendGridEmail()
    with serving(api) as server:
        send(home, env_for(home, "sendgrid", SENDGRID_API_KEY=sendgrid_email.API_KEY,
                           SENDGRID_BASE_URL=server.url))
    assert api.bodies
    for body in api.bodies:
        assert body["tracking_settings"] == {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False}}
        content: dict[str, Any] = {c["type"]: c["value"] for c in body["content"]}
        # The request is a template: each reader's link is a substitution tag.
        assert_redirected(content["text/plain"], content["text/html"], "-unsubscribe_url_")


def test_off_sends_the_links_themselves(home: Path) -> None:  # noqa: F811
    send(home, env_for(home, "outbox", CLUBJAPON_LINK_TRACKING="off"))
    for path in (home / "var" / "outbox" / SLUG).glob("*.eml"):
        assert click_links(read_file(path)) == ([], [])

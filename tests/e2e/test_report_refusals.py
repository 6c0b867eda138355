"""`report` after an SMTP send: the server's 5xx refusals (at RCPT and after DATA) are listed
with the bounces, in the server's words; the help says where bounces come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.delivery.conftest import SLUG, home, write_contacts  # noqa: F401
from tests.e2e.test_send_smtp import cli, env_for
from tests.fakes.smtp_server import Behaviour, smtp_server

pytestmark = pytest.mark.e2e


def test_report_lists_smtp_refusals_with_the_servers_words(home: Path) -> None:  # noqa: F811
    emails = [f"reader{i}@example.com" for i in range(4)]
    emails += ["nobody1@example.com", "nobody2@example.com", "spammy@example.com"]
    write_contacts(home / "contacts.csv", emails)
    behaviour = Behaviour(reject=("nobody",), reject_data=("spammy",))
    with smtp_server(behaviour) as (port, server):
        env = env_for(home, port)
        assert cli(env, "sync").returncode == 0
        sent = cli(env, "send", SLUG, "--yes")
        assert sent.returncode == 3, sent.stdout + sent.stderr
        assert sum(server.counts.values()) == 4
        result = cli(env, "report", SLUG)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rcpt = next(line for line in lines if "550 5.1.1 No such user here" in line)
    assert rcpt.split()[-3:] == ["refused", "(SMTP)", "2"]
    data = next(line for line in lines
                if "554 5.7.1 Message refused: content looks like spam" in line)
    assert data.split()[-3:] == ["refused", "(SMTP)", "1"]
    assert "bounces and complaints by reason" in result.stdout
    assert "the outbox and SMTP report none" not in result.stdout

    html = home / "report.html"
    assert cli(env, "report", SLUG, "--html", str(html)).returncode == 0
    page = html.read_text(encoding="utf-8")
    assert "550 5.1.1 No such user here" in page and "refused (SMTP)" in page


def test_report_help_says_where_bounces_come_from(home: Path) -> None:  # noqa: F811
    result = cli(env_for(home, 9), "report", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "bounce mailbox" in text and "webhooks" in text and "refused (SMTP)" in text
    assert "the outbox and SMTP report none of them" not in text

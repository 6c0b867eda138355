"""SpamAssassin (Debian's package and rules, local tests only) scores each language at 0 or below.

The messages are the real edition as a send builds them (signed unsubscribe links, both
parts, every header), written by the outbox transport. SpamAssassin runs with -L (no DNS,
no network test), Debian's stock rules (not whatever sa-update fetched) and a throwaway
home and site configuration, so the score depends on the message alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from clubjapon_ops import jobs
from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.transports.base import Outgoing
from clubjapon_ops.delivery.transports.outbox import OutboxTransport
from clubjapon_ops.settings import load_settings
from tests.conftest import REPO
from tests.newsletter.conftest import SLUG

SPAMASSASSIN = shutil.which("spamassassin")
DEBIAN_RULES = Path("/usr/share/spamassassin")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    SPAMASSASSIN is None, reason="no SpamAssassin: apt-get install spamassassin (see .ci/run)")]

READERS = {
    "fr": Contact(email="camille.martin@example.com", source="test", first_name="Camille",
                  last_name="Martin", language="fr"),
    "en": Contact(email="emily.clarke@example.com", source="test", first_name="Emily",
                  last_name="Clarke", language="en"),
    "ja": Contact(email="sato.haruto@example.com", source="test", first_name="陽翔",
                  last_name="佐藤", language="ja"),
}
_STATUS = re.compile(r"^X-Spam-Status: (\w+), score=(-?[\d.]+)", re.M)
_RULE = re.compile(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\s+(.*)$", re.M)


def sent_messages(tmp_path: Path) -> dict[str, bytes]:
    """The real edition, one reader per language, as the outbox transport writes it."""
    settings = load_settings(REPO, environ={
        "CLUBJAPON_POSTAL_ADDRESS": "Club Japon des Hauts-de-France; 151 avenue du Président "
                                    "Hoover; 59555 Lille Cedex",
        "CLUBJAPON_SECRET": "spamassassin-test-secret-0123456789"})
    newsletter = jobs.newsletter_for_sending(settings, SLUG)
    outbox = OutboxTransport(tmp_path / "outbox", MimeBuilder(settings.mail_from))
    outbox.send([Outgoing(id=row, envelope_to=reader.email, edition=SLUG,
                          message=newsletter.personalise(reader))
                 for row, reader in enumerate(READERS.values(), start=1)])
    found = {path.read_bytes() for path in (tmp_path / "outbox" / SLUG).glob("*.eml")}
    by_lang = {}
    for raw in found:
        lang = re.search(rb"^Content-Language: (\w+)", raw, re.M)
        assert lang is not None
        by_lang[lang.group(1).decode()] = raw
    assert sorted(by_lang) == sorted(READERS)
    return by_lang


def spamassassin(raw: bytes, tmp_path: Path) -> tuple[float, list[str]]:
    """Score one message with local tests only; return the score and the rules that hit."""
    home, site = tmp_path / "home", tmp_path / "site"
    home.mkdir(exist_ok=True)
    site.mkdir(exist_ok=True)
    for pre in Path("/etc/spamassassin").glob("*.pre"):  # the plugins Debian loads
        shutil.copy(pre, site)
    # No Bayes database and no auto-learning: nothing learnt from one run scores the next.
    (site / "local.cf").write_text("use_bayes 0\nbayes_auto_learn 0\n", encoding="ascii")
    assert SPAMASSASSIN is not None
    result = subprocess.run(
        [SPAMASSASSIN, "--local", "--test-mode", "--nocreate-prefs",
         "--configpath", str(DEBIAN_RULES), "--siteconfigpath", str(site),
         "--prefspath", str(home / "user_prefs")],
        input=raw, capture_output=True, timeout=120, check=False,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    report = result.stdout.decode("utf-8", "replace")
    status = _STATUS.search(report)
    assert status is not None, report[-2000:] + result.stderr.decode("utf-8", "replace")
    details = report.split("Content analysis details:", 1)[-1]
    rules = [f"{points:>5} {name}  {what.strip()}" for points, name, what in _RULE.findall(details)]
    return float(status.group(2)), rules


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return sent_messages(tmp_path_factory.mktemp("sent"))


@pytest.mark.parametrize("lang", list(READERS))
def test_each_language_scores_zero_or_below(
    messages: dict[str, bytes], lang: str, tmp_path: Path
) -> None:
    score, rules = spamassassin(messages[lang], tmp_path)
    print(f"\n{lang}: SpamAssassin score {score}")  # shown with -s, and on failure
    for rule in rules:
        print(f"  {rule}")
    assert rules, "no rule listed: the report was not parsed"
    assert score <= 0, f"{lang} scores {score}: " + "; ".join(rules)

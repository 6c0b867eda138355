"""The house template's client support, measured here once and shown to nobody else
(issue 24, item 3): what Outlook for Windows or Gmail lack that the template uses on purpose,
each with its fallback. The lint shows marketing only what an edition or a setting changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clubjapon_ops.newsletter.email_support import unsupported
from clubjapon_ops.newsletter.service import SAMPLE_CONTACTS, load_newsletter
from clubjapon_ops.settings import Settings
from tests.conftest import REPO
from tests.newsletter.cli import run_cli
from tests.newsletter.conftest import SLUG, edit

# Every feature of the house template that some of Outlook for Windows or Gmail do not
# support, and what readers of those clients get instead. A template change that uses
# another one fails here: write it another way, or add it with its fallback.
ON_PURPOSE = {
    "css-at-media": "the one-column phone layout; elsewhere the 600 px table still reads",
    "css-at-media-prefers-color-scheme": "dark colours where asked; elsewhere the light ones",
    "css-border-radius": "rounded buttons and panels; square in Outlook (VML button there)",
    "css-unit-calc": "figures side by side on a wide screen, at the full width when stacked "
                     "(Fab Four); without it, width: 100%: stacked at the full width",
    "css-function-min": "a figure column's own width as its minimum where the row has room; "
                        "without it, a 240 px minimum that a 320 px phone's row holds",
    "css-min-width": "the figure columns' width side by side; Outlook: a ghost table",
    "css-display-none": "hides the preheader's filler; Outlook hides it with mso-hide",
    "css-max-height": "hides the preheader's filler (max-height: 0) with the rules above",
    "css-opacity": "hides the preheader's filler (opacity: 0) with the rules above",
    "css-overflow": "hides the preheader's filler (overflow: hidden) with the rules above",
    "css-overflow-wrap": "breaks a long URL or word inside its column; else it overflows",
    "css-word-wrap": "the older name of overflow-wrap, for the clients that know only it",
    "css-white-space": "keeps each word of the club's name whole in the masthead; else the "
                       "name may wrap inside a word, still inside its column",
    "html-style": "<style> holds @media only: every other rule is inlined (css-inline)",
    "html-wbr": "breaks between Japanese phrases; else the client breaks between characters",
}


def test_the_house_template_uses_only_what_it_means_to(project_settings: Settings) -> None:
    newsletter = load_newsletter(project_settings, SLUG)
    used: set[str] = set()
    for lang in newsletter.edition.languages:
        html = newsletter.personalise(SAMPLE_CONTACTS[lang]).html
        used |= {f.slug for f in unsupported(html)
                 if any(result == "not supported" for _, result, _ in f.clients)}
    new = sorted(used - set(ON_PURPOSE))
    assert not new, (f"the template now uses {new}, which Outlook for Windows or Gmail lack: "
                     "write it another way, or add it to ON_PURPOSE with its fallback")
    assert used == set(ON_PURPOSE), f"no longer used, remove: {sorted(set(ON_PURPOSE) - used)}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config" / "editions", tmp_path / "config" / "editions")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / ".env").write_text(
        "CLUBJAPON_POSTAL_ADDRESS=Club Japon des Hauts-de-France;12 rue Nationale;59000 Lille\n",
        encoding="utf-8")
    return tmp_path


def test_a_clean_edition_checks_clean(home: Path) -> None:
    result = run_cli(home, "edition", "check", SLUG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"{SLUG}: 0 error(s), 0 warning(s)\n"


def test_findings_come_most_serious_first_at_their_field_and_line(home: Path) -> None:
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    edit(path, 'en: "Club Japon des Hauts-de-France: looking back on the 3rd edition in Lille"',
         'en: "' + "x" * 90 + '"')
    edit(path, 'ja: "クラブ・ジャポン・オー＝ド＝フランス：第3回会合（リール）のご報告"',
         'ja: "' + "日本" * 30 + '"')
    lines = path.read_text("utf-8").splitlines()
    en = next(i for i, line in enumerate(lines, 1) if line.startswith('  en: "xxx'))
    result = run_cli(home, "preview", SLUG, "--check")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"error: config/editions/{SLUG}.yaml:{en + 1} subject.ja: the subject is 120 columns "
        "wide, more than the 100 allowed: shorten it to about 80 [subject-length]",
        f"warning: config/editions/{SLUG}.yaml:{en} subject.en: the subject is 90 columns wide "
        "and inboxes cut it after about 80: shorten it [subject-length]",
        f"{SLUG}: 1 error(s), 1 warning(s)",
    ]

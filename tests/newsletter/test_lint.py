from __future__ import annotations

from pathlib import Path

import pytest

from clubjapon_ops.delivery.newsletter_check import check_newsletter
from clubjapon_ops.newsletter.lint import Problem
from clubjapon_ops.settings import Settings
from tests.newsletter.conftest import SLUG, edit

HTML = Path("templates/newsletter/email.html.j2")
TEXT = Path("templates/newsletter/email.txt.j2")
EDITION = Path(f"config/editions/{SLUG}.yaml")
FOOTER = '<tr><td class="footer">'
# Warnings about the layout and the settings, tested in test_lint_offline.py: the real
# edition may have some (the postal address unset).
OFFLINE_WARNINGS = {"charset", "same-colour", "postal-address"}


def ours(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if not (p.level == "warning" and p.rule in OFFLINE_WARNINGS)]


def test_the_real_edition_is_clean(project_settings: Settings) -> None:
    assert ours(check_newsletter(project_settings, SLUG)) == []


@pytest.mark.parametrize(
    ("file", "old", "new", "rule", "where"),
    [
        (HTML, FOOTER, '<tr><td>{{ "x" * 110000 }}</td></tr>' + FOOTER, "html-size", "html"),
        (HTML, FOOTER, '<tr><td><img src="https://club.example/logo.png"></td></tr>' + FOOTER,
         "img-alt", "html line"),
        (HTML, FOOTER, '<tr><td><img src="https://club.example/logo.png" alt=" "></td></tr>'
         + FOOTER, "img-alt", "html line"),
        (HTML, FOOTER, '<tr><td><a href="http://club.example/">x</a></td></tr>' + FOOTER,
         "link-scheme", "html line"),
        (HTML, FOOTER, '<tr><td><a href="/relative">x</a></td></tr>' + FOOTER,
         "link-scheme", "html line"),
        (HTML, FOOTER, "<tr><td>{{ '{{' }} first_name }}</td></tr>" + FOOTER, "leftover", "html"),
        (TEXT, "-- \n", "{{ '{%' }} endif %}\n-- \n", "leftover", "text line"),
        (TEXT, '\n{{ slot("unsubscribe_url") }}', "",
         "unsubscribe", "text"),
        (HTML, '<a href="{{ slot("unsubscribe_url") }}" class="footer-link">'
         '{{ t.unsubscribe }}</a>', "", "unsubscribe", "html"),
        (HTML, '<div class="preheader">{{ L(edition.preheader) }}', '<div class="preheader">',
         "preheader", "html"),
        (EDITION, 'en: "Club Japon des Hauts-de-France: looking back on the 3rd edition in Lille"',
         'en: "' + "A very long subject line " * 5 + '"', "subject-length", "subject.en"),
        (HTML, "<body", '{% if lang == "ja" %}{{ no_such_variable }}{% endif %}<body',
         "renders", "ja"),
    ],
    ids=["too-big", "img-without-alt", "img-blank-alt", "http-link", "relative-link",
         "leftover-html", "leftover-text", "no-unsubscribe-text", "no-unsubscribe-html",
         "no-preheader", "long-subject", "language-fails"],
)
def test_each_rule_catches_its_problem(
    project: Path, project_settings: Settings, file: Path, old: str, new: str, rule: str,
    where: str,
) -> None:
    edit(project / file, old, new)
    problems = check_newsletter(project_settings, SLUG)
    matching = [p for p in problems if p.rule == rule]
    assert matching, f"no {rule} problem in {problems}"
    assert all(p.level == "error" for p in matching)
    assert where in matching[0].where


def test_a_subject_slightly_long_is_a_warning(project: Path, project_settings: Settings) -> None:
    edit(project / EDITION, 'en: "Club Japon des Hauts-de-France: looking back on the 3rd '
         'edition in Lille"', 'en: "' + "x" * 90 + '"')
    problems = ours(check_newsletter(project_settings, SLUG))
    assert [(p.level, p.rule, p.where) for p in problems] == [
        ("warning", "subject-length", f"config/editions/{SLUG}.yaml:26 subject.en")]


def test_the_renders_error_names_the_template_and_line(
    project: Path, project_settings: Settings
) -> None:
    edit(project / HTML, "<body", '{% if lang == "ja" %}{{ no_such_variable }}{% endif %}<body')
    (problem,) = [p for p in check_newsletter(project_settings, SLUG) if p.rule == "renders"]
    assert "email.html.j2" in problem.message
    assert "no_such_variable" in problem.message

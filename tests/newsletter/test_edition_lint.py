"""The lint catches what copying the last edition leaves behind."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from clubjapon_ops.delivery.newsletter_check import check_newsletter, newest_ready_edition
from clubjapon_ops.newsletter.lint import Problem
from clubjapon_ops.settings import Settings
from tests.newsletter.conftest import SLUG, edit

NEXT = "2026-06-18-amiens"


def copy(project: Path, *, date: str = "2026-06-18", number: int = 4) -> Path:
    editions = project / "config" / "editions"
    path = Path(shutil.copy(editions / f"{SLUG}.yaml", editions / f"{NEXT}.yaml"))
    edit(path, "date: 2025-11-04", f"date: {date}")
    edit(path, "number: 3", f"number: {number}")
    return path


def renewed(data: object, kept: object) -> object:
    """data with every text in every language changed, but those of ``kept``."""
    if data is kept:
        return data
    if isinstance(data, dict):
        if data and set(data) <= {"fr", "en", "ja"}:
            return {lang: f"Nouveau {text}" for lang, text in data.items()}
        return {k: renewed(v, kept) for k, v in data.items()}
    if isinstance(data, list):
        return [renewed(v, kept) for v in data]
    return data


def rewrite_all_but(path: Path, keep: int) -> None:
    """Change every text in all languages, but section keep's heading."""
    data = yaml.safe_load(path.read_text("utf-8"))
    path.write_text(yaml.safe_dump(renewed(data, data["sections"][keep]["heading"]),
                                   allow_unicode=True), "utf-8")


def ours(problems: list[Problem], rule: str) -> list[Problem]:
    return [p for p in problems if p.rule == rule]


def line_of(path: Path, start: str) -> int:
    return next(i for i, line in enumerate(path.read_text("utf-8").splitlines(), 1)
                if line.strip().startswith(start))


def test_a_copy_warns_of_every_field_it_did_not_change(
    project: Path, project_settings: Settings
) -> None:
    path = copy(project)
    problems = ours(check_newsletter(project_settings, NEXT), "copied")
    fields = {p.where.split(" ", 1)[1] for p in problems}
    assert {"subject", "title", "summary", "sections[0].heading", "sections[3].heading"} <= fields
    # The texts about that edition too: a paragraph, a quotation, a round table pasted back.
    assert {"preheader", "sections[2].paragraphs[0]", "sections[5].text", "sections[5].author",
            "sections[3].items[1].title", "sections[3].items[0].summary"} <= fields
    assert all(p.level == "warning" for p in problems)
    assert all(p.message == f"same as in {SLUG}: copied and not changed?" for p in problems)
    subject = next(p for p in problems if p.where.endswith(" subject"))
    assert subject.where == f"config/editions/{NEXT}.yaml:{line_of(path, 'subject:')} subject"
    rewrite_all_but(path, keep=3)
    left = ours(check_newsletter(project_settings, NEXT), "copied")
    assert [p.where.split(" ", 1)[1] for p in left] == ["sections[3].heading"]
    # The original came first: the copy is the one that was not changed.
    assert ours(check_newsletter(project_settings, SLUG), "copied") == []


def test_the_date_must_be_the_file_names(project: Path, project_settings: Settings) -> None:
    path = copy(project, date="2026-06-19")
    [problem] = ours(check_newsletter(project_settings, NEXT), "date")
    assert problem.level == "error"
    assert problem.where == f"config/editions/{NEXT}.yaml:{line_of(path, 'date:')} date"
    assert "2026-06-18" in problem.message and "2026-06-19" in problem.message


def test_the_number_must_follow_the_previous_editions(
    project: Path, project_settings: Settings
) -> None:
    copy(project, number=3)
    [problem] = ours(check_newsletter(project_settings, NEXT), "number")
    assert problem.level == "error"
    assert re.search(rf"not greater than .*{SLUG}.* 3", problem.message), problem.message
    assert ours(check_newsletter(project_settings, SLUG), "number") == []


def test_placeholders_left_are_errors_where_they_are(
    project: Path, project_settings: Settings
) -> None:
    path = copy(project)
    edit(path, "ja: 主な分野", "ja: 要記入")
    edit(path, "en: Two round tables", "en: TO COMPLETE")
    edit(path, 'fr: "Des liens toujours plus forts entre la Région et le Japon"',
         "fr: «À COMPLÉTER»")
    problems = ours(check_newsletter(project_settings, NEXT), "placeholder")
    assert [(p.level, p.where.split(" ", 1)[1]) for p in problems] == [
        ("error", "title.fr"), ("error", "sections[1].heading.ja"),
        ("error", "sections[3].heading.en")]
    assert problems[0].where.startswith(f"config/editions/{NEXT}.yaml:{line_of(path, 'fr: «À')}")
    assert newest_ready_edition(project_settings) == SLUG  # errors: not ready


def test_an_editions_own_opening_copied_from_an_earlier_one_is_warned_of(
    project: Path, project_settings: Settings
) -> None:
    # A seasonal opening ("as the year ends...") written for one edition is about that
    # edition: pasted back unchanged months later, it is a copy like the subject.
    opening = ("opening:\n  fr: Bonne fin d’année.\n  en: Season’s greetings.\n"
               "  ja: 年末のご挨拶。\n")
    for path in (project / "config" / "editions" / f"{SLUG}.yaml", copy(project)):
        edit(path, "\nsections:\n", "\n" + opening + "sections:\n")
    fields = {p.where.split(" ", 1)[1]
              for p in ours(check_newsletter(project_settings, NEXT), "copied")}
    assert "opening" in fields

"""edition new writes the next edition as a draft; edition list shows them all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from clubjapon_ops.newsletter.content import load_edition
from clubjapon_ops.newsletter.placeholders import PLACEHOLDERS
from clubjapon_ops.newsletter.schema import MODELINE
from tests.conftest import REPO
from tests.newsletter.cli import run_cli
from tests.newsletter.conftest import SLUG

NEW = "2026-06-18-amiens"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    for name in ("config", "templates"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


def localized(data: object) -> list[dict[str, str]]:
    if isinstance(data, dict):
        if data and set(data) <= set(PLACEHOLDERS):
            return [data]
        return [t for v in data.values() for t in localized(v)]
    if isinstance(data, list):
        return [t for v in data for t in localized(v)]
    return []


@pytest.mark.parametrize("source", [None, SLUG])
def test_new_writes_a_draft_full_of_placeholders_that_the_lint_refuses(
    home: Path, source: str | None
) -> None:
    # From an edition, --blank-all: every text a placeholder, what usually stays too.
    result = run_cli(home, "edition", "new", NEW,
                     *(["--from", source, "--blank-all"] if source else []))
    assert result.returncode == 0, result.stderr
    path = home / "config" / "editions" / f"{NEW}.yaml"
    text = path.read_text("utf-8")
    assert text.splitlines()[0] == MODELINE
    edition = load_edition(path)
    assert (edition.status, str(edition.date), edition.number) == ("draft", "2026-06-18", 4)
    texts = localized(yaml.safe_load(text))
    assert texts and all(t == {lang: PLACEHOLDERS[lang] for lang in t} for t in texts)
    if source:
        lille = load_edition(home / "config" / "editions" / f"{SLUG}.yaml")
        assert [s.type for s in edition.sections] == [s.type for s in lille.sections]
    else:
        assert "# " in text.split("sections:", 1)[1]  # the template explains what goes where
    check = run_cli(home, "preview", NEW, "--check")
    assert check.returncode == 1
    assert "[placeholder]" in check.stdout and "[copied]" not in check.stdout
    assert "[date]" not in check.stdout and "[number]" not in check.stdout
    preview = run_cli(home, "preview", NEW, "--lang", "ja")
    assert preview.returncode == 0 and "DRAFT" in preview.stdout


# Added to the copied edition: a photo (kept) and a registration button (its words blanked).
EXTRA_SECTIONS = """
  - type: image
    url: https://example.org/photos/table-ronde.jpg
    alt: { fr: La table ronde, en: The round table, ja: ラウンドテーブル }
    width: 600
    height: 400

  - type: cta   # this edition's registration
    label: { fr: S’inscrire, en: Register, ja: 申し込む }
    url: https://example.org/inscription
"""


def test_new_from_keeps_what_stays_and_the_files_comments_and_blanks_the_news(
    home: Path,
) -> None:
    source = home / "config" / "editions" / f"{SLUG}.yaml"
    source.write_text(source.read_text("utf-8") + EXTRA_SECTIONS, "utf-8")
    lille = load_edition(source)
    result = run_cli(home, "edition", "new", NEW, "--from", SLUG)
    assert result.returncode == 0, result.stderr
    path = home / "config" / "editions" / f"{NEW}.yaml"
    text = path.read_text("utf-8")
    lines = text.splitlines()
    assert lines[0] == MODELINE
    # Every comment of the source is still there, and the layout of what was kept.
    theirs = [x for x in source.read_text("utf-8").splitlines() if x.lstrip().startswith("#")]
    ours = [x for x in lines if x.lstrip().startswith("#")]
    assert ours[:1] + ours[len(ours) - len(theirs) + 1:] == theirs  # a note after the first
    assert "Copied from 2025-11-04-lille" in lines[1]
    assert '      - value: { fr: "80+", en: "80+", ja: "80社以上" }' in lines
    assert "      - { fr: santé, en: health, ja: ヘルスケア }" in lines
    assert "    # No url: the button is a mailto: link to CLUBJAPON_MAIL_FROM." in lines
    assert "  - type: cta   # this edition's registration" in lines
    # The new number, date (not quoted) and status.
    assert {"number: 4", "date: 2026-06-18", "status: draft"} <= set(lines)
    edition = load_edition(path)
    assert (edition.status, str(edition.date), edition.number) == ("draft", "2026-06-18", 4)
    blank = {lang: PLACEHOLDERS[lang] for lang in edition.languages}
    # Kept: venue, city, figures, lists, the image, the contact button, text headings.
    assert (edition.venue, edition.city) == (lille.venue, lille.city)
    kept = [i for i, s in enumerate(lille.sections) if s.type in ("figures", "list", "image")]
    assert [edition.sections[i] for i in kept] == [lille.sections[i] for i in kept]
    contact, registration = (i for i, s in enumerate(lille.sections) if s.type == "cta")
    assert edition.sections[contact] == lille.sections[contact]
    # Blanked: the inbox lines, the top, paragraphs, quotes, panels, a button's words.
    for field in ("subject", "preheader", "title", "summary"):
        assert getattr(edition, field) == blank
    for theirs, ours in zip(lille.sections, edition.sections, strict=True):
        assert ours.type == theirs.type
        if ours.type == "text":
            assert ours.heading == theirs.heading  # type: ignore[union-attr]
            assert ours.paragraphs == [blank] * len(theirs.paragraphs)  # type: ignore
        if ours.type in ("quote", "panels"):
            texts = localized(ours.model_dump())
            assert texts and all(t == blank for t in texts)
    button = edition.sections[registration]
    assert (button.label, button.url) == (  # type: ignore[union-attr]
        blank, "https://example.org/inscription")
    # The lint lists the placeholders, and still warns of a text the same as before: the
    # kept headings, and a paragraph pasted back from the last edition.
    old = lille.sections[2].paragraphs[0]  # type: ignore[union-attr]
    start = lines.index("    paragraphs:", next(i for i, x in enumerate(lines)
                                              if "Dans la continuité" in x))
    assert lines[start + 1:start + 4] == [
        f"      - fr: {blank['fr']}", f"        en: {blank['en']}", f"        ja: {blank['ja']}"]
    lines[start + 1:start + 4] = [  # a JSON string is a YAML one
        f"      - fr: {json.dumps(old['fr'], ensure_ascii=False)}",
        *(f"        {lang}: {json.dumps(old[lang], ensure_ascii=False)}" for lang in ("en", "ja"))]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    check = run_cli(home, "preview", NEW, "--check")
    assert check.returncode == 1
    copied = [x for x in check.stdout.splitlines() if x.endswith("[copied]")]
    assert any(" sections[2].paragraphs[0]:" in x for x in copied), check.stdout
    assert any(" sections[0].heading:" in x for x in copied), check.stdout
    assert "[placeholder]" in check.stdout


def test_new_blank_all_goes_with_from(home: Path) -> None:
    result = run_cli(home, "edition", "new", NEW, "--blank-all")
    assert result.returncode == 2 and "--blank-all goes with --from" in result.stderr
    assert not (home / "config" / "editions" / f"{NEW}.yaml").exists()


def test_new_refuses_to_overwrite(home: Path) -> None:
    assert run_cli(home, "edition", "new", NEW).returncode == 0
    path = home / "config" / "editions" / f"{NEW}.yaml"
    path.write_text(path.read_text("utf-8") + "# marketing's work\n", "utf-8")
    again = run_cli(home, "edition", "new", NEW, "--from", SLUG)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert path.read_text("utf-8").endswith("# marketing's work\n")


@pytest.mark.parametrize("name", ["../../evil", "amiens", "2026-06-18-Amiens", "x/2026-06-18-a"])
def test_new_refuses_a_name_that_is_not_a_slug(home: Path, name: str) -> None:
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    result = run_cli(home, "edition", "new", name)
    assert result.returncode == 2
    assert "YYYY-MM-DD" in result.stderr
    assert sorted(p.relative_to(home) for p in home.rglob("*")
                  if "var" not in p.parts) == [p for p in before if "var" not in p.parts]


def test_new_from_an_unknown_edition_says_which_exist(home: Path) -> None:
    result = run_cli(home, "edition", "new", NEW, "--from", "2025-11-04-lile")
    assert result.returncode == 2 and "did you mean '2025-11-04-lille'" in result.stderr
    assert not (home / "config" / "editions" / f"{NEW}.yaml").exists()


def test_list_shows_every_edition_and_a_broken_one_as_invalid(home: Path) -> None:
    assert run_cli(home, "edition", "new", NEW).returncode == 0
    (home / "config" / "editions" / "2027-01-01-broken.yaml").write_text(
        "number: [unclosed\n", encoding="utf-8")
    result = run_cli(home, "edition", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    lille = next(line for line in lines if line.startswith(SLUG))
    assert lille.split()[1:5] == ["2025-11-04", "ready", "fr,en,ja", "0/0"]
    amiens = next(line for line in lines if line.startswith(NEW))
    assert amiens.split()[1:3] == ["2026-06-18", "draft"]
    broken = next(line for line in lines if line.startswith("2027-01-01-broken"))
    assert "invalid" in broken and "config/editions/2027-01-01-broken.yaml:" in broken
    assert "is not closed on it" in broken and str(home) not in broken
    assert not (home / "var").exists()  # listing made no database


def test_list_counts_the_ledger(home: Path) -> None:
    env_csv = home / "config" / "sample" / "contacts.csv"
    (home / ".env").write_text(f"CLUBJAPON_CSV_PATH={env_csv}\nCLUBJAPON_SECRET={'s' * 40}\n"
                               "CLUBJAPON_TRANSPORT=outbox\n", encoding="utf-8")
    assert run_cli(home, "sync").returncode == 0
    sent = run_cli(home, "send", SLUG, "--yes", "--limit", "5")
    assert sent.returncode in (0, 3), sent.stderr
    result = run_cli(home, "edition", "list")
    lille = next(line for line in result.stdout.splitlines() if line.startswith(SLUG))
    planned, done = lille.split()[4].split("/")
    assert int(done) == 5 and int(planned) > 5


def bomb(levels: int = 12) -> str:
    """The review's alias bomb: each level lists the one before ten times (10^levels strings),
    written as an edition that is otherwise fine up to its first anchor."""
    lines = ["number: 9", "date: 2026-01-01", 'a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


BOMB = "2026-01-01-bomb"


def test_an_alias_bomb_is_refused_at_once_and_the_others_still_list(home: Path) -> None:
    (home / "config" / "editions" / f"{BOMB}.yaml").write_text(bomb(), encoding="utf-8")
    result = run_cli(home, "edition", "list")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith(BOMB))
    # The file and the line of the first anchor, in one sentence.
    assert "invalid" in line and f"config/editions/{BOMB}.yaml:3: YAML anchors" in line
    lille = next(line for line in result.stdout.splitlines() if line.startswith(SLUG))
    assert lille.split()[1:4] == ["2025-11-04", "ready", "fr,en,ja"]
    ready = run_cli(home, "edition", "ready")
    assert ready.returncode == 0 and ready.stdout.strip() == SLUG


def test_new_from_an_alias_bomb_refuses_and_writes_nothing(home: Path) -> None:
    (home / "config" / "editions" / f"{BOMB}.yaml").write_text(bomb(), encoding="utf-8")
    result = run_cli(home, "edition", "new", NEW, "--from", BOMB)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"{BOMB}.yaml:3: YAML anchors" in result.stderr
    assert not (home / "config" / "editions" / f"{NEW}.yaml").exists()
    # The bomb is no edition to number from either: the next one is still the fourth.
    assert run_cli(home, "edition", "new", NEW).returncode == 0
    assert load_edition(home / "config" / "editions" / f"{NEW}.yaml").number == 4


def test_new_refuses_a_name_too_long_for_the_ledger_and_a_file(home: Path) -> None:
    name = "2026-06-18-" + "a" * 300
    result = run_cli(home, "edition", "new", name)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "at most 120" in result.stderr
    assert "OSError" not in result.stderr and "a" * 40 not in result.stderr
    longest = "2026-06-18-" + "a" * (120 - 11)
    assert run_cli(home, "edition", "new", longest).returncode == 0
    assert load_edition(home / "config" / "editions" / f"{longest}.yaml").slug == longest


@pytest.mark.parametrize("name", ["2026-99-99-x", "2026-02-30-lille", "2026-00-10-lille"])
def test_new_refuses_a_date_that_is_no_day(home: Path, name: str) -> None:
    result = run_cli(home, "edition", "new", name)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"{name[:10]} is no day" in result.stderr
    assert not (home / "config" / "editions" / f"{name}.yaml").exists()


def test_new_writes_a_commented_audience_block_that_loads_when_uncommented(
    home: Path,
) -> None:
    assert run_cli(home, "edition", "new", NEW).returncode == 0
    path = home / "config" / "editions" / f"{NEW}.yaml"
    text = path.read_text("utf-8")
    assert "# audience:\n#   lists: [Membres, Partenaires]" in text
    assert load_edition(path).audience is None  # commented out: every subscribed reader
    block = text[text.index("# audience:"):text.index("\n\n", text.index("# audience:"))]
    path.write_text(text.replace(block, "\n".join(
        line.removeprefix("# ") for line in block.splitlines())), encoding="utf-8")
    audience = load_edition(path).audience
    assert audience is not None
    assert (audience.lists, audience.exclude_lists, audience.languages) == (
        ["Membres", "Partenaires"], ["Presse"], ["fr", "en"])


def test_new_from_a_public_edition_is_not_public(home: Path) -> None:
    # Review of the merge: 'public: true' was kept, so the unsent copy was listed in the
    # public archive as soon as marketing set it ready.
    source = home / "config" / "editions" / f"{SLUG}.yaml"
    source.write_text(source.read_text("utf-8").replace("\nstatus: ready\n",
                                                        "\nstatus: ready\npublic: true\n", 1),
                      "utf-8")
    assert load_edition(source).public is True
    result = run_cli(home, "edition", "new", NEW, "--from", SLUG)
    assert result.returncode == 0, result.stderr
    copy = home / "config" / "editions" / f"{NEW}.yaml"
    assert "\npublic: false\n" in copy.read_text("utf-8")

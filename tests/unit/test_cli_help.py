"""--help lists the commands by who runs them; EDITION arguments complete in the shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clubjapon_ops.cli import SECTIONS, _register_commands, cli
from tests.conftest import REPO


@pytest.fixture(scope="module")
def help_text() -> str:
    _register_commands()
    result = CliRunner().invoke(cli, ["--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_commands_are_grouped_by_who_runs_them(help_text: str) -> None:
    headings = [line for line in help_text.splitlines() if line.endswith(" commands:")]
    assert headings == [f"{title} commands:" for title in SECTIONS]  # no "Other" section
    for summaries in SECTIONS.values():
        for name, summary in summaries.items():
            # One line each: name, then the whole summary, nothing cut.
            assert any(line.split() == [name, *summary.split()]
                       for line in help_text.splitlines()), name


def test_every_command_has_a_section() -> None:
    _register_commands()
    listed = [name for summaries in SECTIONS.values() for name in summaries]
    assert sorted(listed) == sorted(cli.list_commands(None))  # type: ignore[arg-type]
    assert all(len(s) < 60 for summaries in SECTIONS.values() for s in summaries.values())


@pytest.mark.parametrize("words", [["send", "2025-"], ["preview", ""], ["status", "2025-11"]])
def test_edition_names_complete_in_the_shell(tmp_path: Path, words: list[str]) -> None:
    env = {**os.environ, "CLUBJAPON_HOME": str(REPO), "_CLUBJAPON_OPS_COMPLETE": "bash_complete",
           "COMP_WORDS": " ".join(["clubjapon-ops", *words]), "COMP_CWORD": str(len(words))}
    result = subprocess.run([sys.executable, "-m", "clubjapon_ops"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=30, check=False)
    offered = [line.split(",", 1)[1] for line in result.stdout.splitlines()]
    assert "2025-11-04-lille" in offered, result.stdout + result.stderr

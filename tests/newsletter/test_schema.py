"""The JSON Schema for editors is the model's, and every edition file points at it."""

from __future__ import annotations

import json
from pathlib import Path

from clubjapon_ops.newsletter.content import EDITIONS_DIR, list_editions
from clubjapon_ops.newsletter.schema import MODELINE, schema_path, schema_text
from tests.conftest import REPO
from tests.newsletter.cli import run_cli


def test_the_committed_schema_is_the_models() -> None:
    committed = schema_path(REPO).read_text(encoding="utf-8")
    assert committed == schema_text(), (
        "config/editions/edition.schema.json is stale: run 'clubjapon-ops edition schema'")


def test_the_schema_knows_every_section_type_and_refuses_unknown_keys() -> None:
    schema = json.loads(schema_text())
    assert schema["additionalProperties"] is False
    assert "slug" not in schema["properties"]
    assert {"number", "date", "status", "sections"} <= set(schema["required"])
    tags = {d["properties"]["type"]["const"] for d in schema["$defs"].values()
            if "type" in d.get("properties", {})}
    assert tags == {"text", "figures", "quote", "panels", "list", "image", "cta"}


def test_every_edition_file_starts_with_the_schema_line() -> None:
    for slug in list_editions(REPO):
        first = (REPO / EDITIONS_DIR / f"{slug}.yaml").read_text("utf-8").splitlines()[0]
        assert first == MODELINE, slug


def test_the_command_writes_the_schema_beside_the_editions(tmp_path: Path) -> None:
    (tmp_path / EDITIONS_DIR).mkdir(parents=True)
    result = run_cli(tmp_path, "edition", "schema")
    assert result.returncode == 0, result.stderr
    assert schema_path(tmp_path).read_text("utf-8") == schema_text()

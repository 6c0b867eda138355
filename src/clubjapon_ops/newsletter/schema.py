"""The JSON Schema of an edition file, generated from the model, for editors' YAML servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clubjapon_ops.newsletter.content import EDITIONS_DIR
from clubjapon_ops.newsletter.model import EditionFile

SCHEMA_FILE = "edition.schema.json"
# The first line of every edition file: VS Code, JetBrains, Neovim... (any editor with a
# YAML language server) then complete and check fields as marketing types.
MODELINE = f"# yaml-language-server: $schema={SCHEMA_FILE}"


def edition_schema() -> dict[str, Any]:
    """The schema of what an edition file holds (the slug is its file name, not a field)."""
    schema = EditionFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Club Japon newsletter edition"
    return schema


def schema_text() -> str:
    """The schema as it is committed: stable key order, one trailing newline."""
    return json.dumps(edition_schema(), indent=2, ensure_ascii=False) + "\n"


def schema_path(root: Path) -> Path:
    """Where the schema lives: beside the editions it describes."""
    return root / EDITIONS_DIR / SCHEMA_FILE


def write_schema(root: Path) -> Path:
    """Write the schema under config/editions/; return its path."""
    path = schema_path(root)
    path.write_text(schema_text(), encoding="utf-8")
    return path

"""The package's layers: sending does not depend on the CRM package, nor the CRM on sending."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "clubjapon_ops"


def imported_packages(folder: str) -> dict[str, set[str]]:
    """For each module under ``folder``, the clubjapon_ops subpackages it imports."""
    found: dict[str, set[str]] = {}
    for path in (PACKAGE / folder).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for module in modules:
                parts = module.split(".")
                if parts[0] == "clubjapon_ops" and len(parts) > 1:
                    names.add(parts[1])
        found[str(path.relative_to(PACKAGE))] = names
    return found


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("delivery", "crm"), ("crm", "delivery"), ("http", "crm"), ("http", "delivery"),
])
def test_no_import_crosses_the_layers(folder: str, forbidden: str) -> None:
    crossing = [module for module, names in imported_packages(folder).items()
                if forbidden in names]
    assert crossing == [], f"{folder}/ imports {forbidden}/ in {crossing}"


def test_jobs_are_one_package_with_a_module_per_job() -> None:
    modules = {p.stem for p in (PACKAGE / "jobs").glob("*.py")}
    assert {"sync", "push", "send", "cleanup", "reports", "records", "registry"} <= modules
    gone = ["jobs.py", "job_registry.py", "writeback.py", "cleanup.py", "reporting/job.py"]
    assert [name for name in gone if (PACKAGE / name).exists()] == []
    assert "jobs" not in {n for names in imported_packages("delivery").values() for n in names}

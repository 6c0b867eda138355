"""The package's layers (shared/DESIGN.md): no module imports a layer it must not, however it
imports it (absolute, relative, inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "clubjapon_ops"


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports, anywhere in it (a function's body, under TYPE_CHECKING),
    as a dotted name; ``from A import b`` counts as A and A.b (b may be a module).

    ``package``: the dotted package the file is in (by default, from where it lies).
    """
    parts = (package.split(".") if package
             else ["clubjapon_ops", *path.relative_to(PACKAGE).parent.parts])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package, up level - 1
                base = parts[:len(parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def modules_under(where: str) -> list[Path]:
    """The package's modules in folder ``where``, or the one module ``where`` names."""
    target = PACKAGE / where
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


def importers(where: str, forbidden: str) -> list[str]:
    """The modules in ``where`` that import ``forbidden`` (a subpackage or a module)."""
    name = "clubjapon_ops." + forbidden.removesuffix(".py").replace("/", ".")
    return [str(path.relative_to(PACKAGE)) for path in modules_under(where)
            if any(m == name or m.startswith(name + ".") for m in imported_modules(path))]


def imported_packages(folder: str) -> dict[str, set[str]]:
    """For each module under ``folder``, the clubjapon_ops subpackages it imports."""
    found: dict[str, set[str]] = {}
    for path in modules_under(folder):
        parts = (m.split(".") for m in imported_modules(path))
        found[str(path.relative_to(PACKAGE))] = {
            p[1] for p in parts if p[0] == "clubjapon_ops" and len(p) > 1}
    return found


# shared/DESIGN.md: newsletter/ is pure (content and contacts in, messages out); settings.py
# is the ground floor; jobs/registry.py is what a job file may name, below the files' parser.
@pytest.mark.parametrize(("where", "forbidden"), [
    ("delivery", "crm"), ("crm", "delivery"), ("http", "crm"), ("http", "delivery"),
    ("newsletter", "store"), ("newsletter", "delivery"),
    *[("settings.py", above) for above in ("store", "delivery", "newsletter", "crm", "http",
                                          "events", "bounces", "jobs", "web", "cli")],
    ("jobs/registry.py", "jobfiles.py"),
])
def test_no_import_crosses_the_layers(where: str, forbidden: str) -> None:
    crossing = importers(where, forbidden)
    assert crossing == [], f"{where} imports {forbidden} in {crossing}"


def test_the_import_reader_sees_every_form_of_import(tmp_path: Path) -> None:
    # The rules above are only as good as this reader: each form, in a function too.
    path = tmp_path / "newsletter" / "sample.py"
    path.parent.mkdir()
    path.write_text(
        "import clubjapon_ops.store.deliveries\n"
        "from clubjapon_ops import delivery\n"
        "from ..jobs import registry\n"
        "from . import render\n"
        "def later():\n"
        "    from clubjapon_ops.store.location import is_sqlite\n",
        encoding="utf-8")
    found = imported_modules(path, "clubjapon_ops.newsletter")
    assert {"clubjapon_ops.store.deliveries", "clubjapon_ops.delivery",
            "clubjapon_ops.jobs.registry", "clubjapon_ops.newsletter.render",
            "clubjapon_ops.store.location"} <= found


def test_jobs_are_one_package_with_a_module_per_job() -> None:
    modules = {p.stem for p in (PACKAGE / "jobs").glob("*.py")}
    assert {"sync", "push", "send", "cleanup", "reports", "records", "registry"} <= modules
    gone = ["jobs.py", "job_registry.py", "writeback.py", "cleanup.py", "reporting/job.py"]
    assert [name for name in gone if (PACKAGE / name).exists()] == []
    assert "jobs" not in {n for names in imported_packages("delivery").values() for n in names}

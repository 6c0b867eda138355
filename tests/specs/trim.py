"""Cut a vendor's OpenAPI document down to the operations we call (run by hand, not a test).

Keeps the named operations and every component they reach through ``$ref``, nothing else, so
the vendored file stays small and a re-vendoring at a newer commit is one command:

    python -m tests.specs.trim SPEC OUT 'post /smtp/email' 'get /contacts' ...

SPEC may be JSON or YAML (YAML dates are kept as text: Brevo's examples hold invalid ones).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


class _TextDates(yaml.SafeLoader):
    """A YAML loader that leaves timestamps as strings."""


_TextDates.yaml_implicit_resolvers = {
    key: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: Path) -> Any:
    """Read a JSON or YAML specification."""
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_TextDates)


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def trim(spec: dict[str, Any], operations: list[str]) -> dict[str, Any]:
    """The spec with only ``operations`` ('method /path') and the components they use."""
    paths: dict[str, Any] = {}
    for operation in operations:
        method, path = operation.split(" ", 1)
        item = spec["paths"][path]
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k == "parameters"})
        kept[method] = item[method]
    components: dict[str, Any] = {}
    todo = _refs(paths)
    done: set[str] = set()
    while todo:
        ref = todo.pop()
        done.add(ref)
        kind, name = ref.split("/")[2:4]  # "#/components/<kind>/<name>"
        target = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = target
        todo |= _refs(target) - done
    out = {k: spec[k] for k in ("openapi", "info", "servers") if k in spec}
    out["paths"] = paths
    out["components"] = components
    return out


def main(argv: list[str]) -> None:
    """Command line: SPEC OUT OPERATION..."""
    source, target, *operations = argv
    trimmed = trim(load(Path(source)), operations)
    Path(target).write_text(json.dumps(trimmed, indent=1, ensure_ascii=False) + "\n",
                            encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])

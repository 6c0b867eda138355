"""Edition content as data: config/editions/<slug>.yaml, validated on load with line numbers."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from clubjapon_ops.errors import EditionError, UnknownEdition
from clubjapon_ops.newsletter.edition_errors import dotted as dotted  # re-exported
from clubjapon_ops.newsletter.edition_errors import model_problems, yaml_problem
from clubjapon_ops.newsletter.model import LANGS as LANGS  # re-exported: callers import
from clubjapon_ops.newsletter.model import (
    OPTIONAL_TEXTS,
)
from clubjapon_ops.newsletter.model import Edition as Edition  # these three from here
from clubjapon_ops.newsletter.model import Lang as Lang

EDITIONS_DIR = Path("config") / "editions"
# An edition's name: its date, then lower-case words; never a path, a suffix or a space.
SLUG = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}-[a-z0-9-]+")
# The ledger keeps an edition's name in 120 characters (store.schema), and a longer name
# would soon pass what a file name may be (255 bytes): no name beyond this is an edition.
MAX_SLUG = 120


class AliasRefused(yaml.YAMLError):
    """A YAML anchor (&name) or alias (*name): refused before anything is built from it."""

    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__("anchor or alias")
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text, so the schema reports a bad date with its line,
    and that refuses anchors and aliases.

    An alias repeats a whole subtree: ten nested ones in a 10 KB file make 10^9 strings for
    the walks below (texts_in, the lint, a draft's copy), hours of CPU and gigabytes. No
    edition needs one, so the composer refuses the first anchor or alias it meets, before
    any node is shared, let alone expanded.
    """

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Refuse an anchor or an alias, else compose the node as SafeLoader does."""
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise AliasRefused(event.start_mark)
        node: yaml.Node | None = super().compose_node(parent, index)
        return node


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

Loc = tuple[int | str, ...]


def _localized_fields(model: BaseModel, prefix: Loc = ()) -> list[tuple[Loc, dict[str, Any]]]:
    """List every language-keyed dict in the model with its location."""
    found: list[tuple[Loc, dict[str, Any]]] = []
    for name, value in model:
        loc = (*prefix, name)
        if not prefix and name in OPTIONAL_TEXTS:
            continue  # a language left out gets the house's words
        if isinstance(value, dict) and value and set(value) <= set(LANGS):
            found.append((loc, value))
        elif isinstance(value, BaseModel):
            found += _localized_fields(value, loc)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found += _localized_fields(item, (*loc, i))
                elif isinstance(item, dict) and item and set(item) <= set(LANGS):
                    found.append(((*loc, i), item))  # a paragraph or a list item
    return found


def missing_translation(edition: Edition) -> Loc | None:
    """Return the location of the first text missing in one of the edition's languages."""
    for loc, texts in _localized_fields(edition):
        for lang in edition.languages:
            value = texts.get(lang)
            if value is None or not (value.strip() if isinstance(value, str) else value):
                return (*loc, lang)
    return None


def _line_of(node: yaml.Node, loc: Loc) -> int:
    """Return the 1-based line of the deepest YAML node that the error location reaches."""
    line = node.start_mark.line + 1
    for key in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    child, line = v, k.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


# The renderer's slot markers (newsletter.render): in an edition's text they would raise
# KeyError, or pull a reader's greeting or address into the text.
_RESERVED = re.compile("[\ue000\ue001]")


def texts_in(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Every string in nested dicts and lists (parsed YAML, a dumped edition) with its
    location; in YAML, escapes (\\uE000) are already decoded."""
    if isinstance(data, str):
        yield loc, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from texts_in(value, (*loc, key))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from texts_in(item, (*loc, i))


# Lists thousands deep would exhaust the stack of the parser or of the walks below, and no
# edition is like that (an alias inside itself, venue: &v [*v], is refused as an alias).
_TOO_DEEP = "nested too deeply: not an edition"


def _text(path: Path) -> str:
    """An edition file's text; ConfigError naming the file when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EditionError(f"{path}: edition file not found") from None
    except UnicodeDecodeError as exc:
        raise EditionError(
            f"{path}: byte {exc.start} is not UTF-8 text: save the file as UTF-8") from None
    except OSError as exc:
        raise EditionError(f"{path}: cannot be read ({exc.strerror or 'an error'}): check "
                           "that the file is readable") from None


def _read(path: Path, text: str | None = None) -> tuple[yaml.Node, dict[str, Any]]:
    """Parse an edition file into its node tree (for lines) and its data."""
    if text is None:
        text = _text(path)
    loader = _Loader(text)
    try:
        # Parsed once: the node tree gives the lines, and the data is built from it.
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except AliasRefused as exc:
        raise EditionError(
            f"{path}:{exc.mark.line + 1}: YAML anchors and aliases (&name, *name) are not "
            "allowed in an edition: write the value out in full where it is repeated"
        ) from None
    except yaml.YAMLError as exc:
        line, advice = yaml_problem(exc, text)
        raise EditionError(f"{path}:{line}: {advice}") from None
    except RecursionError:
        raise EditionError(f"{path}: {_TOO_DEEP}") from None
    finally:
        loader.dispose()
    if node is None or not isinstance(data, dict):
        raise EditionError(f"{path}:1: expected the edition's fields (number: ..., date: ..., "
                           "...), one per line")
    return node, data


def read_yaml(path: Path) -> dict[str, Any]:
    """An edition file's data as written, unvalidated (dates stay text); ConfigError if bad."""
    return _read(path)[1]


def load_edition(path: Path) -> Edition:
    """Read and validate an edition file; errors name the file, the field and the line."""
    return _load(path, _text(path))


# The preview's index and the public archive load every edition on each request; parsing
# and validating is ~8 ms a file, reading it a few µs. Keyed by the text itself, so an edited
# file is never served stale, whatever its modification time says. Editions are frozen.
@lru_cache(maxsize=64)
def _load(path: Path, text: str) -> Edition:
    try:
        return _validated(path, text)
    except RecursionError:
        raise EditionError(f"{path}: {_TOO_DEEP}") from None


def _validated(path: Path, text: str) -> Edition:
    """load_edition's work, which recurses through the data as deep as the file nests."""
    node, data = _read(path, text)
    for field_loc, value in texts_in(data):
        if found := _RESERVED.search(value):
            raise EditionError(
                f"{path}:{_line_of(node, field_loc)}: {dotted(field_loc)}: character "
                f"U+{ord(found.group()):04X} is reserved (the renderer marks a reader's name "
                "with it): remove it"
            )
    data["slug"] = path.stem
    try:
        edition = Edition.model_validate(data)
    except ValidationError as exc:
        said = model_problems(exc.errors(), lambda loc: _line_of(node, loc))
        raise EditionError("\n".join(f"{path}:{line}: {text}" for line, text in said)) from None
    gap = missing_translation(edition)
    if gap is not None:
        raise EditionError(
            f"{path}:{_line_of(node, gap[:-1])}: {dotted(gap)}: missing translation: write the "
            f"text in {gap[-1]}, or take {gap[-1]} out of languages"
        )
    return edition


def locate_fields(path: Path) -> Callable[[Loc], int]:
    """A function giving the line of a field of an edition file (1 if it cannot be read)."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        node = None
    if node is None:
        return lambda loc: 1
    return lambda loc: _line_of(node, loc)


def is_slug(name: str) -> bool:
    """True for a well-formed edition name: 'YYYY-MM-DD-place', lower case, no path, at most
    MAX_SLUG characters (checked first: a longer name never reaches the file system)."""
    return len(name) <= MAX_SLUG and SLUG.fullmatch(name) is not None


def project_relative(text: str, root: Path) -> str:
    """A message with the paths under the project root made relative to it (an edition's
    error names its file by absolute path, and an OS error may name it once more)."""
    if root == Path(root.anchor):  # a project at / has nothing to cut
        return text
    return text.replace(f"{root}{os.sep}", "").replace(str(root), ".")


def list_editions(root: Path) -> list[str]:
    """Return the slugs of every edition file, sorted; other files are not editions."""
    return sorted(p.stem for p in (root / EDITIONS_DIR).glob("*.yaml") if is_slug(p.stem))


def resolve_edition(root: Path, name: str, known: Iterable[str] = ()) -> str:
    """Return the edition ``name`` names, or raise UnknownEdition saying which were meant.

    An edition is a slug with a file in config/editions/; ``known`` adds editions that
    exist elsewhere (the ledger's, for status and report after a file was removed). Every
    command and page goes through here, so no path is ever built from an unchecked name.
    """
    elsewhere = {k for k in known if is_slug(k)}
    if is_slug(name) and ((root / EDITIONS_DIR / f"{name}.yaml").is_file() or name in elsewhere):
        return name
    candidates = sorted(set(list_editions(root)) | elsewhere)
    close = get_close_matches(name.strip().lower(), candidates, n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        hint = f"editions: {', '.join(candidates) or 'none'}"
    if is_slug(name):
        raise UnknownEdition(f"no edition {name!r} in {EDITIONS_DIR}/ ({hint})")
    raise UnknownEdition(
        f"{name!r} is not an edition name: expected the stem of a file in {EDITIONS_DIR}/, "
        f"like 2025-11-04-lille ({hint})"
    )


def edition_path(root: Path, slug: str) -> Path:
    """Return the file of an edition under config/editions/; UnknownEdition if there is none."""
    return root / EDITIONS_DIR / f"{resolve_edition(root, slug)}.yaml"

"""An edition file's mistakes in plain words: what PyYAML and pydantic found, said as what
to do, with the field and the line; their own words never reach the person.

Generic on purpose: a pydantic error is read from its type and location, and what the field
expects is worded from the model's annotation at that location, so a field added to the
model later gets plain words without a line here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from difflib import get_close_matches
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Tag
from pydantic.fields import FieldInfo

from clubjapon_ops.newsletter.model import LANGS, SECTION_CLASSES, SECTION_TYPES, Edition
from clubjapon_ops.printable import printable

Loc = tuple[int | str, ...]
QUOTES = "put this text in quotes"


# ---- YAML ------------------------------------------------------------------------------

_KEY = re.compile(r"^(\s*)(?:- +)*([^\s#'\"{\[][^:#]*?):(?:\s|$)")


def _shown(line: str) -> str:
    """A line of the file as the message quotes it: trimmed, escaped, not too long."""
    text = printable(line.strip())
    return text if len(text) <= 80 else text[:79] + "…"


def _key_column(line: str) -> int | None:
    """The 0-based column where a line's key starts ("  - type: x" -> 4), None if no key."""
    match = _KEY.match(line)
    return match.start(2) if match else None


def _previous(lines: list[str], index: int) -> int | None:
    """The index of the nearest line above ``index`` holding something (not blank, not a
    comment)."""
    for i in range(index - 1, -1, -1):
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            return i
    return None


def _indentation(lines: list[str], index: int) -> str | None:
    """Why line ``index`` is badly indented, naming the column it should start at, or None
    when its indentation matches the line above."""
    line = lines[index]
    column = _key_column(line)
    above = _previous(lines, index)
    if column is None or above is None:
        return None
    above_column = _key_column(lines[above])
    if above_column is None:
        return None
    if not re.search(r":\s*$", lines[above].split(" #")[0]) and column > above_column:
        # Deeper than a line that holds a value: meant as its sibling.
        expected = above_column
    elif column != above_column and lines[above].rstrip().endswith(":"):
        return None  # the first key under a field: any deeper column is right
    elif column < above_column:
        # Shallower than the line above but at none of the columns open above it.
        opened = {c for i in range(above + 1) if (c := _key_column(lines[i])) is not None
                  and c < above_column}
        if column in opened:
            return None
        expected = above_column
    else:
        return None
    key = lines[above][above_column:].split(":", 1)[0]
    return (f"wrong indentation: this key should start in column {expected + 1} "
            f"({expected} spaces before it), like {key!r} on line {above + 1}")


def _quote_inside(text: str) -> bool:
    value = text.split(":", 1)[1].strip() if ":" in text else text.strip()
    return value[:1] in ("'", '"')


_POINTS = re.compile(r"(?:the quotation mark opened|a colon is missing after the field name) "
                     r"on line (\d+)")


def yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    """The line of a YAML syntax error and what to do about it, in plain words."""
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", "") or "")
    context = str(getattr(exc, "context", "") or "")
    lines = text.splitlines() or [""]
    index = min(mark.line, len(lines) - 1) if mark is not None else 0
    column = mark.column if mark is not None else 0
    line = lines[index]
    advice = _advice(lines, index, column, problem, context, exc)
    where = index + 1
    if pointed := _POINTS.match(advice):
        where = int(pointed.group(1))  # the line to correct is above the one PyYAML stopped at
        line = lines[where - 1]
    if ("quoted scalar" in context or "flow" in context) and getattr(
            exc, "context_mark", None) is not None:
        where = exc.context_mark.line + 1  # type: ignore[attr-defined]
        line = lines[min(where - 1, len(lines) - 1)]
    return where, f"{advice} (line {where}: {_shown(line)})"


def _advice(lines: list[str], index: int, column: int, problem: str, context: str,
            exc: yaml.YAMLError) -> str:
    line = lines[index]
    if "'\\t'" in problem:
        return "a tab in the indentation: YAML indents with spaces only, replace it by spaces"
    if problem == "mapping values are not allowed here":
        key_column = _key_column(line)
        first_colon = line.find(":", key_column) if key_column is not None else -1
        if key_column is not None and column > first_colon >= 0:
            return f"{QUOTES}: a colon followed by a space starts a new field in YAML"
        said = _indentation(lines, index)
        if said:
            return said
        above = _previous(lines, index)
        if above is not None and _key_column(lines[above]) is None:
            word = lines[above].strip()
            if re.fullmatch(r"[A-Za-z_]\w*", word):
                return (f"a colon is missing after the field name on line {above + 1}: "
                        f"write '{word}:'")
            return (f"line {above + 1} is not a field: put its text on one line with its field, "
                    "or indent it under the field like the lines it continues")
        return f"{QUOTES}: a colon followed by a space starts a new field in YAML"
    start = getattr(exc, "context_mark", None)
    if problem == "could not find expected ':'" and start is not None:
        word = lines[min(start.line, len(lines) - 1)].strip()
        if re.fullmatch(r"[A-Za-z_]\w*", word):
            return (f"a colon is missing after the field name on line {start.line + 1}: "
                    f"write '{word}:'")
        return (f"line {start.line + 1} is not a field: put its text on one line with its "
                "field, or indent it under the field like the lines it continues")
    if "quoted scalar" in context:
        return ("a quotation mark is opened and never closed: close it at the end of the "
                "text, or put the text in the other kind of quotes")
    found = re.match(r"found character '(.)' that cannot start any token", problem)
    if found or "alias" in context or "anchor" in context:
        char = found.group(1) if found else line[column:column + 1] or "*"
        return f"{QUOTES}: in YAML a text cannot start with {char!r}"
    above = _previous(lines, index)
    if (problem.startswith("expected <block end>, but found '<scalar>'") and above is not None
            and lines[above].count('"') % 2 == 1):
        return (f"the quotation mark opened on line {above + 1} is not closed on its line: "
                "close it at the end of the text")
    if problem.startswith("expected <block end>, but found '<scalar>'") and _quote_inside(line):
        return (f"{QUOTES} from its first character to its last: text goes on after the closing "
                "quote (inside 'single quotes' write an apostrophe twice: 'l''avenir', or use "
                "\"double quotes\")")
    if problem.startswith("expected <block end>") or "block" in context:
        said = _indentation(lines, index)
        if said:
            return said
        above = _previous(lines, index)
        like = (f", like line {above + 1}" if above is not None else "")
        return ("wrong indentation: fields of the same group start in the same column"
                f"{like}; a list item starts with '- '")
    if "flow" in context:
        return ("a '{' or '[' opened on this line is not closed on it: close it, or write the "
                "fields one per line")
    return (f"this line cannot be read as YAML: check its indentation against the line above, "
            f"and {QUOTES} if it holds ': ', ' #' or starts with a quote, '*', '&', '@' or '%'")


# ---- the model -----------------------------------------------------------------------------

_SECTIONS = f"a section with a type: {', '.join(SECTION_TYPES)}"


def _field_annotation(field: FieldInfo) -> Any:
    """A field's annotation with its constraints (pydantic keeps them apart)."""
    if field.metadata:
        return Annotated[(field.annotation, *field.metadata)]
    return field.annotation


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a union (None left out), or the annotation alone."""
    origin = get_origin(annotation)
    if origin is Union or origin is UnionType:
        return [a for a in get_args(annotation) if a is not NoneType]
    return [annotation]


def _strip(annotation: Any) -> Any:
    """An annotation without Annotated and Optional, when that leaves one type."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        members = _members(annotation)
        if len(members) == 1 and members[0] is not annotation:
            annotation = members[0]
            continue
        return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_sections(annotation: Any) -> bool:
    members = [_strip(m) for m in _members(_strip(annotation))]
    return len(members) > 1 and all(m in SECTION_CLASSES.values() for m in members)


def resolve(loc: Loc, root: type[BaseModel] = Edition) -> tuple[Loc, Any]:
    """The location as the file's keys, and the annotation expected there.

    Pydantic puts labels in a location that are no key of the file (a section's type, a
    union's branch); the walk stops at the first part it cannot follow.
    """
    annotation: Any = root
    out: list[int | str] = []
    for i, part in enumerate(loc):
        current = _strip(annotation)
        if _is_sections(current) and part in SECTION_TYPES and i and isinstance(loc[i - 1], int):
            annotation = SECTION_CLASSES[str(part)]
            continue
        if isinstance(part, int) and get_origin(current) is list:
            annotation, out = get_args(current)[0], [*out, part]
            continue
        if _is_model(current) and part in current.model_fields:
            annotation = _field_annotation(current.model_fields[str(part)])
            out.append(part)
            continue
        if isinstance(part, str) and get_origin(current) is dict and part != "[key]":
            annotation = get_args(current)[1]
            out.append(part)
            continue
        branch = _branch(current, part)
        if branch is not None:
            annotation = branch  # a union's branch: pydantic's label, no key of the file
            continue
        break
    return tuple(out), annotation


def _branch(annotation: Any, label: int | str) -> Any:
    """The member of a union that pydantic's location label names, or None."""
    members = _members(annotation)
    if len(members) < 2 or not isinstance(label, str):
        return None
    for member in members:
        # A tagged union (Tag(...) on each member, as URLs by shape): the tag names it.
        if get_origin(member) is Annotated and any(
                isinstance(m, Tag) and m.tag == label for m in get_args(member)[1:]):
            return member
    for member in members:
        bare = _strip(member)
        origin = get_origin(bare)
        if ((origin is dict and label.startswith("dict["))
                or (origin is list and label.startswith("list["))
                or (_is_model(bare) and label == bare.__name__)
                or (bare is str and (label == "str" or label.startswith(
                    ("function-", "constrained-str"))))
                or (bare is int and label == "int")):
            return member
    return None


def _pattern(annotation: Any) -> str | None:
    members = _members(annotation)
    if len(members) != 1 or members[0] is not annotation:
        return next((p for m in members if (p := _pattern(m))), None)
    if get_origin(annotation) is not Annotated:
        return None
    for meta in get_args(annotation)[1:]:
        extra = getattr(meta, "json_schema_extra", None)
        if isinstance(extra, dict) and isinstance(extra.get("pattern"), str):
            return str(extra["pattern"])
    return None


def _bare(words: str) -> str:
    """'a web address' -> 'web address': for 'one ... per language'."""
    return re.sub(r"^(a|an|one) ", "", words)


def expected(annotation: Any) -> str:
    """What a field expects, in words: 'a web address', 'one text per language: fr, en, ja'."""
    if get_origin(annotation) is Annotated:
        pattern = _pattern(annotation)
        if pattern and "https://" in pattern:
            return ("a web address starting with https:// or a mailto: address"
                    if "mailto" in pattern else "a web address starting with https://")
        return expected(get_args(annotation)[0])
    if _is_sections(annotation):
        return _SECTIONS
    members = _members(annotation)
    if len(members) > 1:
        return " or ".join(dict.fromkeys(expected(m) for m in members))
    if members and members[0] is not annotation:
        return expected(members[0])
    origin = get_origin(annotation)
    if origin is Literal:
        values = [str(v) for v in get_args(annotation)]
        if tuple(values) == LANGS:
            return f"a language code ({', '.join(LANGS[:-1])} or {LANGS[-1]})"
        return f"one of {', '.join(values[:-1])} or {values[-1]}" if len(values) > 1 else values[0]
    if origin is dict:
        return f"one {_bare(expected(get_args(annotation)[1]))} per language: {', '.join(LANGS)}"
    if origin is list:
        item = _strip(get_args(annotation)[0])
        if _is_sections(item):
            return "a list of sections, each starting with '- type:'"
        return f"a list, one item per line starting with '- ', each {expected(item)}"
    if _is_model(annotation):
        names = [n for n in annotation.model_fields if n != "type"]
        return f"a group of fields ({', '.join(names)})"
    return {
        str: "a text", int: "a whole number", bool: "true or false",
        date: "a date written YYYY-MM-DD, like 2026-03-12", float: "a number",
    }.get(annotation, "another kind of value")


def found(value: Any) -> str:
    """What the file holds, in words."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = printable(value if len(value) <= 40 else value[:39] + "…")
        return f"the text {shown!r}"
    if isinstance(value, dict):
        if value and set(value) <= set(LANGS):
            return f"one value per language: {', '.join(map(str, value))}"
        return "a group of fields"
    if isinstance(value, list):
        return "a list"
    return "another kind of value"


def _known_keys(annotation: Any) -> list[str]:
    current = _strip(annotation)
    if _is_model(current):
        return [k for k in current.model_fields if k not in ("type", "slug")]
    return []


def _own_words(error: Mapping[str, Any]) -> str | None:
    """The message of one of the model's validators (ValueError), already plain words."""
    cause = (error.get("ctx") or {}).get("error")
    return str(cause) if isinstance(cause, ValueError) else None


def _limit(error: Mapping[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"needs at least {least} item{'s' if least != 1 else ''}: add one"
    if kind == "too_long":
        return f"has too many items: at most {ctx.get('max_length')}"
    bound = {"greater_than_equal": "at least", "greater_than": "more than",
             "less_than_equal": "at most", "less_than": "less than"}[kind]
    key = {"greater_than_equal": "ge", "greater_than": "gt",
           "less_than_equal": "le", "less_than": "lt"}[kind]
    return f"must be {bound} {ctx.get(key)} (found {found(error.get('input'))})"


_MISSING = "missing: add it"
_LIMITS = {"too_short", "too_long", "greater_than_equal", "greater_than", "less_than_equal",
           "less_than"}


def model_problems(errors: Sequence[Mapping[str, Any]], line_of: Callable[[Loc], int],
                   root: type[BaseModel] = Edition) -> list[tuple[int, str]]:
    """Every validation error as (line, 'field: what to do'), one per field, in file order
    and missing fields last; ``root`` is the model validated."""
    said: dict[Loc, str] = {}
    # parent location -> what it expects and the unknown keys under it
    unknown: dict[Loc, tuple[Any, list[str]]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            parent, annotation = resolve(tuple(error["loc"])[:-1], root)
            unknown.setdefault(parent, (annotation, []))[1].append(str(error["loc"][-1]))
    meant: set[Loc] = set()
    for parent, (annotation, keys) in unknown.items():
        known = _known_keys(annotation)
        present = set(keys)
        for key in keys:
            close = get_close_matches(key, [k for k in known if k not in present], n=1,
                                      cutoff=0.6)
            if close:
                meant.add((*parent, close[0]))
                said[(*parent, key)] = f"unknown key: did you mean {close[0]!r}?"
            else:
                said[(*parent, key)] = (f"unknown key: expected one of {', '.join(known)}"
                                        if known else "unknown key: remove it")
    by_field: dict[Loc, list[Mapping[str, Any]]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            continue
        loc = tuple(error["loc"])
        if loc and loc[-1] == "[key]":
            where, _ = resolve(loc[:-2], root)
            key = loc[-2]
            said.setdefault((*where, key), f"unknown language {key!r}: expected one of "
                            f"{', '.join(LANGS)}")
            continue
        where, _ = resolve(loc, root)
        if error["type"] == "missing" and where in meant:
            continue  # the misspelt key above says it
        by_field.setdefault(where, []).append(error)
    for where, group in by_field.items():
        if where in said:
            continue
        said[where] = _field_message(group, root)
    # A union complains in each branch: what one says deeper in the value is the one that fits.
    for where in [w for w in by_field if any(len(o) > len(w) and o[:len(w)] == w for o in said)]:
        said.pop(where, None)
    # In file order, a missing field last: it is often what a stray or misspelt key meant.
    found = sorted(said.items(), key=lambda item: (item[1].startswith(_MISSING),
                                                   line_of(item[0])))
    return [(line_of(loc), f"{dotted(loc)}: {message}") for loc, message in found]


def _field_message(group: list[Mapping[str, Any]], root: type[BaseModel]) -> str:
    first = group[0]
    locs = [tuple(e["loc"]) for e in group]
    common = locs[0]
    for loc in locs[1:]:
        common = common[:_shared(common, loc)]
    _, annotation = resolve(common, root)
    kind = first["type"]
    value = first.get("input")
    if kind == "missing":
        return f"{_MISSING} ({expected(annotation)})"
    if kind == "union_tag_invalid":
        tag = str((first.get("ctx") or {}).get("tag", value))
        close = get_close_matches(tag, SECTION_TYPES, n=1, cutoff=0.6)
        hint = (f"did you mean {close[0]!r}?" if close
                else f"expected one of {', '.join(SECTION_TYPES)}")
        return f"unknown section type {tag!r}: {hint}"
    if kind == "union_tag_not_found":
        return f"a section needs a type: add 'type:' with one of {', '.join(SECTION_TYPES)}"
    if kind in _LIMITS and len(group) == 1:
        return _limit(first)
    words = expected(annotation)
    own = [w for e in group if (w := _own_words(e))]
    if own and isinstance(value, str) and not _pattern(annotation):
        return f"{own[0]} (found {found(value)})"
    if own and isinstance(value, dict):
        return own[0]  # a check of the whole group (an image's file or url): its own words
    message = f"expected {words} (found {found(value)})"
    if isinstance(value, int | float) and not isinstance(value, bool) and "text" in words:
        message += ": put it in quotes"
    return message


def _shared(a: Loc, b: Loc) -> int:
    """How many leading parts two locations share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def dotted(loc: Loc) -> str:
    """Write a location as the file's keys: sections[3].heading.fr."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"

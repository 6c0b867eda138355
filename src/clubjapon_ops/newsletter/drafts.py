"""Start the next edition: a draft from the commented template, or a copy emptied of text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import yaml

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.newsletter.content import (
    EDITIONS_DIR,
    LANGS,
    MAX_SLUG,
    edition_path,
    is_slug,
    list_editions,
    load_edition,
    read_yaml,
)
from clubjapon_ops.newsletter.placeholders import PLACEHOLDERS
from clubjapon_ops.newsletter.render import TEMPLATES_DIR
from clubjapon_ops.newsletter.schema import MODELINE

TEMPLATE = Path("newsletter") / "new-edition.yaml"
_NOTE = (
    "# Copied from {source} by 'clubjapon-ops edition new'.\n"
    "{what}"
    "# 'clubjapon-ops preview {slug} --check' lists the placeholders left and every text\n"
    "# still the same as in an earlier edition; then set status: ready ('send' refuses a draft).\n"
)
_KEPT = ("# Its texts about that edition are placeholders (subject, preheader, title, summary,\n"
         "# paragraphs, quotes, panels); what usually stays (venue, city, figures, lists, images,\n"
         "# the contact button, headings) is kept as it was: check it.\n")
_BLANKED = "# Every text is a placeholder.\n"
# The edition's own news: blanked in a copy. Everything else (venue, city, figures, lists,
# images, a contact button) is what the club says every time.
_NEWS_FIELDS = ("subject", "preheader", "title", "summary")
# Per section type, the fields that are about this edition; None: every text of the section.
_NEWS_IN_SECTION: dict[str, tuple[str, ...] | None] = {
    "text": ("paragraphs",), "quote": None, "panels": None,
}
_LINK_TEXTS = ("label", "text")
# Web addresses, even given per language, are no text: a placeholder there would not load.
_ADDRESSES = frozenset({"url", "link"})  # a button to a web page (this edition's registration, say)


def next_number(root: Path) -> int:
    """One more than the highest number of the editions that load (1 for the first)."""
    numbers = [0]
    for slug in list_editions(root):
        try:
            numbers.append(load_edition(root / EDITIONS_DIR / f"{slug}.yaml").number)
        except ConfigError:
            continue  # a broken file has no number to count
    return max(numbers) + 1


def _is_localized(node: yaml.Node) -> bool:
    return (isinstance(node, yaml.MappingNode) and bool(node.value)
            and all(isinstance(k, yaml.ScalarNode) and k.value in LANGS for k, _ in node.value))


def _fields(node: yaml.Node) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _news(root: yaml.Node) -> Iterator[yaml.Node]:
    """The parts of an edition's tree that are about that edition only."""
    fields = _fields(root)
    yield from (fields[name] for name in _NEWS_FIELDS if name in fields)
    sections = fields.get("sections")
    for section in sections.value if isinstance(sections, yaml.SequenceNode) else []:
        parts = _fields(section)
        kind = parts.get("type")
        kind_name = kind.value if isinstance(kind, yaml.ScalarNode) else ""
        if kind_name in _NEWS_IN_SECTION:
            names = _NEWS_IN_SECTION[kind_name]
            yield from (parts[n] for n in names if n in parts) if names else [section]
        elif kind_name == "cta" and _leads_to_a_page(parts.get("url")):
            yield from (parts[n] for n in _LINK_TEXTS if n in parts)


def _leads_to_a_page(url: yaml.Node | None) -> bool:
    """True for a button to a web page; False for the contact button (no url, or mailto:)."""
    if url is None:
        return False
    scalars = [url] if isinstance(url, yaml.ScalarNode) else [v for _, v in _fields(url).items()]
    return any(isinstance(s, yaml.ScalarNode) and not s.value.startswith("mailto:")
               for s in scalars)


def _replaced(text: str, edits: list[tuple[yaml.Node, str]]) -> str:
    """text with each node's span replaced, a block scalar keeping its line ends."""
    out, done = [], 0
    for node, value in sorted(edits, key=lambda e: e[0].start_mark.index):
        start, end = node.start_mark.index, node.end_mark.index
        if start < done:
            continue  # inside a span already replaced
        span = text[start:end]
        tail = ""
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            # A block scalar's span runs to the next line: keep its line end(s).
            stripped = span.rstrip("\r\n \t")
            tail = span[len(stripped):]
            tail = tail[tail.find("\n"):] if "\n" in tail else tail
        out += [text[done:start], value, tail]
        done = end
    out.append(text[done:])
    return "".join(out)


def _copy_text(text: str, blank_all: bool, number: int, day: str) -> str:
    """The source's text with its news (every text if blank_all) made placeholders, and the
    new number, date and status; its comments and layout as they were."""
    tree = yaml.compose(text, Loader=yaml.SafeLoader)  # aliases were refused by read_yaml
    if tree is None:
        raise ConfigError("the edition to copy is empty")  # read_yaml said so first
    langs: dict[int, str] = {}
    edits: list[tuple[yaml.Node, str]] = []
    for part in [tree] if blank_all else list(_news(tree)):
        for scalar in _texts_with_langs(part, langs):
            edits.append((scalar, PLACEHOLDERS[langs[id(scalar)]]))  # type: ignore[index]
    fields = _fields(tree)
    # A copy is nobody's public letter yet: 'public: true' of its source must not list it.
    for name, value in (("number", str(number)), ("date", day), ("status", "draft"),
                        ("public", "false")):
        if name in fields:
            edits.append((fields[name], value))
    return _replaced(text, edits)


def _texts_with_langs(node: yaml.Node, langs: dict[int, str]) -> Iterator[yaml.ScalarNode]:
    """Every text of every localized value under node; langs notes each one's language."""
    if _is_localized(node):
        for key, value in node.value:
            if isinstance(value, yaml.ScalarNode):
                langs[id(value)] = key.value
                yield value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) not in _ADDRESSES:
                yield from _texts_with_langs(value, langs)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _texts_with_langs(item, langs)


def draft_text(root: Path, slug: str, source: str | None, *, blank_all: bool = False) -> str:
    """The text of a new draft edition named slug, from the template or from source."""
    number, day = next_number(root), slug[:10]
    if source is None:
        template = (root / TEMPLATES_DIR / TEMPLATE).read_text(encoding="utf-8")
        return template.replace("__NUMBER__", str(number)).replace("__DATE__", day)
    path = edition_path(root, source)
    read_yaml(path)  # a broken file, or one of aliases, stops here with its line
    text = _copy_text(path.read_text(encoding="utf-8"), blank_all, number, day)
    note = _NOTE.format(source=source, slug=slug, what=_BLANKED if blank_all else _KEPT)
    first, _, rest = text.partition("\n")
    if first.strip() == MODELINE:  # the editor's schema line stays the first
        return f"{first}\n{note}{rest}"
    return f"{MODELINE}\n{note}\n{text}"


def check_new_name(slug: str) -> None:
    """ConfigError, one sentence, unless slug can name a new edition that will load."""
    if len(slug) > MAX_SLUG:
        # Checked first, and the name cut short: it is no file name and no message line.
        raise ConfigError(f"the edition name {slug[:30]!r}... is {len(slug)} characters long: "
                          f"an edition name has at most {MAX_SLUG}, like 2026-06-18-amiens")
    if not is_slug(slug):
        raise ConfigError(f"{slug!r} is not an edition name: expected YYYY-MM-DD-place in "
                          "lower case, like 2026-06-18-amiens")
    try:
        date.fromisoformat(slug[:10])
    except ValueError:
        # The draft's date is the name's: a draft dated 2026-99-99 could never load.
        raise ConfigError(f"{slug!r} does not start with a real date: {slug[:10]} is no day "
                          "of the calendar; name the edition after its date, like "
                          "2026-06-18-amiens") from None


def new_edition(root: Path, slug: str, source: str | None = None, *,
                blank_all: bool = False) -> Path:
    """Write config/editions/SLUG.yaml as a draft; ConfigError if the name or file is taken."""
    check_new_name(slug)
    path = root / EDITIONS_DIR / f"{slug}.yaml"
    text = draft_text(root, slug, source, blank_all=blank_all)
    path.parent.mkdir(parents=True, exist_ok=True)  # the first edition of a fresh project
    try:
        with path.open("x", encoding="utf-8") as out:  # "x": never over marketing's work
            out.write(text)
    except FileExistsError:
        raise ConfigError(f"{path.relative_to(root)} already exists: edit it, or choose "
                          "another name") from None
    return path

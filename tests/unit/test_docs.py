"""The documentation: README.md is a landing page, links hold, the settings reference is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clubjapon_ops.settings import REFERENCE_FILE, settings_reference

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted([README, REPO / "bench" / "README.md", *(REPO / "docs").rglob("*.md")])

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def _prose(text: str) -> str:
    """The text without fenced code blocks (a '# comment' there is no heading)."""
    return _FENCE.sub("", text)


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (lower case, punctuation dropped)."""
    seen: dict[str, int] = {}
    anchors = set()
    for title in _HEADING.findall(_prose(page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links(page: Path) -> list[str]:
    text = _CODE_SPAN.sub("", _prose(page.read_text(encoding="utf-8")))
    return [t for t in _LINK.findall(text) if not re.match(r"^[a-z]+:", t)]


def test_readme_is_a_landing_page_under_8_kb() -> None:
    size = len(README.read_bytes())
    assert size < 8 * 1024, f"README.md is {size} bytes: move detail to docs/, link to it"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_exists(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_settings_reference_is_generated_from_specs() -> None:
    current = (REPO / REFERENCE_FILE).read_text(encoding="utf-8")
    assert current == settings_reference(), (
        f"{REFERENCE_FILE} differs from the settings' SPECS; regenerate it with\n"
        f"  .venv/bin/python -m clubjapon_ops.settings > {REFERENCE_FILE}"
    )


def _section(page: Path, title: str) -> str:
    text = page.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_ops_says_which_dns_records_to_publish_and_how_to_check_them() -> None:
    # Issue 23: the docs named no SPF or DMARC record, and the bounce address a subdomain
    # of its own needs.
    dns = _section(REPO / "docs" / "ops.md", "DNS records")
    spf = re.findall(r"\| `([a-z.-]+)` \| TXT \| `v=spf1 [^`]*[-~]all`", dns)
    assert spf == ["bounce.club-japon.example.org", "club-japon.example.org"]
    assert "`bounce.club-japon.example.org` | MX" in dns
    dmarc = re.search(r"`_dmarc\.club-japon\.example\.org` \| TXT \| `(v=DMARC1;[^`]*)`", dns)
    assert dmarc is not None
    tags = dict(t.strip().split("=", 1) for t in dmarc.group(1).split(";") if t.strip())
    assert tags["p"] == "none" and tags["rua"].startswith("mailto:") and tags["aspf"] == "r"
    assert "](#dkim)" in dns and "| PTR |" in dns and "STARTTLS" in dns
    for result in ("SPF: PASS", "DKIM: 'PASS'", "DMARC: 'PASS'", "Show original",
                   "--test-to"):
        assert result in dns, result
    assert "SMTP_EIGHT_BIT" in dns and "OpenDKIM" in dns  # a signing relay needs 7-bit

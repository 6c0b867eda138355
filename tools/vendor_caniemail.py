"""Trim the caniemail.com support data to what the lint needs, from a clone of its repository.

Usage: python tools/vendor_caniemail.py PATH/TO/caniemail > \
           src/clubjapon_ops/newsletter/data/caniemail.json

Keeps, for each feature the lint can detect in rendered HTML, the latest tested support in
Outlook for Windows (the Word engine) and in each Gmail platform, with the notes those refer
to. See src/clubjapon_ops/newsletter/data/SOURCE.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

CLIENTS = {  # caniemail family / platform -> the name the lint shows
    ("outlook", "windows"): "Outlook for Windows",
    ("gmail", "desktop-webmail"): "Gmail (webmail)",
    ("gmail", "ios"): "Gmail (iOS app)",
    ("gmail", "android"): "Gmail (Android app)",
    ("gmail", "mobile-webmail"): "Gmail (mobile webmail)",
}
# How a feature shows in HTML, for the slugs whose name does not say it plainly.
SPECIAL: dict[str, dict[str, Any]] = {
    "css-at-media": {"at_rule": "media"},
    "css-at-font-face": {"at_rule": "font-face"},
    "css-at-import": {"at_rule": "import"},
    "css-at-keyframes": {"at_rule": "keyframes"},
    "css-at-supports": {"at_rule": "supports"},
    "css-at-media-prefers-color-scheme": {"media_feature": "prefers-color-scheme"},
    "css-at-media-prefers-reduced-motion": {"media_feature": "prefers-reduced-motion"},
    "css-at-media-orientation": {"media_feature": "orientation"},
    "css-at-media-hover": {"media_feature": "hover"},
    "css-at-media-device-pixel-ratio": {"media_feature": "device-pixel-ratio"},
    "css-display-flex": {"value": ["display", "(inline-)?flex"]},
    "css-display-grid": {"value": ["display", "(inline-)?grid"]},
    "css-display-none": {"value": ["display", "none"]},
    "css-important": {"pattern": r"!\s*important"},
    "css-variables": {"pattern": r"var\(\s*--"},
    "css-unit-calc": {"pattern": r"\bcalc\("},
    "css-function-clamp": {"pattern": r"\bclamp\("},
    "css-function-min": {"pattern": r"\bmin\("},
    "css-function-max": {"pattern": r"\bmax\("},
    "css-linear-gradient": {"pattern": r"\blinear-gradient\("},
    "css-radial-gradient": {"pattern": r"\bradial-gradient\("},
    "css-conic-gradient": {"pattern": r"\bconic-gradient\("},
    "css-rgb": {"pattern": r"\brgb\("},
    "css-rgba": {"pattern": r"\brgba\("},
    "css-unit-rem": {"pattern": r"[\d.]rem\b"},
    "css-unit-vw": {"pattern": r"[\d.]vw\b"},
    "css-unit-vh": {"pattern": r"[\d.]vh\b"},
    "css-unit-vmin": {"pattern": r"[\d.]vmin\b"},
    "css-unit-vmax": {"pattern": r"[\d.]vmax\b"},
    "css-unit-ch": {"pattern": r"[\d.]ch\b"},
    "css-unit-ex": {"pattern": r"[\d.]ex\b"},
    "css-unit-em": {"pattern": r"[\d.]em\b"},
    "css-sytem-ui": {"pattern": r"\bsystem-ui\b"},
    "css-margin": {"properties": ["margin", "margin-top", "margin-right", "margin-bottom",
                                  "margin-left"]},
    "css-padding": {"properties": ["padding", "padding-top", "padding-right",
                                   "padding-bottom", "padding-left"]},
    "css-border": {"properties": ["border", "border-top", "border-right", "border-bottom",
                                  "border-left", "border-width", "border-style",
                                  "border-color"]},
    "css-pseudo-class-hover": {"selector": ":hover"},
    "css-pseudo-class-focus": {"selector": ":focus"},
    "css-pseudo-class-active": {"selector": ":active"},
    "css-pseudo-class-visited": {"selector": ":visited"},
    "css-pseudo-class-lang": {"selector": ":lang("},
    "css-selector-attribute": {"selector": "["},
    "html-h1-h6": {"elements": ["h1", "h2", "h3", "h4", "h5", "h6"]},
    "html-lists": {"elements": ["ul", "ol", "li", "dl", "dt", "dd"]},
    "html-table": {"elements": ["table"]},
    "html-style": {"elements": ["style"]},
    "html-align": {"attributes": ["align"]},
    "html-valign": {"attributes": ["valign"]},
    "html-width": {"attributes": ["width"]},
    "html-height": {"attributes": ["height"]},
    "html-dir": {"attributes": ["dir"]},
    "html-lang": {"attributes": ["lang"]},
    "html-role": {"attributes": ["role"]},
    "html-background": {"attributes": ["background"]},
    "html-cellpadding": {"attributes": ["cellpadding"]},
    "html-cellspacing": {"attributes": ["cellspacing"]},
    "html-target": {"attributes": ["target"]},
    "html-hidden": {"attributes": ["hidden"]},
    "html-loading-attribute": {"attributes": ["loading"]},
    "html-srcset": {"attributes": ["srcset"]},
    "html-aria-hidden": {"attributes": ["aria-hidden"]},
    "html-aria-label": {"attributes": ["aria-label"]},
    "html-aria-labelledby": {"attributes": ["aria-labelledby"]},
    "html-aria-describedby": {"attributes": ["aria-describedby"]},
    "html-aria-live": {"attributes": ["aria-live"]},
    "html-mailto-links": {"pattern": r"href=\"mailto:"},
    "html-anchor-links": {"pattern": r"href=\"#"},
}
# Elements named by their slug (html-<tag>); the others (forms, media) are never rendered.
ELEMENTS = {"abbr", "acronym", "address", "audio", "base", "bdi", "blockquote", "body", "code",
            "del", "dfn", "dialog", "div", "form", "hr", "img", "link", "marquee", "meter",
            "object", "p", "picture", "pre", "progress", "rp", "rt", "ruby", "select",
            "small", "span", "strike", "strong", "svg", "textarea", "video", "wbr"}


def front_matter(text: str) -> dict[str, Any]:
    """The YAML between the first two '---' lines (tabs, which YAML refuses, as spaces)."""
    parts = re.split(r"^---\s*$", text, maxsplit=2, flags=re.M)
    data = yaml.safe_load(parts[1].replace("\t", "    "))
    return data if isinstance(data, dict) else {}


def detector(slug: str) -> dict[str, Any] | None:
    """How the lint finds the feature in HTML, or None when it cannot."""
    if slug in SPECIAL:
        return SPECIAL[slug]
    if slug.startswith("html-") and slug[5:] in ELEMENTS:
        return {"elements": [slug[5:]]}
    if slug.startswith("css-") and not slug.startswith(
            ("css-at-", "css-unit-", "css-pseudo-", "css-selector-", "css-function-")):
        return {"properties": [slug[4:]]}
    return None


def latest(versions: dict[str, str]) -> tuple[str, str]:
    """The last tested version and its result (the data lists them oldest first)."""
    version = list(versions)[-1]
    return version, str(versions[version])


def main(repo: Path) -> None:
    """Print the trimmed JSON for the repository at ``repo``."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                              text=True, check=True).stdout

    commit = git("rev-parse", "HEAD").strip()
    features: dict[str, Any] = {}
    skipped: list[str] = []
    for name in sorted(git("ls-tree", "-r", "--name-only", "HEAD", "_features").split()):
        slug = Path(name).stem
        found = detector(slug)
        if slug.startswith("_") or found is None:
            continue
        try:
            data = front_matter(git("show", f"HEAD:{name}"))
        except yaml.YAMLError:
            skipped.append(slug)
            continue
        stats = data.get("stats") or {}
        support: dict[str, Any] = {}
        for (family, platform), client in CLIENTS.items():
            versions = (stats.get(family) or {}).get(platform)
            if versions:
                version, result = latest(versions)
                support[client] = {"version": version, "result": result}
        limited = {c: s for c, s in support.items() if s["result"] != "y"}
        if not limited:
            continue  # supported everywhere the lint looks: nothing to say
        cited = set(re.findall(r"#(\d+)", " ".join(s["result"] for s in limited.values())))
        notes = {str(k): str(v) for k, v in (data.get("notes_by_num") or {}).items()
                 if str(k) in cited}
        features[slug] = {
            "title": str(data.get("title", slug)),
            "url": f"https://www.caniemail.com/features/{slug}/",
            "detect": found, "support": limited, "notes": notes,
        }
    print(json.dumps({
        "source": "https://github.com/hteumeuleu/caniemail", "commit": commit,
        "licence": "MIT (LICENSE of the repository, which holds the data)",
        "clients": list(CLIENTS.values()), "unparsed": skipped, "features": features,
        "results": {"y": "supported", "n": "not supported", "a": "partially supported",
                    "u": "support unknown"},
    }, ensure_ascii=False, indent=0, sort_keys=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""The email's HTML part escapes every value whatever the template's file name; text stays raw."""

from __future__ import annotations

from pathlib import Path

import pytest

from clubjapon_ops.contacts import Contact
from clubjapon_ops.newsletter import render
from clubjapon_ops.newsletter.service import load_newsletter
from clubjapon_ops.settings import Settings
from tests.newsletter.conftest import SLUG
from tests.web.payload import ESCAPED, PAYLOAD, injected, poison_edition


@pytest.mark.parametrize("name", ["email.html.j2", "email.j2", "email.jinja"])
@pytest.mark.parametrize("lang", ["fr", "ja"])
def test_the_html_part_is_escaped_whatever_the_template_name(
    project: Path, project_settings: Settings, monkeypatch: pytest.MonkeyPatch, name: str,
    lang: str,
) -> None:
    folder = project / "templates" / "newsletter"
    (folder / name).write_text((folder / "email.html.j2").read_text(encoding="utf-8"),
                               encoding="utf-8")
    monkeypatch.setattr(render, "HTML_TEMPLATE", f"newsletter/{name}")
    poison_edition(project / "config" / "editions" / f"{SLUG}.yaml")
    reader = Contact(email="reader@example.com", source="csv", first_name=PAYLOAD,
                     last_name=PAYLOAD, language=lang)
    message = load_newsletter(project_settings, SLUG).personalise(reader)
    assert injected(message.html) == []
    assert message.html.count(ESCAPED) >= 10
    assert PAYLOAD in message.text and "&lt;" not in message.text  # plain text is not HTML

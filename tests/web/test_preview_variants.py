"""The preview lets marketing see each variant of an edition with sections for part of it."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from tests.delivery.test_audience import ONLY_FOR, SECTORS
from tests.web.conftest import SLUG


def test_each_variant_is_shown_with_who_gets_it(preview: FlaskClient, home: Path) -> None:
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text(path.read_text("utf-8").replace(*ONLY_FOR)
                    + "\naudience:\n  lists: [Membres]\n", encoding="utf-8")
    body = preview.get(f"/preview/{SLUG}?lang=fr").get_data(as_text=True)
    assert "on Membres" in body  # the audience, before anything is sent
    assert 'id="audience-counts"' in body  # and who a send would plan, from the store
    assert 'id="variant-0"' in body and 'id="variant-1"' in body
    assert "a reader on Opéra 2025: shows section 2" in body
    assert "a reader on none of these lists: hides section 2" in body
    without = preview.get(f"/preview/{SLUG}/email.html?lang=fr&variant=0")
    opera = preview.get(f"/preview/{SLUG}/email.html?lang=fr&variant=1")
    assert SECTORS not in without.get_data(as_text=True)
    assert SECTORS in opera.get_data(as_text=True)
    assert preview.get(f"/preview/{SLUG}?lang=fr&variant=7").status_code == 400

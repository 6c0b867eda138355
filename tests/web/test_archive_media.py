"""The public archive shows an edition's image file as its readers got it: the published copy
at PUBLIC_URL/media/, which the same app serves (issue 24, item 1)."""

from __future__ import annotations

import io
import re
from pathlib import Path

from flask.testing import FlaskClient
from PIL import Image

from clubjapon_ops.store import Store
from tests.web.archive_helpers import mark_sent
from tests.web.conftest import SLUG

SECTION = ("  - type: image\n    file: plan.png\n"
           "    alt: { fr: Le plan, en: The map, ja: 地図 }\n")


def test_an_archived_edition_shows_its_published_image(
    public: FlaskClient, web_store: Store, home: Path
) -> None:
    out = io.BytesIO()
    Image.new("RGB", (480, 320), (10, 120, 60)).save(out, "PNG")
    media = home / "config" / "editions" / "media"
    media.mkdir()
    (media / "plan.png").write_bytes(out.getvalue())
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text(path.read_text("utf-8").replace("\nsections:\n", "\nsections:\n" + SECTION, 1),
                    encoding="utf-8")
    mark_sent(web_store, SLUG)
    page = public.get(f"/editions/{SLUG}/en").get_data(as_text=True)
    img = re.search(r'<img[^>]*src="https://[^"/]+/media/([0-9a-f]{64}\.png)"[^>]*>', page)
    assert img is not None, page[:3000]
    assert 'width="480"' in img.group() and 'height="320"' in img.group()
    served = public.get(f"/media/{img.group(1)}")
    assert served.status_code == 200 and served.data == out.getvalue()
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"

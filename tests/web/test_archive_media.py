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


def sent_with_a_plan(home: Path, web_store: Store) -> bytes:
    """The edition with plan.png (480 x 320) first, marked sent; the PNG's bytes."""
    out = io.BytesIO()
    Image.new("RGB", (480, 320), (10, 120, 60)).save(out, "PNG")
    media = home / "config" / "editions" / "media"
    media.mkdir()
    (media / "plan.png").write_bytes(out.getvalue())
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    path.write_text(path.read_text("utf-8").replace("\nsections:\n", "\nsections:\n" + SECTION, 1),
                    encoding="utf-8")
    mark_sent(web_store, SLUG)
    return out.getvalue()


def test_an_archived_edition_shows_its_published_image(
    public: FlaskClient, web_store: Store, home: Path
) -> None:
    png = sent_with_a_plan(home, web_store)
    page = public.get(f"/editions/{SLUG}/en").get_data(as_text=True)
    img = re.search(r'<img[^>]*src="https://[^"/]+/media/([0-9a-f]{64}\.png)"[^>]*>', page)
    assert img is not None, page[:3000]
    assert 'width="480"' in img.group() and 'height="320"' in img.group()
    served = public.get(f"/media/{img.group(1)}")
    assert served.status_code == 200 and served.data == png
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_an_archived_edition_outlives_its_photo_file(
    public: FlaskClient, web_store: Store, home: Path
) -> None:
    """Marketing tidies config/editions/media/ after a send: the archive page of the sent
    edition still shows the copy readers got, or, with no record of it, reads on without the
    picture; it never becomes a 404."""
    sent_with_a_plan(home, web_store)
    media = home / "config" / "editions" / "media"
    before = public.get(f"/editions/{SLUG}/fr")
    assert before.status_code == 200
    src = re.search(r'<img[^>]*src="([^"]*/media/[0-9a-f]{64}\.png)"', before.get_data(True))
    assert src is not None

    (media / "plan.png").unlink()
    after = public.get(f"/editions/{SLUG}/fr")
    assert after.status_code == 200
    assert re.findall(r'<img[^>]*src="([^"]*/media/[^"]*)"', after.get_data(True)) == [src[1]]

    for record in (home / "var" / "media" / ".names").iterdir():
        record.unlink()  # a copy published before such records were kept
    bare = public.get(f"/editions/{SLUG}/fr")
    assert bare.status_code == 200
    page = bare.get_data(as_text=True)
    assert "/media/" not in page and "Le plan" not in page
    assert "Des liens toujours plus forts" in page  # the rest of the letter reads on

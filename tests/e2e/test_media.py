"""Images that live with the edition (issue 24, item 1): a file under config/editions/media/
goes through the real CLI (check, preview, a test copy to the outbox) and the real `web` app
(its WSGI client and waitress on 127.0.0.1), and what must be refused is refused."""

from __future__ import annotations

import email
import io
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from email import policy
from pathlib import Path

import pytest
import requests
from PIL import Image

from clubjapon_ops.settings import load_settings
from clubjapon_ops.store import open_store
from clubjapon_ops.web import create_app, create_preview_app
from tests.conftest import REPO
from tests.fakes.wsgi import served

pytestmark = pytest.mark.e2e
SLUG = "2025-11-04-lille"
PUBLIC = "https://club-japon.example.org"
MEDIA_URL = re.compile(re.escape(PUBLIC) + r"/media/([0-9a-f]{64}\.(?:jpg|png|gif|webp))")
# The preview's HTML file (--out FOLDER beside var/) shows the copies published locally.
LOCAL_MEDIA = re.compile(r'src="\.\./var/media/([0-9a-f]{64}\.(?:jpg|png|gif|webp))"')
PHOTO = "photos/table-ronde.jpg"


def photo(width: int, height: int) -> bytes:
    """A photo-like JPEG: noise over a gradient compresses as badly as a real photo."""
    noise = Image.effect_noise((width, height), 60).convert("RGB")
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    Image.blend(noise, gradient, 0.5).save(out, "JPEG", quality=92)
    return out.getvalue()


def image_section(file: str) -> str:
    return (f"  - type: image\n    file: {file}\n"
            "    alt: { fr: Table ronde, en: Round table, ja: 座談会 }\n")


def with_image(home: Path, file: str) -> int:
    """Put an image section first in the edition; return the line of its file: field."""
    path = home / "config" / "editions" / f"{SLUG}.yaml"
    text = path.read_text(encoding="utf-8")
    assert "\nsections:\n" in text
    path.write_text(text.replace("\nsections:\n", "\nsections:\n" + image_section(file), 1),
                    encoding="utf-8")
    return text[:text.index("\nsections:\n")].count("\n") + 4


@pytest.fixture
def home(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "config" / "editions" / "media" / "photos").mkdir(parents=True)
    return tmp_path


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "SMTP_", "HUBSPOT_", "BREVO_", "SENDGRID_"))}
    env.update({"CLUBJAPON_HOME": str(home), "CLUBJAPON_TRANSPORT": "outbox",
                "CLUBJAPON_PUBLIC_URL": PUBLIC,
                "CLUBJAPON_SECRET": "test-secret-0123456789abcdef"})
    return env


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", *args], env=env_for(home),
                          capture_output=True, text=True, timeout=120, check=False)


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_photo_file_is_published_resized_and_the_email_links_it(home: Path) -> None:
    original = photo(2400, 1600)
    assert len(original) > 300 * 1024
    source = home / "config" / "editions" / "media" / PHOTO
    source.write_bytes(original)
    with_image(home, PHOTO)
    config_before = files_under(home / "config")

    check = cli(home, "preview", SLUG, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    preview = cli(home, "preview", SLUG, "--lang", "en", "--out", str(home / "out"))
    assert preview.returncode == 0, preview.stderr
    # The .eml is what readers get: the image from CLUBJAPON_PUBLIC_URL.
    eml = email.message_from_bytes((home / "out" / "en-emily.clarke.eml").read_bytes(),
                                   policy=policy.default)
    names = MEDIA_URL.findall(eml.get_body(("html",)).get_content())  # type: ignore[union-attr]
    assert len(names) == 1
    # The HTML file shows the copy published on this machine, by a path relative to it, so a
    # laptop's preview shows the photo before the public server has it (issue 24).
    html = (home / "out" / "en-emily.clarke.html").read_text(encoding="utf-8")
    assert MEDIA_URL.findall(html) == []
    img = re.search(r'<img[^>]*src="([^"]*/media/[^"]*)"[^>]*>', html)
    assert img is not None and img.group(1) == f"../var/media/{names[0]}"
    assert (home / "out" / img.group(1)).resolve() == home / "var" / "media" / names[0]
    assert 'width="600"' in img.group() and 'height="400"' in img.group()

    copy = home / "var" / "media" / names[0]
    published = Image.open(copy)
    assert published.size == (1200, 800)
    assert copy.stat().st_size <= 300 * 1024
    # The original and everything else under config/ are untouched.
    assert files_under(home / "config") == config_before

    # The test copy in the outbox points at the same published copy.
    sent = cli(home, "send", SLUG, "--test-to", "me@example.org")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    emls = sorted((home / "var" / "outbox").rglob("*.eml"))
    assert emls
    message = email.message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    body = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert MEDIA_URL.findall(body) == names

    # `web` serves it with immutable caching, through its WSGI client...
    settings = load_settings(home, environ=env_for(home))
    app = create_app(settings, lambda: open_store(settings.database_url))
    client = app.test_client()
    answer = client.get(f"/media/{names[0]}", headers={"Host": "club-japon.example.org"})
    assert answer.status_code == 200
    assert answer.data == copy.read_bytes()
    assert answer.mimetype == "image/jpeg"
    assert "immutable" in answer.headers["Cache-Control"]
    again = client.get(f"/media/{names[0]}", headers={
        "Host": "club-japon.example.org", "If-None-Match": answer.headers["ETag"]})
    assert again.status_code == 304
    # ... and served by waitress on 127.0.0.1.
    with served(app) as base, urllib.request.urlopen(f"{base}/media/{names[0]}") as fetched:
        assert fetched.status == 200
        assert fetched.read() == copy.read_bytes()
        assert fetched.headers["Content-Type"] == "image/jpeg"


def test_the_served_preview_shows_the_photo_published_on_this_machine(home: Path) -> None:
    """A laptop's preview page: the photo from the preview's own server, not from
    CLUBJAPON_PUBLIC_URL, which does not have it yet (issue 24)."""
    (home / "config" / "editions" / "media" / PHOTO).write_bytes(photo(800, 600))
    with_image(home, PHOTO)
    settings = load_settings(home, environ=env_for(home))
    app = create_preview_app(settings, lambda: open_store(settings.database_url))
    with served(app) as base:
        html = requests.get(f"{base}/preview/{SLUG}/email.html?lang=ja", timeout=30)
        assert html.status_code == 200
        assert "img-src 'self'" in html.headers["Content-Security-Policy"]
        assert MEDIA_URL.findall(html.text) == []
        (src,) = re.findall(r'<img[^>]*src="(/media/[0-9a-f]{64}\.jpg)"', html.text)
        image = requests.get(base + src, timeout=30)
        assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
        assert image.content == (home / "var" / "media" / src.split("/")[-1]).read_bytes()
        # Only published copies: the source file under config/ is not reachable.
        assert requests.get(f"{base}/media/{PHOTO}", timeout=30).status_code == 404


def test_a_light_image_is_published_as_it_is_and_its_size_read(home: Path) -> None:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 30, 30)).save(out, "PNG")
    (home / "config" / "editions" / "media" / "logo.png").write_bytes(out.getvalue())
    with_image(home, "logo.png")
    preview = cli(home, "preview", SLUG, "--lang", "fr", "--out", str(home / "out"))
    assert preview.returncode == 0, preview.stderr
    html = (home / "out" / "fr-camille.martin.html").read_text(encoding="utf-8")
    (name,) = LOCAL_MEDIA.findall(html)
    assert (home / "var" / "media" / name).read_bytes() == out.getvalue()
    img = re.search(r"<img[^>]*/media/[^>]*>", html)
    assert img is not None and 'width="300"' in img.group() and 'height="200"' in img.group()


def test_web_serves_nothing_but_published_copies(home: Path) -> None:
    (home / "var" / "media").mkdir(parents=True)
    secret = home / "config" / "clubjapon.toml"
    planted = home / "var" / "media" / f"{'a' * 64}.png"
    planted.symlink_to(secret)  # a link in var/media/ is not followed either
    settings = load_settings(home, environ=env_for(home))
    client = create_app(settings, lambda: open_store(settings.database_url)).test_client()
    for path in ("/media/", "/media/../config/clubjapon.toml",
                 "/media/..%2Fconfig%2Fclubjapon.toml", "/media/clubjapon.toml",
                 f"/media/{'a' * 64}.png", f"/media/{'b' * 64}.svg",
                 "/media/.sources", "/config/clubjapon.toml",
                 f"/media/{'c' * 64}.jpg"):
        answer = client.get(path, headers={"Host": "club-japon.example.org"})
        assert answer.status_code == 404, path
        assert secret.read_bytes() not in answer.data


def fifty_megapixels() -> bytes:
    out = io.BytesIO()
    Image.new("L", (8660, 5774), 128).save(out, "PNG")  # 50 Mpx: a few KB of PNG
    return out.getvalue()


REFUSED = {
    "not-an-image": ("fake.png", lambda m: (m / "fake.png").write_text("hello, not an image"),
                     "is not a PNG, JPEG, GIF or WebP image"),
    "fifty-megapixels": ("huge.png", lambda m: (m / "huge.png").write_bytes(fifty_megapixels()),
                         "has 50 megapixels"),
    "svg-with-script": ("x.svg", lambda m: (m / "x.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        "SVG images are not allowed"),
    "svg-named-png": ("y.png", lambda m: (m / "y.png").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>'),
        "is not a PNG, JPEG, GIF or WebP image"),
    "symlink-out": ("out.png", lambda m: (m / "out.png").symlink_to(
        m.parent.parent / "clubjapon.toml"), "leads out of config/editions/media/"),
    "dot-dot": ("../clubjapon.toml", lambda m: None, "without '..'"),
    "dot-dot-inside": ("photos/../../clubjapon.toml", lambda m: None, "without '..'"),
    "absolute": ("/etc/passwd.png", lambda m: None, "without '..', '/' first"),
    "missing": ("absent.jpg", lambda m: None, "no file 'absent.jpg' in config/editions/media/"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_bad_image_file_is_refused_in_a_sentence_and_never_published(
    home: Path, case: str
) -> None:
    name, make, said = REFUSED[case]
    make(home / "config" / "editions" / "media")
    line = with_image(home, name)
    # Every command refuses it the same way; one case goes through all of them.
    commands: list[tuple[str, ...]] = [("preview", SLUG, "--check")]
    if case == "symlink-out":
        commands += [("preview", SLUG, "--lang", "ja"),
                     ("send", SLUG, "--test-to", "me@example.org")]
    for args in commands:
        result = cli(home, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        (message,) = result.stderr.strip().splitlines()
        assert f"{SLUG}.yaml:{line}: sections[0].file: " in message
        assert said in message
        assert "Traceback" not in result.stderr and "PIL" not in result.stderr
    media = home / "var" / "media"
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]
    outbox = home / "var" / "outbox"
    assert not outbox.exists() or not list(outbox.rglob("*.eml"))


def test_an_image_still_heavy_once_published_is_a_warning_of_the_check(home: Path) -> None:
    noise = Image.effect_noise((1000, 700), 80).convert("RGB")
    transparent = Image.merge("RGBA", (*noise.split(), Image.new("L", noise.size, 200)))
    out = io.BytesIO()
    transparent.save(out, "PNG")  # noise with transparency: no format makes it light
    (home / "config" / "editions" / "media" / "noise.png").write_bytes(out.getvalue())
    line = with_image(home, "noise.png")
    check = cli(home, "preview", SLUG, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    (warning,) = [w for w in check.stdout.splitlines() if "[image-weight]" in w]
    assert warning.startswith(f"warning: config/editions/{SLUG}.yaml:{line} sections[0].file: ")
    assert "'noise.png' still weighs" in warning


def test_var_stays_owner_only_and_the_copies_are_readable_by_the_proxy(home: Path) -> None:
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (0, 90, 200)).save(out, "PNG")
    (home / "config" / "editions" / "media" / "dot.png").write_bytes(out.getvalue())
    with_image(home, "dot.png")
    assert cli(home, "preview", SLUG, "--check").returncode == 0
    assert (home / "var").stat().st_mode & 0o777 == 0o700
    assert (home / "var" / "media").stat().st_mode & 0o755 == 0o755
    (copy,) = (home / "var" / "media").glob("*.png")
    assert copy.stat().st_mode & 0o644 == 0o644


def test_a_phone_photo_is_turned_upright_and_loses_its_position(home: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # held upright: the pixels lie on their side
    exif.get_ifd(0x8825)[2] = (50.0, 37.0, 48.0)  # GPSLatitude: where it was taken
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 100, 0)).save(out, "JPEG", exif=exif)
    (home / "config" / "editions" / "media" / "phone.jpg").write_bytes(out.getvalue())
    assert 0x8825 in Image.open(io.BytesIO(out.getvalue())).getexif()
    with_image(home, "phone.jpg")
    preview = cli(home, "preview", SLUG, "--lang", "en", "--out", str(home / "out"))
    assert preview.returncode == 0, preview.stderr
    html = (home / "out" / "en-emily.clarke.html").read_text(encoding="utf-8")
    (name,) = LOCAL_MEDIA.findall(html)
    img = re.search(r"<img[^>]*/media/[^>]*>", html)
    assert img is not None and 'width="300"' in img.group() and 'height="400"' in img.group()
    copy = Image.open(home / "var" / "media" / name)
    assert copy.size == (300, 400)
    assert 0x8825 not in copy.getexif() and copy.getexif().get(0x0112, 1) == 1

"""Images that live with the editions: config/editions/media/ in, var/media/ out.

An image section may name a file under config/editions/media/ instead of an https URL.
The file is checked (inside that folder, a PNG, JPEG, GIF or WebP that Pillow decodes, not
a decompression bomb), and published once into var/media/<sha256>.<ext>: byte for byte when
it is light enough, else resized to 1,200 px wide (twice the 600 px shown, for sharp phone
screens) and recompressed. The original is never touched. `web` serves var/media/ at
CLUBJAPON_PUBLIC_URL/media/, and the email gets that URL and the shown width and height.
Nothing here writes anywhere but var/media/.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from clubjapon_ops.errors import ConfigError
from clubjapon_ops.files import private_folder
from clubjapon_ops.newsletter.content import EDITIONS_DIR, Loc, dotted, locate_fields
from clubjapon_ops.newsletter.model import Edition, ImageSection

MEDIA_DIR = EDITIONS_DIR / "media"
PUBLISHED_DIR = Path("var") / "media"
# Where the copy of each source file is recorded, so each one is worked on once.
_DONE_DIR = ".sources"
# Where the last copy published under each file name is recorded: the archive page of an
# edition sent already still shows its photo once the file has left config/editions/media/.
_NAMES_DIR = ".names"
MAX_WIDTH = 1200  # twice the 600 px an email shows: sharp on a phone's screen
MAX_BYTES = 300 * 1024  # what a reader on a phone's data plan should not wait for
SHOWN_WIDTH = 600  # the email's content column
# A photo from a phone has 12 megapixels, a good camera's 24. A 50-megapixel file decodes
# to 200 MB of memory for an image shown 600 px wide: refused before it is decoded.
MAX_PIXELS = 40_000_000
MAX_FILE_BYTES = 40 * 1024 * 1024
# Pillow's format names → the published copy's extension (its real format, not its name's).
FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp"}
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif",
                 "webp": "image/webp"}
# The only names web serves: a published copy, never a path.
PUBLISHED_NAME = re.compile(r"[0-9a-f]{64}\.(?:png|jpg|gif|webp)")
_GPS_IFD = 0x8825  # EXIF's GPS block: where a phone writes where the photo was taken
_ORIENTATION = 0x0112  # EXIF: how the camera was held (1: as the pixels are)
# Changing these changes every copy: they are part of what names a source's copy.
_RECIPE = f"v1 {MAX_WIDTH} {MAX_BYTES}".encode()


class ImageRefused(ValueError):
    """An image file that cannot be published; its message is one plain sentence."""


class ImageMissing(ImageRefused):
    """No such file under config/editions/media/ (never there, or removed since)."""


@dataclass(frozen=True)
class Published:
    """A published copy: its name under var/media/, its pixels and weight, and the source's."""

    name: str
    width: int
    height: int
    size: int
    source_width: int
    source_height: int
    source_size: int

    @property
    def resized(self) -> bool:
        """True when the copy is not the original byte for byte."""
        return (self.width, self.size) != (self.source_width, self.source_size)


def _kb(size: int) -> str:
    return f"{size / 1024:,.0f} KB"


def source_path(root: Path, name: str) -> Path:
    """The file ``name`` under config/editions/media/; ImageRefused when it is not one there."""
    folder = (root / MEDIA_DIR).resolve()
    path = (folder / name).resolve()
    # A symbolic link (or a name) leading out of the folder is refused as if it were absent:
    # nothing else under config/ or on the machine ever becomes a public image.
    if not path.is_relative_to(folder):
        raise ImageRefused(
            f"{name!r} leads out of {MEDIA_DIR.as_posix()}/ (a link to another folder?): "
            f"copy the image itself into {MEDIA_DIR.as_posix()}/")
    if not path.is_file():
        raise ImageMissing(
            f"no file {name!r} in {MEDIA_DIR.as_posix()}/: put the image there, or correct "
            "the name (letters' case counts)")
    return path


def _read(path: Path, name: str) -> bytes:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageRefused(
            f"{name!r} weighs {size / 1024 / 1024:.0f} MB, more than an image for an email "
            f"can ({MAX_FILE_BYTES // 1024 // 1024} MB): export it at most {MAX_WIDTH} px wide")
    return path.read_bytes()


def _decoded(data: bytes, name: str) -> tuple[object, str]:
    """The decoded image and its format, or ImageRefused saying why not."""
    from PIL import Image  # Pillow loads only when an edition has a file image

    not_an_image = ImageRefused(
        f"{name!r} is not a PNG, JPEG, GIF or WebP image that can be read (damaged, or "
        "another kind of file renamed): export it again as JPEG or PNG")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it: refuse there too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
            pixels = image.width * image.height
            if pixels > MAX_PIXELS:  # read from the header: nothing decoded yet
                raise ImageRefused(
                    f"{name!r} has {pixels / 1e6:.0f} megapixels ({image.width}×"
                    f"{image.height}), more than the {MAX_PIXELS // 1_000_000} an image for "
                    f"an email may have: export it at most {MAX_WIDTH} px wide")
            image.load()
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRefused(
            f"{name!r} is too many pixels to open safely: export it at most {MAX_WIDTH} px "
            "wide") from None
    except Exception:
        raise not_an_image from None
    fmt = str(image.format)
    if fmt not in FORMATS:
        raise not_an_image
    return image, fmt


def _encoded(image: object, fmt: str) -> tuple[bytes, str]:
    """The image written in its format (a PNG without transparency as JPEG if lighter)."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    opaque = "A" not in image.getbands() and "transparency" not in image.info
    if fmt == "PNG" or fmt == "GIF":
        out = io.BytesIO()
        image.save(out, fmt, optimize=True)
        if out.tell() <= MAX_BYTES or not opaque:
            return out.getvalue(), FORMATS[fmt]
        fmt = "JPEG"  # a photo saved as PNG: JPEG is made for it
    if image.mode not in ("RGB", "L") and fmt == "JPEG":
        image = image.convert("RGB")
    data = b""
    for quality in (85, 75, 65, 55):  # the best quality that fits, never below 55
        out = io.BytesIO()
        if fmt == "JPEG":
            image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
        else:
            image.save(out, "WEBP", quality=quality, method=4)
        data = out.getvalue()
        if len(data) <= MAX_BYTES:
            break
    return data, FORMATS[fmt]


def _copy(data: bytes, name: str) -> tuple[bytes, str, int, int, int, int]:
    """The published bytes, extension and size, and the source's pixel size."""
    from PIL import Image, ImageOps

    image, fmt = _decoded(data, name)
    assert isinstance(image, Image.Image)
    width, height = image.size
    exif = image.getexif()
    # A position is not for the public; a turned photo's width and height are the other
    # way round from what its pixels say: both get a copy of their own.
    located, turned = _GPS_IFD in exif, exif.get(_ORIENTATION, 1) != 1
    if width <= MAX_WIDTH and len(data) <= MAX_BYTES and not located and not turned:
        return data, FORMATS[fmt], width, height, width, height  # the original, as it is
    if getattr(image, "is_animated", False):
        raise ImageRefused(
            f"{name!r} is an animated image over {MAX_WIDTH} px wide or {_kb(MAX_BYTES)} "
            f"({width}×{height}, {_kb(len(data))}), which cannot be made smaller without "
            f"losing its animation: export it at most {MAX_WIDTH} px wide and "
            f"{_kb(MAX_BYTES)}")
    # Turned as the camera says, and the camera's data (place, device) dropped with it.
    image = ImageOps.exif_transpose(image)
    if image.width > MAX_WIDTH:
        image = image.resize(
            (MAX_WIDTH, max(1, round(image.height * MAX_WIDTH / image.width))),
            Image.Resampling.LANCZOS)
    copy, ext = _encoded(image, fmt)
    return copy, ext, image.width, image.height, width, height


def _write(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: a reader never gets half an image."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # a public image
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish(root: Path, name: str) -> Published:
    """Check the image ``name`` under config/editions/media/ and publish its copy (once)."""
    path = source_path(root, name)
    data = _read(path, name)
    out_dir = root / PUBLISHED_DIR
    done = out_dir / _DONE_DIR / f"{hashlib.sha256(_RECIPE + data).hexdigest()}.json"
    try:
        found = Published(**json.loads(done.read_text(encoding="utf-8")))
        if PUBLISHED_NAME.fullmatch(found.name) and (out_dir / found.name).is_file():
            return found
    except (OSError, ValueError, TypeError):
        pass  # not published yet (or the record is damaged): publish it again
    copy, ext, width, height, source_width, source_height = _copy(data, name)
    published = Published(
        name=f"{hashlib.sha256(copy).hexdigest()}.{ext}", width=width, height=height,
        size=len(copy), source_width=source_width, source_height=source_height,
        source_size=len(data))
    # var/ stays owner-only (it holds the database); var/media/ is public, as its copies are.
    private_folder(out_dir.parent)
    if not done.parent.is_dir():
        done.parent.mkdir(parents=True, exist_ok=True)
        out_dir.chmod(0o755)  # whatever the umask: the proxy's user reads the copies
    if not (out_dir / published.name).is_file():
        _write(out_dir / published.name, copy)
    _write(done, json.dumps(asdict(published)).encode())
    return published


def _name_record(root: Path, name: str) -> Path:
    key = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return root / PUBLISHED_DIR / _NAMES_DIR / f"{key}.json"


def _remember(root: Path, name: str, published: Published) -> None:
    """Record ``published`` as the last copy of the file ``name``, where it changed."""
    record = _name_record(root, name)
    data = json.dumps(asdict(published)).encode()
    try:
        if record.read_bytes() == data:
            return  # the usual case: nothing changed since the last load
    except OSError:
        record.parent.mkdir(parents=True, exist_ok=True)
    _write(record, data)


def last_published(root: Path, name: str) -> Published | None:
    """The last copy published of the file ``name``, if its record and copy are still there."""
    try:
        found = Published(**json.loads(_name_record(root, name).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    if PUBLISHED_NAME.fullmatch(found.name) and (root / PUBLISHED_DIR / found.name).is_file():
        return found
    return None


def media_url(public_url: str, published: Published) -> str:
    """Where readers fetch a published copy: CLUBJAPON_PUBLIC_URL/media/<sha256>.<ext>."""
    return f"{public_url}/media/{published.name}"


def file_images(edition: Edition) -> list[tuple[Loc, ImageSection]]:
    """The edition's image sections that name a file, with the location of that field."""
    return [(("sections", i, "file"), section) for i, section in enumerate(edition.sections)
            if isinstance(section, ImageSection) and section.file is not None]


def refusal(path: Path, line_of: Callable[[Loc], int], loc: Loc, exc: ImageRefused) -> str:
    """An image refused, as the edition's other errors are: file:line: field: sentence."""
    return f"{path}:{line_of(loc)}: {dotted(loc)}: {exc}"


def with_published_images(root: Path, path: Path, edition: Edition,
                          public_url: str, *, archived: bool = False) -> Edition:
    """The edition with each file image published and given its URL, width and height.

    ConfigError names the edition file, the line and the field of an image refused.
    ``archived``: the public page of an edition sent already, whose file may have left
    config/editions/media/ since: the copy last published under its name, else no image.
    """
    images = file_images(edition)
    if not images:
        return edition
    line_of = locate_fields(path)
    sections: list[object] = list(edition.sections)
    for loc, section in images:
        assert section.file is not None
        try:
            published = publish(root, section.file)
            _remember(root, section.file, published)
        except ImageMissing as exc:
            kept = last_published(root, section.file) if archived else None
            if kept is None and not archived:
                raise ConfigError(refusal(path, line_of, loc, exc)) from None
            if kept is None:
                sections[int(loc[1])] = None  # the page reads on without the picture
                continue
            published = kept
        except ImageRefused as exc:
            raise ConfigError(refusal(path, line_of, loc, exc)) from None
        # Shown at most 600 px wide; a width the edition gives wins, the ratio is the file's.
        width = section.width or min(SHOWN_WIDTH, published.width)
        height = section.height or max(1, round(published.height * width / published.width))
        sections[int(loc[1])] = section.model_copy(update={
            "url": media_url(public_url, published), "width": width, "height": height})
    return edition.model_copy(update={"sections": [s for s in sections if s is not None]})

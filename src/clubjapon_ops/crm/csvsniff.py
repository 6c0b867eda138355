"""Guess how a CSV export is written, its encoding and its delimiter, from its first bytes.

Only a bounded sample is read: the export itself is then read once, as a stream. UTF-8 (with
or without a BOM) is tried first and is what most files are; another encoding is chosen only
when the sample is not UTF-8, and never for a sample that is partly UTF-8 (that file is UTF-8
with a bad byte, and decoding it otherwise would store mojibake).
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes

from clubjapon_ops.crm.csvlines import Lines
from clubjapon_ops.errors import SourceError

# Enough lines to see the accents and the delimiters of an export, little enough to read and
# detect in a few milliseconds whatever the file's size.
SAMPLE_BYTES = 64 * 1024
# csv.Sniffer's quote-finding pattern backtracks over all it gets (a quarter second on 16 KiB
# of quoted fields): the first lines are enough to tell the delimiter.
SNIFF_LINES = 50
SNIFF_CHARS = 16 * 1024
DELIMITERS = (",", ";", "\t")

_WORKBOOKS = (b"PK\x03\x04", bytes.fromhex("d0cf11e0a1b11ae1"))  # .xlsx (zip), .xls (OLE)
# UTF-32 LE before UTF-16 LE: its BOM starts with UTF-16's.
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
         (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
# Single-byte code pages a detector confuses on a few accented letters (it calls 'Lefèvre'
# cp1250, 'Lefčvre'). A French export in one of them is Windows' cp1252, which holds all of
# Latin-1's letters plus œ, Œ, € and the curly quotes; prefer it whenever it decodes the sample.
_SINGLE_BYTE = re.compile(
    r"(cp|windows-?)(125\d|4\d\d|7\d\d|8\d\d|1006|1125)$|iso8859|latin|mac_|hp_roman|koi8")
_PREFERRED = "cp1252"
# A character of two to four bytes in UTF-8: among bytes of a single-byte code page, it means
# a file that mixes UTF-8 with another encoding.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_CONTROLS = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_LABELS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM", "utf-16": "UTF-16",
           "utf-32": "UTF-32"}


@dataclass(frozen=True)
class Encoding:
    """The codec to open the export with, and its first lines as text to look at."""

    codec: str
    text: str

    @property
    def label(self) -> str:
        """The codec as the sync summary names it."""
        return _LABELS.get(self.codec, self.codec)

    @property
    def single_byte(self) -> bool:
        """A code page that decodes any byte: a wrong guess would not fail, only garble."""
        return _SINGLE_BYTE.match(self.codec) is not None


class MixedGuard:
    """Read lines of an export decoded with a single-byte code page, and stop at the first
    that holds UTF-8 characters (é read as 'Ã©'): the sample did not show that the file
    mixes encodings, and storing the rest would store mojibake."""

    __slots__ = ("_readline", "codec", "line", "message")

    def __init__(self, handle: Lines, encoding: Encoding, path: Path) -> None:
        self._readline = handle.readline
        self.codec = encoding.codec
        self.line = 1
        self.message = (f"{path} mixes encodings: line {{}} holds UTF-8 text among "
                        f"{encoding.label} text; export it as UTF-8 CSV")

    def readline(self, limit: int = -1, /) -> str:
        """The next line, as the handle's readline gives it."""
        text = self._readline(limit)
        if not text.isascii() and _UTF8_MULTIBYTE.search(text.encode(self.codec)):
            raise SourceError(self.message.format(self.line))
        if text.endswith(("\n", "\r")):
            self.line += 1
        return text


def read_sample(path: Path) -> bytes:
    """The first SAMPLE_BYTES of the file (OSError as open() raises it)."""
    with path.open("rb") as raw:
        return raw.read(SAMPLE_BYTES)


def _not_text(path: Path) -> SourceError:
    return SourceError(f"{path} is not text in any encoding we know (is it a CSV export?); "
                       "export it as CSV UTF-8")


def detect_encoding(path: Path, sample: bytes) -> Encoding:
    """Choose the codec of an export from its first bytes; SourceError when none fits.

    A sample that is UTF-8, then not, gives UTF-8: reading the file then stops at the bad
    byte with its offset, as it always did, rather than guessing another encoding for all.
    """
    if sample.startswith(_WORKBOOKS):
        raise SourceError(f"{path} is an Excel workbook, export it as CSV "
                          "(Save as > CSV UTF-8)")
    whole = len(sample) < SAMPLE_BYTES
    for bom, codec in _BOMS:
        if sample.startswith(bom):
            return Encoding(codec, _decode(sample, codec, whole))
    if _binary(sample):
        raise _not_text(path)
    # What the encoding is judged on: the sample, or, when the sample is plain ASCII (which
    # tells nothing of it), the lines where the file's first other byte is: Excel sorts by
    # name, and "Zoé" may come after 64 KiB of "Martin".
    look_at, look_whole = sample, whole
    if not whole and sample.isascii():
        later = _first_non_ascii_lines(path, len(sample))
        if later is not None:
            look_at, look_whole = later, len(later) < SAMPLE_BYTES
    try:
        _decode(look_at, "utf-8", look_whole, errors="strict")
        return Encoding("utf-8", _decode(sample, "utf-8", whole))
    except UnicodeDecodeError as exc:
        if not look_at[: exc.start].isascii():
            return Encoding("utf-8", _decode(sample, "utf-8", whole))
    if not look_whole and b"\n" in look_at:
        look_at = look_at[: look_at.rindex(b"\n") + 1]  # no character cut in two at the end
    guessed = _guess(look_at)
    if guessed is None:
        raise _not_text(path)
    if look_at is not sample and not _SINGLE_BYTE.match(guessed):
        # A few lines after 64 KiB of ASCII are too little for a detector to tell a Western
        # code page from a CJK one ('Hélène' in cp1252 reads as Big5): stop at the byte, as
        # UTF-8 does, rather than store a wrong guess.
        return Encoding("utf-8", _decode(sample, "utf-8", whole))
    if _SINGLE_BYTE.match(guessed) and _UTF8_MULTIBYTE.search(look_at):
        # UTF-8 characters among a code page's bytes: whichever single encoding we chose would
        # turn part of the file into mojibake.
        return Encoding("utf-8", _decode(sample, "utf-8", whole))
    return Encoding(guessed, _decode(sample, guessed, whole))


def _first_non_ascii_lines(path: Path, start: int) -> bytes | None:
    """Up to SAMPLE_BYTES of whole lines from the line holding the file's first non-ASCII
    byte at or after ``start``; None when the rest of the file is ASCII too.

    One read of the file at most (bytes.isascii runs at gigabytes a second), stopping at the
    first such byte; only exports whose first 64 KiB are plain ASCII pay for it.
    """
    chunk_bytes = 1024 * 1024
    with path.open("rb") as raw:
        raw.seek(start)
        offset = start
        while chunk := raw.read(chunk_bytes):
            if not chunk.isascii():
                at = offset + _NON_ASCII.search(chunk).start()  # type: ignore[union-attr]
                break
            offset += len(chunk)
        else:
            return None
        # Back to the start of that line (a line is at most a few KiB in an export).
        back = max(0, at - SAMPLE_BYTES // 2)
        raw.seek(back)
        before = raw.read(at - back)
        line_start = back + before.rfind(b"\n") + 1 if b"\n" in before else back
        raw.seek(line_start)
        return raw.read(SAMPLE_BYTES)


def _binary(sample: bytes) -> bool:
    """Control bytes no text export holds (NUL, and C0 codes but tab, line ends, form feed
    and escape) in more than 1 % of the sample, and not UTF-16 or UTF-32 without a BOM (a
    NUL in every other byte, or more). Random bytes have ~10 %: a start that happens to be
    valid UTF-8 must not make them 'UTF-8 with a bad byte'."""
    controls = len(sample) - len(sample.translate(None, _CONTROLS))
    if controls * 100 <= len(sample):
        return False
    wide = max(sample[0::2].count(0), sample[1::2].count(0)) * 2 >= len(sample) * 0.9
    return not wide


def _guess(sample: bytes) -> str | None:
    """charset-normalizer's guess, cp1252 rather than a lookalike single-byte code page."""
    results = from_bytes(sample)
    best = results.best()
    if best is None:
        return None
    # Code pages that decode the sample alike are grouped under one of them: look inside.
    fits = {name for result in results for name in result.could_be_from_charset}
    if _SINGLE_BYTE.match(best.encoding) and _PREFERRED in fits:
        return _PREFERRED
    return str(best.encoding)


def _decode(sample: bytes, codec: str, whole: bool, errors: str = "replace") -> str:
    """The sample as text, leaving out a character that the sample's end cuts in two."""
    decoder = codecs.getincrementaldecoder(codec)(errors)
    return str(decoder.decode(sample, final=whole))


def sniff_delimiter(text: str) -> str | None:
    """The delimiter csv.Sniffer finds in the first lines, or None when it finds none."""
    lines = text[:SNIFF_CHARS].splitlines(keepends=True)
    if len(lines) > 1 and not lines[-1].endswith(("\n", "\r")):
        lines.pop()  # whole lines only
    head = "".join(lines[:SNIFF_LINES])
    try:
        return csv.Sniffer().sniff(head, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return None  # one column, or no consistent delimiter: the header decides


def describe(encoding: Encoding, delimiter: str, columns: int) -> str:
    """How the export was read, for the summary: "read as cp1252, ';'-separated"."""
    if columns < 2:
        how = "one column"
    elif delimiter == "\t":
        how = "tab-separated"
    else:
        how = f"'{delimiter}'-separated"
    return f"read as {encoding.label}, {how}"

"""Raw lines of a CSV export for csv.reader: bounded in length, resyncable after a bad record."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Protocol

# The longest physical line we hold, in characters. A contact row is a few hundred; csv's
# own field limit (128 KiB) already refuses any single field beyond that, so a line of
# 1 MiB is garbage or an attack, and reading it whole would hold it whole.
LINE_LIMIT = 1 << 20
_ENDS = ("\n", "\r")


class Lines(Protocol):
    """What we read an export from: a text file opened with newline="", or a wrapper."""

    def readline(self, size: int = -1, /) -> str:
        """The next line, at most ``size`` characters of it; "" at the end."""
        ...


class RecordTooLong(Exception):
    """A physical line exceeded LINE_LIMIT; its rest has been read and dropped."""


class LineFeed:
    """Iterate the lines of a text handle, at most ``limit`` characters each.

    It counts the double quotes it hands out since ``quotes`` was last reset (at each
    record's start): after a record the reader could not parse, an odd count means the
    record is still inside a quoted field, and :meth:`skip_record` reads on to its end.
    ``outside`` counts the physical lines read past csv.reader, so that line numbers stay
    right after a skip.
    """

    __slots__ = ("_readline", "limit", "outside", "quotes")

    def __init__(self, handle: Lines, limit: int = LINE_LIMIT) -> None:
        self._readline = handle.readline
        self.limit = limit
        self.quotes = 0
        self.outside = 0

    def __iter__(self) -> LineFeed:
        return self

    def __next__(self) -> str:
        line = self._readline(self.limit)
        if not line:
            raise StopIteration
        self.quotes += line.count('"')
        if len(line) == self.limit and not line.endswith(_ENDS):
            # Raised from the iterator, csv.reader gives up this record and is still usable.
            self._drain()
            self.outside += 1
            raise RecordTooLong
        return line

    def _drain(self) -> bool:
        """Read and drop the rest of a physical line; False at the end of the file."""
        while True:
            chunk = self._readline(self.limit)
            if not chunk:
                return False
            self.quotes += chunk.count('"')
            if chunk.endswith(_ENDS):
                return True

    def skip_record(self) -> None:
        """Read past the rest of a record whose reading failed (inside a quoted field or not)."""
        # With quotes doubled inside quoted fields, an even count means outside of them.
        while self.quotes % 2 and self._drain():
            self.outside += 1


def undecodable_at(
    path: Path, codec: str = "utf-8", chunk_size: int = 1 << 20
) -> tuple[int, int] | None:
    """Return (byte offset, line) of the first byte that ``codec`` cannot decode, or None."""
    # A BOM is UTF-8 too: reading it as such keeps the offset counting from the file's start.
    codec = "utf-8" if codec == "utf-8-sig" else codec
    decoder = codecs.getincrementaldecoder(codec)()
    offset, lines = 0, 1
    with path.open("rb") as raw:
        while True:
            chunk = raw.read(chunk_size)
            pending = len(decoder.getstate()[0])  # bytes of a character cut at the last chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.start counts from the pending bytes, which came before this chunk.
                at = offset - pending + exc.start
                lines += chunk[: max(exc.start - pending, 0)].count(b"\n")
                return at, lines
            if not chunk:
                return None
            offset += len(chunk)
            lines += chunk.count(b"\n")

"""Contacts from a CRM's CSV export: its encoding and delimiter detected, the usual column names."""

from __future__ import annotations

import csv
import logging
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from clubjapon_ops.contacts import RawContact
from clubjapon_ops.crm.base import Page
from clubjapon_ops.crm.csvlines import LINE_LIMIT, LineFeed, Lines, RecordTooLong, undecodable_at
from clubjapon_ops.crm.csvsniff import (
    DELIMITERS,
    Encoding,
    MixedGuard,
    describe,
    detect_encoding,
    read_sample,
    sniff_delimiter,
)
from clubjapon_ops.errors import SourceError

log = logging.getLogger(__name__)

PAGE_SIZE = 500

_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "e-mail", "mail", "courriel", "adresse email", "adresse e-mail",
              "adresse mail", "email address", "e-mail address", "adresse electronique"),
    "first_name": ("first name", "firstname", "prenom", "given name", "forename"),
    "last_name": ("last name", "lastname", "nom", "nom de famille", "surname", "family name"),
    "company": ("company", "company name", "entreprise", "societe", "organisation",
                "organization", "raison sociale"),
    "language": ("language", "langue", "lang", "hs language", "locale", "preferred language"),
    "opted_out": ("opted out", "opt out", "optout", "email opt out", "hs email optout",
                  "unsubscribed", "desabonne", "desinscrit", "blacklisted", "email blacklisted"),
    "crm_id": ("id", "record id", "contact id", "crm id", "hs object id"),
    "created_at": ("created at", "created", "createdate", "create date", "date de creation"),
    "lists": ("lists", "listes", "liste", "list memberships", "listes de diffusion"),
    "updated_at": ("updated at", "updated", "lastmodifieddate", "last modified date",
                   "last modified", "modified", "date de modification", "date de mise a jour"),
}


def _key(header: str) -> str:
    """Fold a header to compare it: no accents, lower case, separators as spaces."""
    text = unicodedata.normalize("NFKD", header)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return re.sub(r"[\s_\-.:]+", " ", text).strip()


_FIELD_BY_KEY = {_key(alias): name for name, aliases in _ALIASES.items() for alias in aliases}


def map_columns(headers: list[str]) -> dict[str, str]:
    """Return {header: field} for the headers we recognise; the first match of a field wins."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for header in headers:
        name = _FIELD_BY_KEY.get(_key(header))
        if name and name not in taken:
            mapping[header] = name
            taken.add(name)
    return mapping


def _too_long(exc: Exception) -> str:
    """The skip reason for a record too long to read; other CSV errors stop the sync."""
    if isinstance(exc, RecordTooLong):
        return f"record longer than {LINE_LIMIT} characters"
    if str(exc).startswith("field larger than field limit"):
        return f"field longer than {csv.field_size_limit()} characters"
    raise exc


class CsvSource:
    """Read a whole CSV export each run; the store merges what did not change."""

    name = "csv"

    def __init__(self, path: Path, page_size: int = PAGE_SIZE) -> None:
        self.path = path
        self.page_size = page_size
        # How the last read went, once its header is read: "read as cp1252, ';'-separated".
        self.detected: str | None = None
        # With a lists column, every list is named in a whole read: the names met are all.
        self.lists_complete = False

    def pages(self, bookmark: str | None, *, full: bool) -> Iterator[Page]:
        """Yield the file's rows in pages; a CSV export has no incremental mode."""
        try:
            sample = read_sample(self.path)
            encoding = detect_encoding(self.path, sample)
            handle = self.path.open(encoding=encoding.codec, newline="")
        except FileNotFoundError:
            raise SourceError(
                f"CSV export not found: {self.path} (set CLUBJAPON_CSV_PATH)"
            ) from None
        except OSError as exc:
            raise SourceError(f"cannot read CSV export {self.path}: {exc.strerror}") from None
        with handle:
            try:
                # UTF-8 stops at a byte that is not; a single-byte code page needs a guard.
                lines: Lines = handle
                if encoding.single_byte:
                    lines = MixedGuard(handle, encoding, self.path)
                yield from self._read(lines, encoding)
            except UnicodeDecodeError:
                # The decoder's offset counts from its last 8 KiB chunk: find the real one.
                found = undecodable_at(self.path, encoding.codec)
                where = f" at byte {found[0]} (line {found[1]})" if found else ""
                # Only the start was looked at: say so when the rest is not what it promised.
                start = "" if encoding.codec.startswith("utf-8") else (
                    f", though its start read as {encoding.label}")
                raise SourceError(
                    f"{self.path} is not {encoding.label.removesuffix(' with BOM')} text"
                    f"{where}{start}; export it as UTF-8 CSV"
                ) from None
            except csv.Error as exc:
                raise SourceError(f"{self.path}: malformed CSV: {exc}") from None

    def _read(self, handle: Lines, encoding: Encoding) -> Iterator[Page]:
        first = handle.readline(LINE_LIMIT)
        if not first.strip():
            raise SourceError(f"{self.path} is empty: expected a header row")
        if len(first) == LINE_LIMIT:
            raise SourceError(f"{self.path}: the header row is longer than {LINE_LIMIT} "
                              "characters: is this a CSV export?")
        delimiter, headers, mapping = self._columns(first, encoding)
        self.detected = describe(encoding, delimiter, len(headers))
        self.lists_complete = "lists" in mapping.values()
        log.info("CSV export read", extra={"path": str(self.path), "how": self.detected})
        feed = LineFeed(handle)
        reader = csv.reader(feed, delimiter=delimiter)
        page = Page(records=[])
        end = 1  # the header was line 1; reader.line_num counts the lines read after it
        while True:
            try:
                for fields in reader:
                    feed.quotes = 0
                    # A quoted field may span lines: name the line where the record starts.
                    ref, end = f"line {end + 1}", reader.line_num + feed.outside + 1
                    if not any(f.strip() for f in fields):
                        continue
                    if len(fields) > len(headers):
                        page.rejected.append(
                            (ref, f"more fields than the header: {len(fields)} > {len(headers)}")
                        )
                    else:
                        page.records.append(self._record(ref, headers, mapping, fields))
                    if len(page.records) + len(page.rejected) >= self.page_size:
                        yield page
                        page = Page(records=[])
                break
            except (csv.Error, RecordTooLong) as exc:
                # One oversized record is skipped, not the export: read past its end and go on.
                page.rejected.append((f"line {end + 1}", _too_long(exc)))
                feed.skip_record()
                feed.quotes = 0
                end = reader.line_num + feed.outside + 1
                if len(page.records) + len(page.rejected) >= self.page_size:
                    yield page
                    page = Page(records=[])
        if page.records or page.rejected:
            yield page

    def _columns(
        self, first: str, encoding: Encoding
    ) -> tuple[str, list[str], dict[str, str]]:
        """Return the delimiter, the headers and their fields.

        csv.Sniffer's delimiter is tried first, then the header's most frequent one: the first
        under which the header has an email column wins (Sniffer alone can take a ';' inside
        a comma-separated file's fields for the delimiter).
        """
        by_count = sorted(DELIMITERS, key=first.count, reverse=True)  # a tie keeps ',' first
        sniffed = sniff_delimiter(encoding.text)
        candidates = [sniffed, *by_count] if sniffed else by_count
        tried: list[str] = []
        for delimiter in candidates:
            headers = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
            mapping = map_columns(headers)
            if "email" in mapping.values():
                return delimiter, headers, mapping
            tried = tried or headers
        raise SourceError(
            f"{self.path} has no email column (found: {', '.join(tried)}); "
            "expected one named Email, E-mail or Courriel"
        )

    def _record(
        self, ref: str, headers: list[str], mapping: dict[str, str], fields: list[str]
    ) -> RawContact:
        raw = RawContact(ref=ref, source=self.name, email=None)
        for header, value in zip(headers, fields, strict=False):
            name = mapping.get(header)
            if name:
                setattr(raw, name, value)
            elif header:
                raw.attributes[header] = value
        return raw

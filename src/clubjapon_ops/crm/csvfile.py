"""Contacts from a CRM's CSV export: BOM or not, ';' or ',', and the usual column names."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from clubjapon_ops.contacts import RawContact
from clubjapon_ops.crm.base import Page
from clubjapon_ops.crm.csvlines import LINE_LIMIT, LineFeed, RecordTooLong, undecodable_at
from clubjapon_ops.errors import SourceError

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

    def pages(self, bookmark: str | None, *, full: bool) -> Iterator[Page]:
        """Yield the file's rows in pages; a CSV export has no incremental mode."""
        try:
            handle = self.path.open(encoding="utf-8-sig", newline="")
        except FileNotFoundError:
            raise SourceError(
                f"CSV export not found: {self.path} (set CLUBJAPON_CSV_PATH)"
            ) from None
        except OSError as exc:
            raise SourceError(f"cannot read CSV export {self.path}: {exc.strerror}") from None
        with handle:
            try:
                yield from self._read(handle)
            except UnicodeDecodeError:
                # The decoder's offset counts from its last 8 KiB chunk: find the real one.
                found = undecodable_at(self.path)
                where = f" at byte {found[0]} (line {found[1]})" if found else ""
                raise SourceError(
                    f"{self.path} is not UTF-8 text{where}; export it as UTF-8 CSV"
                ) from None
            except csv.Error as exc:
                raise SourceError(f"{self.path}: malformed CSV: {exc}") from None

    def _read(self, handle: TextIO) -> Iterator[Page]:
        first = handle.readline(LINE_LIMIT)
        if not first.strip():
            raise SourceError(f"{self.path} is empty: expected a header row")
        if len(first) == LINE_LIMIT:
            raise SourceError(f"{self.path}: the header row is longer than {LINE_LIMIT} "
                              "characters: is this a CSV export?")
        # French spreadsheet exports use ';'; count both in the header to tell.
        delimiter = ";" if first.count(";") > first.count(",") else ","
        headers = next(csv.reader([first], delimiter=delimiter))
        headers = [h.strip() for h in headers]
        mapping = map_columns(headers)
        if "email" not in mapping.values():
            raise SourceError(
                f"{self.path} has no email column (found: {', '.join(headers)}); "
                "expected one named Email, E-mail or Courriel"
            )
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

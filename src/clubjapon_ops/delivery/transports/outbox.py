"""The local outbox: each message as an owner-only .eml file, written atomically."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from glob import escape as glob_escape
from pathlib import Path

from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.transports.base import NEEDS_SMTPUTF8, Outgoing, Result, Status
from clubjapon_ops.files import make_private, private_folder

# Characters every file system takes in a name (Windows refuses \ / : * ? " < > |).
_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")
_MAX_ADDRESS = 100  # of the name; an address may be 320 characters, a name 255 bytes


def _safe(address: str) -> str:
    """The address as a file name takes it; when changed or cut, a hash of the real one follows."""
    safe = _UNSAFE.sub("_", address)[:_MAX_ADDRESS].rstrip(".")
    if safe != address:
        safe += "~" + hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return safe


def eml_name(row: int, address: str) -> str:
    """The file of one ledger row: unique per row, the same on a resend, safe everywhere.

    The row id makes it unique (even where the file system ignores case) and, coming first,
    keeps it clear of Windows' device names (CON, NUL ...). The address is there for people
    looking for a file.
    """
    return f"{row}-{_safe(address)}.eml"


def copy_prefix(lang: str, address: str) -> str:
    """The start of a test copy's name, <lang>-<address>-, its number following."""
    return f"{lang}-{_safe(address)}-"


def _numbered(tmp: Path, folder: Path, prefix: str) -> Path:
    """Give tmp the first free name <prefix><n>.eml in folder; never over another file.

    Test copies are kept side by side (one per language, address and send): the number is
    one more than the highest there, claimed by a hard link, which fails on a taken name,
    so two sends at once (the CLI and the preview's form) still keep both.
    """
    numbers = [int(tail) for p in folder.glob(f"{glob_escape(prefix)}*.eml")
               if (tail := p.name[len(prefix):-len(".eml")]).isdigit()]
    n = max(numbers, default=0) + 1
    while True:
        target = folder / f"{prefix}{n}.eml"
        try:
            os.link(tmp, target)
        except FileExistsError:
            n += 1
            continue
        tmp.unlink()
        return target


class OutboxTransport:
    """Writes CLUBJAPON_OUTBOX_DIR/<edition>/<row>-<address>.eml (temp file, then rename);
    a test copy <edition>/<lang>-<address>-<n>.eml, n the first number free."""

    name = "outbox"
    batch_size = 200
    idempotent = False
    per_message = True
    concurrency = 1

    def __init__(self, root: Path, builder: MimeBuilder,
                 return_path: Callable[[Outgoing], str] | None = None) -> None:
        self.root = root
        self.builder = builder
        # Written as the first line, Return-Path, as the final delivery agent would: a file
        # shows where its bounces would go (VERP included), as an SMTP send would say it.
        self.return_path = return_path
        self._ready: set[Path] = set()

    def path_of(self, item: Outgoing) -> Path:
        """Where the message of ``item`` is written (a test copy: see its result)."""
        return self.root / item.edition / eml_name(item.id, item.envelope_to)

    def _folder(self, edition: str) -> Path:
        folder = self.root / edition
        if folder not in self._ready:
            private_folder(folder)
            make_private(self.root)
            make_private(folder)
            self._ready.add(folder)
        return folder

    def send(self, batch: Sequence[Outgoing], idempotency_key: str | None = None,
             then: Outgoing | None = None) -> list[Result]:
        """Write each message; a write error fails that message only."""
        return [self._write(item) for item in batch]

    def _write(self, item: Outgoing) -> Result:
        if not item.envelope_to.isascii():
            # Nothing is written: the message could not go out over SMTP either.
            return Result(item.id, Status.FAILED, error=NEEDS_SMTPUTF8)
        target = self.path_of(item)
        try:
            folder = self._folder(item.edition)
            # mkstemp creates the file 0600 whatever the umask; the rename keeps that mode.
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".eml")
            try:
                with os.fdopen(fd, "wb") as handle:
                    if self.return_path is not None:
                        handle.write(f"Return-Path: <{self.return_path(item)}>\r\n"
                                     .encode())
                    handle.write(item.mime(self.builder).data)
                if item.test_copy:
                    target = _numbered(Path(tmp), folder, copy_prefix(
                        item.message.lang, item.envelope_to))
                else:
                    os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            return Result(item.id, Status.RETRY, error=f"outbox: {exc.strerror}")
        return Result(item.id, Status.SENT, provider_id=target.name)

    def close(self) -> None:
        """Nothing to release."""

"""The local outbox: each message as an .eml file, written atomically."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.transports.base import Outgoing, Result, Status

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


def eml_name(address: str) -> str:
    """A file name for an address: the same every time, so a resend overwrites, never adds."""
    return _UNSAFE.sub("_", address) + ".eml"


class OutboxTransport:
    """Writes CLUBJAPON_OUTBOX_DIR/<edition>/<address>.eml (temp file, then rename)."""

    name = "outbox"
    batch_size = 200
    idempotent = False
    per_message = True
    concurrency = 1

    def __init__(self, root: Path, builder: MimeBuilder) -> None:
        self.root = root
        self.builder = builder

    def send(self, batch: Sequence[Outgoing], idempotency_key: str | None = None,
             then: Outgoing | None = None) -> list[Result]:
        """Write each message; a write error fails that message only."""
        results = []
        for item in batch:
            folder = self.root / item.edition
            try:
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / eml_name(item.envelope_to)
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".eml")
                try:
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(item.mime(self.builder).data)
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            except OSError as exc:
                results.append(Result(item.id, Status.RETRY, error=f"outbox: {exc.strerror}"))
                continue
            results.append(Result(item.id, Status.SENT, provider_id=target.name))
        return results

    def close(self) -> None:
        """Nothing to release."""

"""Verify DKIM signatures with dkimpy as published, in a process of its own.

clubjapon_ops.delivery.dkim replaces three of dkimpy's steps with faster ones in the process
that imports it; a check run there would judge our signatures partly by our own code. This
script never imports clubjapon_ops: it reads the TXT record and the messages' paths, and
prints one line per message, "ok" or "fail".

    python dkim_verify_pristine.py SELECTOR._domainkey.DOMAIN. 'v=DKIM1; k=rsa; p=...' FILE...
"""

from __future__ import annotations

import sys
from pathlib import Path

import dkim


def main() -> None:
    """Verify each file against the one record."""
    name, record, *files = sys.argv[1:]
    assert "clubjapon_ops" not in sys.modules

    def lookup(qname: bytes, timeout: int = 5) -> bytes | None:
        return record.encode("ascii") if qname.decode() == name else None

    for file in files:
        print("ok" if dkim.verify(Path(file).read_bytes(), dnsfunc=lookup) else "fail")


if __name__ == "__main__":
    main()

"""What the HTML standard says that our own scans of rendered HTML need to know."""

from __future__ import annotations

# Elements that never have content nor an end tag ("param" is obsolete but still parsed so):
# a scan that keeps a stack of open elements must not push them.
VOID_ELEMENTS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
                           "meta", "param", "source", "track", "wbr"})

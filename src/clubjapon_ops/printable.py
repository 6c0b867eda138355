"""Text shown on a terminal: control characters escaped, never sent raw.

An address or reason can come from anyone (a forged bounce, an imported file): printed raw,
an ESC could rewrite the screen or the window title, a BEL ring, a CR hide what came
before. Every command that prints such text passes it through printable().
"""

from __future__ import annotations

import re

# C0 controls, DEL and the C1 controls (U+0080-U+009F: some terminals read CSI as U+009B);
# the line and paragraph separators and the bidirectional overrides and isolates, which can
# make a printed line read in another order than it is stored.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (tab and line ends included)."""
    return _CONTROL.search(text) is not None


def printable(text: str) -> str:
    """``text`` with each control character written as Python writes it: \\x1b, \\t, \\x07."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)

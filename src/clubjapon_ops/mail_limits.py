"""Limits of an email's header lines, shared by what builds them and what checks them.

On the ground floor: the MIME builder (delivery/) keeps to them, the lint (newsletter/)
checks them, and neither layer imports the other.
"""

from __future__ import annotations

# RFC 2047 §2: an encoded word is at most 75 characters, and a header line carrying one at
# most 76. Every header line is kept to that (where a single URL or address allows it).
MAX_HEADER_LINE = 76
MAX_ENCODED_WORD = 75

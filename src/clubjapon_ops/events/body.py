"""A webhook body as strict JSON: what every store can keep exactly as it came, or refused.

``json.loads`` alone takes NaN and Infinity (not JSON; SQLite would keep them as invalid
JSON, PostgreSQL refuses them), lone surrogates and NUL (PostgreSQL refuses both; a lone
surrogate cannot even be encoded as UTF-8) and nesting deep enough to exhaust the stack.
"""

from __future__ import annotations

import json
import math
from typing import Any

from clubjapon_ops.events.types import MalformedEvent

MAX_DEPTH = 16  # providers' events are objects in an array, a few levels deep at most


def _no_constant(name: str) -> Any:
    raise MalformedEvent(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as infinity
        raise MalformedEvent("a number out of range")
    return value


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise MalformedEvent("a string holds NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedEvent("a string holds a lone surrogate") from None


def _check(document: Any) -> None:
    """Walk the document without recursion: depth, keys and strings."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise MalformedEvent("the body is nested too deeply")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def parse_json(body: bytes) -> Any:
    """The body's JSON document; MalformedEvent when it is not strict, storable JSON."""
    try:
        document = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except MalformedEvent:
        raise
    except RecursionError:
        raise MalformedEvent("the body is nested too deeply") from None
    except ValueError:  # UnicodeDecodeError and too-long integers included
        raise MalformedEvent("the body is not JSON") from None
    _check(document)
    return document

"""Parse one JSON line with bounds: nesting depth, integer length, valid Unicode.

``json.loads`` alone turns hostile lines into untyped crashes: a line nested
1,000 levels deep raises ``RecursionError`` (even inside an ignored
``metadata`` object), a 5,000-digit integer ``ValueError: Exceeds the limit``,
and ``"\\ud800"`` decodes into a string that is not valid Unicode and fails far
from the line.  :func:`loads` checks each of these and raises
:class:`LineError` (a ``ValueError``) with the 1-based character of the line
where the problem starts; ``json.JSONDecodeError`` still signals malformed JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Optional

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "LineError", "loads"]

MAX_DEPTH = 64        # objects and arrays nested in one line
MAX_INT_DIGITS = 100  # digits of one integer literal (a 128-bit id has 39)

_SPECIAL = re.compile(r'["\\\[\]{}]')
_ESCAPE = re.compile(r"\\(?:\\|u([0-9a-fA-F]{4}))")
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class LineError(ValueError):
    """A JSON line outside the loader's bounds; ``column`` is 1-based, ``field`` the top-level key."""

    def __init__(self, message: str, column: Optional[int] = None, field: Optional[str] = None):
        self.message, self.column, self.field = message, column, field
        super().__init__(message)


def _depth_overflow(text: str) -> Optional[int]:
    """The index of the bracket that opens level ``MAX_DEPTH + 1``, or None.

    A linear scan over the structural characters only, skipping string contents.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth, in_string, skip = 0, False, -1
    for m in _SPECIAL.finditer(text):
        i = m.start()
        if i < skip:
            continue
        c = text[i]
        if in_string:
            if c == "\\":
                skip = i + 2  # the escaped character, whatever it is
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return i
        elif c in "]}":
            depth -= 1
    return None


def _lone_surrogate(text: str) -> Optional[tuple[int, str]]:
    """``(index, escape)`` of the first ``\\uXXXX`` escape that is a lone surrogate, or None."""
    if not _MAYBE_SURROGATE.search(text):
        return None
    paired_until = -1
    for m in _ESCAPE.finditer(text):
        if m.group(1) is None or m.start() < paired_until:
            continue
        cp = int(m.group(1), 16)
        if 0xD800 <= cp <= 0xDBFF:
            nxt = _ESCAPE.match(text, m.end())
            if nxt and nxt.group(1) and 0xDC00 <= int(nxt.group(1), 16) <= 0xDFFF:
                paired_until = nxt.end()
                continue
            return m.start(), m.group(0)
        if 0xDC00 <= cp <= 0xDFFF:
            return m.start(), m.group(0)
    return None


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def _bounded_int(digits: str) -> int:
    n = len(digits.lstrip("-"))
    if n > MAX_INT_DIGITS:
        raise LineError(f"expected integers of at most {MAX_INT_DIGITS} digits, found one with "
                        f"{n:,} digits (starting {digits[:12]}...)")
    return int(digits)


def loads(text: str, object_pairs_hook: Optional[Callable] = None) -> Any:
    """``json.loads(text)`` within the bounds above; raises ``LineError`` or ``JSONDecodeError``."""
    at = _depth_overflow(text)
    if at is not None:
        raise LineError(f"expected JSON nested at most {MAX_DEPTH} levels deep, found deeper "
                        f"nesting at character {at + 1}", at + 1)
    obj = json.loads(text, object_pairs_hook=object_pairs_hook, parse_int=_bounded_int)
    found = _lone_surrogate(text)
    if found is not None:
        at, escape = found
        field = None
        if isinstance(obj, dict):
            field = next((k for k, v in obj.items() if _has_surrogate(k) or _has_surrogate(v)), None)
        raise LineError(f"invalid Unicode (lone surrogate {escape.lower()}) at character {at + 1}",
                        at + 1, field)
    return obj

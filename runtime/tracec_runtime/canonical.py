"""Canonical JSON for signed documents, and float32 decimals written as strings.

Canonical form: ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8 (files on disk add a trailing newline).
Signed documents carry no floats: a float anywhere is a ``TypeError`` naming
its JSON path, so a document never depends on a float repr.
"""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np

from tracec_runtime.limits import MAX_INT_DIGITS, MAX_JSON_DEPTH

__all__ = ["canonical_bytes", "canonical_file_bytes", "f32_str", "parse_f32", "json_path",
           "strict_json", "parse_canonical"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECIMAL = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)   # a JSON string token (as json reads it)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_path(parts: tuple) -> str:
    """``("policy", "stages", 0, "kind")`` -> ``$.policy.stages[0].kind``."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _IDENT.match(p):
            out += f".{p}"
        else:
            out += f"[{json.dumps(p, ensure_ascii=False)}]"
    return out


def _check(obj: object, path: tuple) -> None:
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return
    if isinstance(obj, float):
        raise TypeError(f"canonical JSON carries no floats: {json_path(path)} is the float "
                        f"{obj!r}; write decimals as strings (e.g. {str(obj)!r})")
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON object keys must be str: {json_path(path)} has "
                                f"the key {key!r} of type {type(key).__name__}")
            _check(value, path + (key,))
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check(value, path + (i,))
        return
    raise TypeError(f"canonical JSON holds only dict, list, str, int, bool and None: "
                    f"{json_path(path)} is a {type(obj).__module__}.{type(obj).__qualname__}")


def _no_duplicates(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _check_depth(data: bytes, limit: int) -> None:
    """``ValueError`` if arrays/objects nest deeper than ``limit`` (strings skipped).

    Runs before ``json.loads`` (which recurses once per level), so a document nested
    1,000 levels deep is a ``ValueError``, never a ``RecursionError``.
    """
    brackets = np.frombuffer(_STRING.sub(b'""', data).translate(None, _NOT_BRACKET), np.uint8)
    if brackets.size == 0:
        return
    opens = (brackets == 0x5B) | (brackets == 0x7B)               # [ {  vs  ] }
    if int(np.cumsum(np.where(opens, 1, -1), dtype=np.int64).max()) > limit:
        raise ValueError(f"arrays and objects nest deeper than {limit} levels")


def strict_json(data: bytes, floats: bool = True, max_depth: int = MAX_JSON_DEPTH,
                max_int_digits: int = MAX_INT_DIGITS) -> object:
    """Parse UTF-8 JSON refusing duplicate keys and NaN/Infinity, and with ``floats=False`` any
    float literal too (documents whose decimals are strings); ``ValueError`` otherwise.

    Bounded: nesting deeper than ``max_depth`` and integers longer than
    ``max_int_digits`` digits are a ``ValueError`` before they are built.
    """
    def no_constant(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    def no_float(text: str) -> None:
        raise ValueError(f"a float literal {text[:40]} (decimals are strings)")

    def bounded_int(text: str) -> int:
        digits = len(text) - text.startswith("-")
        if digits > max_int_digits:
            raise ValueError(f"an integer of {digits} digits (at most {max_int_digits})")
        return int(text)

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"expected JSON bytes; got {type(data).__name__}")
    data = bytes(data)
    text = data.decode("utf-8")
    _check_depth(data, max_depth)
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_int=bounded_int,
                      parse_constant=no_float if not floats else no_constant,
                      parse_float=None if floats else no_float)


def parse_canonical(data: bytes, newline: bool = True) -> object:
    """Parse a signed document (no floats) and check it is byte-identical to its canonical form
    (sorted keys, no spaces, a trailing newline iff ``newline``); ``ValueError`` otherwise."""
    obj = strict_json(data, floats=False)
    try:
        expected = canonical_file_bytes(obj) if newline else canonical_bytes(obj)
    except (TypeError, ValueError) as exc:  # e.g. a lone surrogate that cannot be UTF-8
        raise ValueError(f"not canonical JSON ({exc})") from None
    if expected != data:
        at = next((i for i, (a, b) in enumerate(zip(expected, data)) if a != b),
                  min(len(expected), len(data)))
        raise ValueError(f"not canonical JSON (sorted keys, no spaces, no floats"
                         f"{', one trailing newline' if newline else ''}): it differs from its "
                         f"canonical form at byte {at}")
    return obj


def canonical_bytes(obj: object) -> bytes:
    """The canonical UTF-8 bytes of ``obj`` (no trailing newline)."""
    _check(obj, ())
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def canonical_file_bytes(obj: object) -> bytes:
    """Canonical bytes plus the trailing ``\\n`` used for files on disk."""
    return canonical_bytes(obj) + b"\n"


def f32_str(x: float) -> str:
    """``x`` rounded to float32, as the shortest-safe decimal ``format(.., ".9g")``.

    ``np.float32(f32_str(x)) == np.float32(x)`` exactly; NaN is refused.
    """
    value = float(np.float32(x))
    if math.isnan(value):
        raise ValueError(f"f32_str needs a number; got {x!r}")
    return format(value, ".9g")


def parse_f32(s: str) -> np.float32:
    """Parse a decimal string (as written by :func:`f32_str`) to ``np.float32``.

    Accepts plain decimals, exponents and ``inf``/``-inf``; refuses NaN, hex,
    whitespace, non-strings, and finite decimals that overflow float32.
    """
    if not isinstance(s, str):
        raise ValueError(f"expected a decimal string for a float32 value; got {s!r} "
                         f"of type {type(s).__name__}")
    if s in ("inf", "-inf"):
        return np.float32(s)
    if not _DECIMAL.match(s):
        raise ValueError(f"expected a decimal string for a float32 value (e.g. '0.734120011'); "
                         f"got {s!r}")
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = np.float32(s)  # the doc's definition: round-trips through np.float32(s)
    if not np.isfinite(value):
        raise ValueError(f"{s!r} is outside the float32 range")
    return value

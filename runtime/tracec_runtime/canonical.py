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

__all__ = ["canonical_bytes", "canonical_file_bytes", "f32_str", "parse_f32", "json_path",
           "strict_json"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECIMAL = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


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


def strict_json(data: bytes, floats: bool = True) -> object:
    """Parse UTF-8 JSON refusing duplicate keys and NaN/Infinity, and with ``floats=False`` any
    float literal too (documents whose decimals are strings); ``ValueError`` otherwise."""
    def no_constant(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    def no_float(text: str) -> None:
        raise ValueError(f"a float literal {text} (decimals are strings)")

    return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                      parse_constant=no_float if not floats else no_constant,
                      parse_float=None if floats else no_float)


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

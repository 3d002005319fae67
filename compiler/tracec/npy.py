"""A defensive ``.npy`` reader: strict header grammar, sizes checked before any allocation.

``numpy.load`` evaluates the header with ``ast.literal_eval`` (an unbalanced
dict raises ``tokenize.TokenError``, a 10^30 dimension ``OverflowError``), then
allocates whatever the header claims (a shape of (2500, 10^12) asks for
8.88 PiB) and ignores bytes after the array.  Here:

* the header is at most ``MAX_HEADER`` bytes and must be exactly the dict numpy
  writes: the keys ``descr`` (a simple dtype string), ``fortran_order`` (True or
  False) and ``shape`` (a tuple of at most ``MAX_DIMS`` non-negative ints), in
  any order, with an optional trailing comma, padded with spaces, ending ``\\n``;
* :func:`read_file` checks the header and the file size before reading the
  payload; :func:`read_array` checks that the bytes after the header are exactly
  ``prod(shape) * itemsize`` (a truncated file and trailing garbage are both
  refused) before it builds a view on them; object dtypes are never read.

Every problem is an ``EmbeddingError`` naming the file, what was expected and
what was found.
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass
from typing import Union

import numpy as np

from tracec.errors import EmbeddingError

__all__ = ["MAGIC", "MAX_DIMS", "MAX_HEADER", "NpyHeader", "read_array", "read_file", "read_header"]

MAGIC = b"\x93NUMPY"
MAX_HEADER = 10_000  # bytes of header dict (numpy's own default limit)
MAX_DIMS = 32
_MAX_DIM_DIGITS = 19
_KEYS = ("descr", "fortran_order", "shape")
_DESCR = re.compile(r"^[<>|=]?[A-Za-z?][0-9]{0,4}(\[[A-Za-z0-9]{1,8}\])?$")
_WORDS = {"int": "an integer", "name": "True or False", "str": "a quoted string"}
_TOKEN = re.compile(r"""[ \t]*(?:(?P<str>'[^'\\\n]*'|"[^"\\\n]*")|(?P<int>[0-9]+)"""
                    r"""|(?P<name>True|False)|(?P<punct>[{}():,]))""")


@dataclass(frozen=True)
class NpyHeader:
    version: tuple[int, int]
    dtype: np.dtype
    fortran_order: bool
    shape: tuple[int, ...]
    offset: int  # where the array bytes start


def _bad(path: str, found: str) -> EmbeddingError:
    return EmbeddingError(path, f"expected a NumPy .npy file, found {found}")


def _tokens(path: str, text: str) -> list[tuple[str, object]]:
    out, pos = [], 0
    body = text.rstrip(" ")
    if not body.endswith("\n"):
        raise _bad(path, "a header that does not end with a newline")
    body = body[:-1].rstrip(" \t")
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None:
            raise _bad(path, f"unexpected {body[pos:pos + 20]!r} at character {pos + 1} of the "
                             f"header (expected the dict {{'descr': ..., 'fortran_order': ..., "
                             f"'shape': (...)}})")
        kind = m.lastgroup
        raw = m.group(kind)
        value: object = raw[1:-1] if kind == "str" else raw == "True" if kind == "name" else raw
        out.append((kind, value))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, path: str, tokens: list):
        self.path, self.tokens, self.i = path, tokens, 0

    def next(self, *expected: str) -> tuple[str, object]:
        if self.i >= len(self.tokens):
            raise _bad(self.path, "a header dict that ends early (unbalanced braces or parentheses)")
        kind, value = self.tokens[self.i]
        self.i += 1
        token = value if kind == "punct" else kind
        if expected and token not in expected:
            wanted = " or ".join(_WORDS.get(e, repr(e)) for e in expected)
            raise _bad(self.path, f"{value!r} in the header where {wanted} was expected")
        return kind, value

    def peek(self, value: str) -> bool:
        return self.i < len(self.tokens) and self.tokens[self.i] == ("punct", value)

    def shape(self) -> tuple[int, ...]:
        self.next("(")
        dims: list[int] = []
        while not self.peek(")"):
            _, digits = self.next("int")
            if len(digits) > _MAX_DIM_DIGITS:
                raise _bad(self.path, f"a shape dimension with {len(digits):,} digits")
            dims.append(int(digits))
            if len(dims) > MAX_DIMS:
                raise _bad(self.path, f"a shape with more than {MAX_DIMS} dimensions")
            if not self.peek(")"):
                self.next(",")
            elif len(dims) == 1:
                raise _bad(self.path, "a one-element shape without its trailing comma")
        self.next(")")
        return tuple(dims)

    def value(self, key: str) -> object:
        if key == "shape":
            return self.shape()
        return self.next("str" if key == "descr" else "name")[1]

    def header(self) -> dict:
        self.next("{")
        doc: dict = {}
        while not self.peek("}"):
            _, key = self.next("str")
            if key not in _KEYS or key in doc:
                raise _bad(self.path, f"the header key {key!r} "
                                      f"{'twice' if key in doc else 'which is not one of ' + str(_KEYS)}")
            self.next(":")
            doc[key] = self.value(key)
            if not self.peek("}"):
                self.next(",")
        self.next("}")
        if self.i != len(self.tokens):
            raise _bad(self.path, "more after the header dict")
        if set(doc) != set(_KEYS):
            missing = ", ".join(k for k in _KEYS if k not in doc)
            raise _bad(self.path, f"a header without {missing}")
        return doc


def read_header(path: str, data: bytes) -> NpyHeader:
    """Parse and check the header of ``.npy`` bytes (the array bytes are not looked at)."""
    if len(data) < 10 or not data.startswith(MAGIC):
        what = f"{len(data):,} bytes" if len(data) < 10 else "data without the .npy magic string"
        raise _bad(path, what)
    version = (data[6], data[7])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise _bad(path, f"format version {version[0]}.{version[1]} (1.0, 2.0 and 3.0 are read)")
    size_bytes = 2 if version == (1, 0) else 4
    if len(data) < 8 + size_bytes:
        raise _bad(path, "a file that ends inside the header length")
    (hlen,) = struct.unpack("<H" if size_bytes == 2 else "<I", data[8:8 + size_bytes])
    start = 8 + size_bytes
    if hlen > MAX_HEADER:
        raise _bad(path, f"a header of {hlen:,} bytes (at most {MAX_HEADER:,} are read)")
    if len(data) < start + hlen:
        raise _bad(path, f"a file that ends inside its {hlen:,}-byte header")
    try:
        text = data[start:start + hlen].decode("utf-8" if version == (3, 0) else "latin1")
    except UnicodeDecodeError:
        raise _bad(path, "a header that is not valid UTF-8") from None
    doc = _Parser(path, _tokens(path, text)).header()
    descr = doc["descr"]
    if not _DESCR.match(descr):
        raise _bad(path, f"the dtype {descr!r} (expected a simple dtype string such as '<f4')")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise _bad(path, f"the unknown dtype {descr!r}") from None
    return NpyHeader(version, dtype, doc["fortran_order"], doc["shape"], start + hlen)


def read_array(path: str, data: bytes, header: NpyHeader) -> np.ndarray:
    """A read-only view of the array, after checking that the payload is exactly its size."""
    dtype = header.dtype
    if dtype.hasobject:
        raise EmbeddingError(path, f"expected a numeric array, found dtype {dtype} (an object "
                                   f"array; tracec never unpickles)")
    if dtype.itemsize == 0:
        raise EmbeddingError(path, f"expected a dtype with a positive item size, found {dtype}")
    count = _check_payload(path, header, len(data) - header.offset)
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header.offset)
    return arr.reshape(header.shape, order="F" if header.fortran_order else "C")


def _check_payload(path: str, header: NpyHeader, found: int) -> int:
    """The element count, once ``found`` payload bytes are exactly what the header claims."""
    count = math.prod(header.shape)
    expected = count * header.dtype.itemsize
    values = " x ".join(f"{d:,}" for d in header.shape) or "1"
    if found < expected:
        raise EmbeddingError(path, f"expected {values} values after the .npy header, found a "
                                   f"truncated file ({found:,} of {expected:,} bytes)")
    if found > expected:
        raise EmbeddingError(path, f"expected {values} values after the .npy header and nothing "
                                   f"more, found {found - expected:,} trailing bytes after them")
    return count


def read_file(path: Union[str, os.PathLike]) -> bytes:
    """The bytes of a ``.npy`` file whose header parses and whose size matches it.

    Only the header is read before the check, so a file claiming (or holding) far more than
    its shape is refused without reading it.  (Object arrays are left to the caller's dtype
    check: their size cannot be known from the header.)
    """
    name = str(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            prefix = f.read(MAX_HEADER + 12)
            header = read_header(name, prefix)
            if not header.dtype.hasobject and header.dtype.itemsize:
                _check_payload(name, header, size - header.offset)
            return prefix + f.read()
    except OSError as e:
        raise EmbeddingError(name, f"expected a readable .npy file, found {e.strerror or e}") from None

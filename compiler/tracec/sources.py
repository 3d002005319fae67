"""Where trace bytes come from: a file, ``-`` (standard input), gzip-compressed or not.

``read_lines`` returns the source's display name, its raw bytes (for the digest) and its
lines, with a UTF-8 byte-order mark and trailing blank lines removed.  Parsing a line is
``tracec.traces``' job (one place).
"""

from __future__ import annotations

import gzip
import sys
import zlib
from pathlib import Path
from typing import Union

from tracec.errors import TraceFileError

STDIN = "-"
GZIP_MAGIC = b"\x1f\x8b"


def display_name(source: Union[str, Path]) -> str:
    return "<stdin>" if str(source) == STDIN else str(source)


def read_bytes(source: Union[str, Path]) -> bytes:
    """The (decompressed) bytes of a path or ``-``; gzip is recognised by its magic bytes."""
    name = display_name(source)
    try:
        data = sys.stdin.buffer.read() if str(source) == STDIN else Path(source).read_bytes()
    except OSError as e:
        raise TraceFileError(name, None, f"expected a readable trace file, found "
                                         f"{e.strerror or e}") from None
    if data.startswith(GZIP_MAGIC):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise TraceFileError(name, None, f"expected gzip-compressed JSON lines, found a "
                                             f"corrupt or truncated gzip stream ({e})") from None
    return data


def read_lines(source: Union[str, Path]) -> tuple[str, bytes, list[bytes]]:
    name, data = display_name(source), read_bytes(source)
    lines = data.split(b"\n")
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
        lines[0] = lines[0][3:]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        found = "an empty file" if not data else "only blank lines"
        raise TraceFileError(name, None, f"no trace records: expected one JSON object per line, "
                                         f"found {found}")
    return name, data, lines

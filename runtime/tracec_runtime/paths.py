"""Safe bundle paths: name rules, a walk that refuses links and special files, no-follow reads.

Bundle names are relative POSIX paths: no leading ``/``, no ``\\``, no NUL, no
empty, ``.`` or ``..`` part, valid UTF-8.  The walk never follows a symlink; a
symlink or special file anywhere (including the bundle root) is an
:class:`UnsafePathError`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional, Union

from tracec_runtime.errors import BundleVerificationError, FileTooLargeError, UnsafePathError

__all__ = ["ENVELOPE", "check_name", "list_files", "read_file"]

ENVELOPE = "bundle.dsse.json"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def name_problem(name: object) -> Optional[str]:
    """Why ``name`` is not a safe bundle name, or ``None`` if it is."""
    if not isinstance(name, str) or not name:
        return "is not a non-empty string"
    if name.startswith("/"):
        return "is absolute"
    if "\\" in name or "\x00" in name:
        return "contains a backslash or NUL"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "has an empty, '.' or '..' part (it could escape the bundle)"
    return None


def check_name(name: object, where: str = "") -> str:
    problem = name_problem(name)
    if problem is not None:
        raise UnsafePathError(f"{where}unsafe path {name!r}: {problem}")
    return name  # type: ignore[return-value]


def _check_root(root: Path) -> None:
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        raise BundleVerificationError(f"{root}: no such bundle directory") from None
    except OSError as exc:
        raise BundleVerificationError(f"{root}: cannot read the bundle ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(f"{root}: the bundle path is a symlink (to "
                              f"{os.readlink(root)!r}); pass the real directory")
    if not stat.S_ISDIR(st.st_mode):
        kind = "a regular file" if stat.S_ISREG(st.st_mode) else "a special file"
        raise BundleVerificationError(f"{root}: expected a bundle directory; found {kind}")


def list_files(root: Union[str, os.PathLike]) -> list[str]:
    """Sorted relative names of every regular file under ``root`` (links are never followed).

    All unsafe entries are collected and reported together in one ``UnsafePathError``.
    """
    root = Path(root)
    _check_root(root)
    names: list[str] = []
    unsafe: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(root / rel if rel else root))
        except OSError as exc:
            raise BundleVerificationError(f"{root / rel}: cannot list ({exc.strerror})") from None
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            problem = name_problem(name)
            if entry.is_symlink():
                unsafe.append(f"symlink: {name} -> {os.readlink(entry.path)}")
            elif problem is not None:
                unsafe.append(f"unsafe name: {name!r} {problem}")
            elif entry.is_dir(follow_symlinks=False):
                stack.append(name)
            elif entry.is_file(follow_symlinks=False):
                names.append(name)
            else:
                unsafe.append(f"special file: {name} (not a regular file or directory)")
    if unsafe:
        raise UnsafePathError(f"bundle {str(root)!r} contains {len(unsafe)} unsafe entr"
                              f"{'y' if len(unsafe) == 1 else 'ies'}: " + "; ".join(sorted(unsafe)))
    return sorted(names)


def read_file(root: Union[str, os.PathLike], name: str,
              max_bytes: Optional[int] = None) -> Optional[bytes]:
    """The bytes of ``root/name`` read without following links; ``None`` if it is gone.

    With ``max_bytes``, the size is taken with ``fstat`` before anything is read: a larger
    file raises :class:`FileTooLargeError` unread, and at most ``max_bytes + 1`` bytes are
    ever read (a file that grows while being read raises the same error).
    """
    path = Path(root, *check_name(name).split("/"))
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafePathError(f"{name}: became a symlink while verifying") from None
        raise BundleVerificationError(f"{name}: cannot read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f"{name}: not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileTooLargeError(name, max_bytes, st.st_size)
        want = st.st_size + 1  # allocate what stat says (<= max_bytes), plus one to see growth
        chunks, total = [], 0
        while True:  # one read for a regular file; more only if it is short or growing
            chunk = os.read(fd, want - total if total < want else 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:
                raise FileTooLargeError(name, max_bytes, total, grew=True)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except OSError as exc:
        raise BundleVerificationError(f"{name}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)

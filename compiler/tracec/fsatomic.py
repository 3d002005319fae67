"""File-system primitives for publishing: no-replace rename, atomic exchange, an flock lock.

``rename_noreplace(src, dst)`` moves a directory to a path that must not exist.
Plain ``rename(2)`` is not enough: on Linux, renaming a directory onto an
existing *empty* directory succeeds and replaces it.  We use
``renameat2(RENAME_NOREPLACE)`` (Linux >= 3.15; ext4, xfs, btrfs, tmpfs...); where
the kernel, libc or file system lacks it we claim ``dst`` with ``mkdir`` (which
is exclusive) and rename onto the empty directory we just created.

``exchange(a, b)`` swaps two paths atomically (``RENAME_EXCHANGE``); it returns
False where unsupported and the caller falls back to two renames.

``PathLock`` is an exclusive, non-blocking ``flock`` on a lock file holding the
owner's pid, host and start time.  The kernel drops an flock when its process
dies, so a lock file left by a killed process is stale by construction: the
next locker acquires it.  The file is unlinked on release (while still held);
a locker re-checks after ``flock`` that the path still names the inode it
locked, so an unlinked file is never mistaken for the lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Optional

__all__ = ["LockBusy", "LockPathError", "PathLock", "exchange", "owner_alive", "owner_record",
           "rename_noreplace"]

_AT_FDCWD = -100
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
USE_RENAMEAT2 = True  # tests switch this off to exercise the fallbacks


def _renameat2():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_FN = _renameat2()


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2``; False if unsupported here, OSError for any other failure."""
    if _FN is None or not USE_RENAMEAT2:
        return False
    if _FN(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; ``FileExistsError`` (or another OSError) if anything is at ``dst``."""
    if _rename2(src, dst, _RENAME_NOREPLACE):
        return
    os.mkdir(dst, 0o700)  # exclusive: FileExistsError if anything appeared
    try:
        os.rename(src, dst)  # onto the empty directory we own
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(dst)  # only if still empty: never removes what someone put there
        raise


def exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically; False if the system cannot (nothing was changed)."""
    return _rename2(a, b, _RENAME_EXCHANGE)


def owner_record() -> dict:
    now = time.time()
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_unix": int(now),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}


def _process_start(pid: int) -> Optional[float]:
    """When ``pid`` started (Unix time, Linux /proc), or None if it cannot be told."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def owner_alive(owner: dict) -> Optional[bool]:
    """True/False for a process on this host; None when it cannot be told (another host, bad record)."""
    pid = owner.get("pid") if isinstance(owner, dict) else None
    if type(pid) is not int or pid <= 0 or owner.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started, since = owner.get("started_unix"), _process_start(pid)
    if type(started) is int and since is not None and since > started + 2:
        return False  # the pid was reused by a process that started after the record
    return True


class LockBusy(Exception):
    """The lock is held by a live process; ``owner`` is its record (or {})."""

    def __init__(self, path: Path, owner: dict):
        self.path, self.owner = path, owner
        super().__init__(str(path))


class LockPathError(Exception):
    """The lock path exists but is not a regular file (a symlink, directory, FIFO or device)."""


class PathLock:
    """An exclusive flock on ``path`` (created if missing, removed on release)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: Optional[int] = None
        self.stale: Optional[dict] = None  # the record a killed owner left, if any

    def acquire(self) -> PathLock:
        for _ in range(100):
            try:  # never through a symlink, never blocking on a FIFO
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
                             | os.O_NONBLOCK, 0o600)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                    raise LockPathError(self.path) from None
                raise
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise LockPathError(self.path)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise LockBusy(self.path, owner) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # released and unlinked by its owner meanwhile: retry on the new file
                os.close(fd)
                continue
            self.fd, self.stale = fd, _read_owner(fd) or None
            os.ftruncate(fd, 0)  # (a failure here leaves the lock held: release() cleans up)
            os.pwrite(fd, json.dumps(owner_record(), sort_keys=True).encode() + b"\n", 0)
            return self
        raise LockBusy(self.path, {})

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self.fd), os.stat(self.path)):
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None


def _read_owner(fd: int) -> dict:
    try:
        doc = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}

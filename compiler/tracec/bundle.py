"""Write a bundle safely: lock the destination, stage privately, publish with one atomic rename.

``Destination(out, force)`` is held for the whole compile:

1. it takes an exclusive lock ``.NAME.tracec-lock`` beside ``out`` (a second
   compile into the same path fails at once);
2. it recovers the leftovers of an earlier compile into ``out`` that was killed
   (``leftovers.recover``) and reports any it cannot prove are its own;
3. it checks ``out``: absent, or (with ``--force``) an empty directory or a
   directory that verifies as a tracec bundle (envelope, statement, file list,
   digests);
4. the bundle is staged in ``.NAME.tracec-work-XXXX/bundle`` (mode 0700);
5. publish re-checks at that moment: a new path is taken with a no-replace
   rename (it fails if anything appeared there); a replaced bundle is verified
   again, swapped atomically with ``RENAME_EXCHANGE``, and verified once more
   at its private name before it is deleted (otherwise it is swapped back).

Every failure raises a typed error (exit 3) and leaves nothing behind: the
work directory is removed and the lock released.  docs/architecture.md
("Publishing and crashes") lists what a crash can leave.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional

from tracec.errors import OutputError, ParameterError
from tracec.fsatomic import LockBusy, LockPathError, PathLock, exchange, rename_noreplace
from tracec.leftovers import WORK, recover, replaceable, write_owner
from tracec.signals import critical
from tracec_runtime.canonical import canonical_file_bytes
from tracec_runtime.envelope import seal

MANIFEST = "manifest.json"
ENVELOPE = "bundle.dsse.json"
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.EIO}
_TAKEN = {errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR}


def write_file(root: Path, name: str, data: bytes) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_json(root: Path, name: str, doc: dict) -> None:
    write_file(root, name, canonical_file_bytes(doc))


def file_digests(root: Path) -> dict[str, dict]:
    """SHA-256 and size of every file but the manifest and the envelope."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if name in (MANIFEST, ENVELOPE):
            continue
        data = path.read_bytes()
        out[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return out


def seal_bundle(root: Path, signing_key: Optional[dict]) -> None:
    (root / ENVELOPE).unlink(missing_ok=True)
    seal(root, signing_key)


def resolve_out(out: Path) -> Path:
    """``out`` with its parent resolved; the current directory and its parents are refused."""
    absolute = Path(os.path.abspath(out))
    cwd = Path(os.path.realpath(os.getcwd()))
    target = Path(os.path.realpath(absolute.parent)) / absolute.name if absolute.name else absolute
    if not absolute.name or target == cwd or target in cwd.parents:
        raise ParameterError("out", "compile", "a directory other than the current directory and "
                             "its parents (they cannot be replaced while in use)", str(out))
    return target


class Destination:
    """The ``--out`` of one compile: locked, checked, staged and published (see the module doc)."""

    def __init__(self, out: Path, force: bool, say: Optional[Callable[[str], None]] = None):
        self.shown, self.force, self.say = str(out), force, say or (lambda _m: None)
        self.path = resolve_out(Path(out))
        self.lock = PathLock(self.path.with_name(f".{self.path.name}.tracec-lock"))
        self.work: Optional[Path] = None
        self.keep = False  # set when the work dir holds something that must not be deleted
        self.created: list[Path] = []  # parent directories this compile made, deepest first
        self.published = False

    # -- lifetime -----------------------------------------------------------------------
    def __enter__(self) -> Destination:
        try:
            self._enter()
        except BaseException:
            self._close()
            raise
        return self

    def _enter(self) -> None:
        with self._writes():
            parent = self.path.parent
            while not os.path.lexists(parent):
                self.created.append(parent)
                parent = parent.parent
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise ParameterError("out", "compile", "a path whose parent is a directory",
                                     self.shown) from None
            try:
                self.lock.acquire()
            except LockPathError:
                raise OutputError(self.shown, f"{self.lock.path} is not a regular file (a "
                                  f"symlink, directory or device); remove it") from None
            except LockBusy as e:
                o = e.owner
                raise OutputError(self.shown, f"another tracec compile is writing it (pid "
                                  f"{o.get('pid', '?')} on {o.get('host', '?')}, since "
                                  f"{o.get('started', '?')}); wait for it or choose another "
                                  f"--out") from None
            if self.lock.stale:
                self.say(f"note: {self.lock.path.name} was left by a compile that was killed "
                         f"(pid {self.lock.stale.get('pid', '?')}); taking it over")
            recover(self.path, self.shown, self.say)
            self._check()
            with critical():  # a work dir always has its owner.json
                self.work = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.{WORK}",
                                                  dir=self.path.parent))
                self._state("staging")

    def __exit__(self, *_exc) -> None:
        self._close()

    def _close(self) -> None:
        with critical():  # a signal now would leave the partial bundle behind: finish first
            if self.work is not None and not self.keep:
                shutil.rmtree(self.work, ignore_errors=True)
            self.lock.release()
            for made in [] if self.published else self.created:
                try:
                    os.rmdir(made)  # only if still empty
                except OSError:
                    break

    @contextlib.contextmanager
    def _writes(self) -> Iterator[None]:
        """OSErrors of writing (disk full, read-only, permissions) as a typed error."""
        try:
            yield
        except OSError as e:
            if e.errno not in _WRITE_ERRNOS:
                raise
            where = f": {e.filename}" if e.filename else ""
            raise OutputError(self.shown, f"could not write the bundle ({e.strerror}{where}); "
                              f"nothing was published and the partial bundle is removed") from None

    def _state(self, state: str) -> None:
        write_owner(self.work, self.path, state)

    # -- checks -------------------------------------------------------------------------
    def _check(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            kind = ("a symlink" if stat.S_ISLNK(st.st_mode) else
                    "a regular file" if stat.S_ISREG(st.st_mode) else "a special file")
            raise ParameterError("out", "compile", f"a bundle directory path (it is {kind}; "
                                 f"tracec never replaces files or links)", self.shown)
        if not self.force:
            raise ParameterError("out", "compile", "a path that does not exist yet (or pass --force)",
                                 self.shown)
        self._require_replaceable(self.path)

    def _require_replaceable(self, path: Path) -> None:
        why = replaceable(path)
        if why is not None:
            raise OutputError(self.shown, f"--force replaces only an empty directory or a tracec "
                              f"bundle, and {why}; nothing was touched")

    # -- staging and publishing ---------------------------------------------------------
    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        tmp = self.work / "bundle"
        with self._writes():
            tmp.mkdir(mode=0o700)
            yield tmp

    def publish(self, staged: Path) -> None:
        """Move the sealed ``staged`` bundle to ``out``, re-checking ``out`` at this moment."""
        with self._writes():
            os.chmod(staged, 0o755)
            with critical():
                if self.force and os.path.lexists(self.path):
                    self._replace(staged)
                else:
                    self._place(staged)
                self.published = True

    def _place(self, staged: Path) -> None:
        try:
            rename_noreplace(staged, self.path)
        except OSError as e:
            if e.errno not in _TAKEN:
                raise
            hint = "" if self.force else " (pass --force to replace a tracec bundle)"
            raise OutputError(self.shown, f"it appeared while compiling (it did not exist when the "
                              f"compile started): it was left untouched and the new bundle was "
                              f"discarded{hint}") from None

    def _replace(self, staged: Path) -> None:
        self._require_replaceable(self.path)
        self._state("swapping")
        if exchange(staged, self.path):  # staged now holds what was at out
            why = replaceable(staged)
            if why is not None:  # it changed between the check and the swap: swap back
                back = exchange(staged, self.path)
                self.keep = not back
                where = ("it was put back and the new bundle discarded" if back else
                         f"the new bundle is at --out and what was there is kept at {staged}")
                raise OutputError(self.shown, f"it changed while publishing and {why}; {where}")
            return
        old = self.work / "old"  # no atomic exchange here: two renames, recoverable
        os.rename(self.path, old)
        try:
            self._require_replaceable(old)
            self._place(staged)
        except BaseException:
            self._restore(old)
            raise

    def _restore(self, old: Path) -> None:
        try:
            rename_noreplace(old, self.path)
        except OSError:
            self.keep = True
            raise OutputError(self.shown, f"publishing failed and the previous contents could "
                              f"not be moved back; they are kept at {old}") from None

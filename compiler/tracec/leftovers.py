"""What publishing may replace or remove: verified bundles, and the leftovers of killed compiles.

``replaceable(path)`` says why ``path`` may not be replaced by ``--force`` (None
when it is an empty directory or verifies as a tracec bundle).
``recover(out, ...)`` runs under the destination lock: it removes the
``.NAME.tracec-work-*`` directories of compiles into ``out`` that were killed
(their ``owner.json`` names a process of this host that is gone), first moving a
previous bundle back to ``out`` if the kill came between the two renames of a
``--force`` publish.  Anything it cannot prove is its own is reported, never
touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Callable, Optional

from tracec.fsatomic import owner_alive, owner_record, rename_noreplace
from tracec_runtime.errors import TracecError
from tracec_runtime.verify import verify_bundle

__all__ = ["OWNER", "WORK", "replaceable", "recover", "write_owner"]

OWNER = "owner.json"
WORK = "tracec-work-"  # work directories are named .NAME.tracec-work-XXXX


def replaceable(path: Path) -> Optional[str]:
    """Why ``path`` may not be replaced by ``--force`` (None: an empty directory or a bundle)."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"it cannot be read ({e.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    with contextlib.suppress(OSError):
        if not any(os.scandir(path)):
            return None
    try:
        verify_bundle(path, allow_unsigned=True)
    except TracecError as e:
        return f"it does not verify as a tracec bundle ({e})"
    return None


def write_owner(work: Path, out: Path, state: str) -> None:
    """``work/owner.json``: who owns the work directory, for which ``out``, in which state."""
    doc = {**owner_record(), "tool": "tracec", "out": str(out), "state": state}
    tmp = work / f".{OWNER}.tmp"
    tmp.write_text(json.dumps(doc, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, work / OWNER)


def recover(out: Path, shown: str, say: Callable[[str], None]) -> None:
    """Clean up after killed compiles into ``out`` (call with the destination lock held)."""
    prefix = f".{out.name}."
    for entry in sorted(os.scandir(out.parent), key=lambda e: e.name):
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        rest = entry.name[len(prefix):]
        if rest.startswith(WORK):
            _recover_one(Path(entry.path), out, shown, say)
        elif rest.endswith(".staging") or rest.startswith("old-"):
            say(f"note: {entry.path} looks like a leftover of an older tracec; not touched "
                f"(remove it yourself if it is not needed)")


def _recover_one(work: Path, out: Path, shown: str, say: Callable[[str], None]) -> None:
    try:
        owner = json.loads((work / OWNER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        owner = None
    if not isinstance(owner, dict) or owner.get("tool") != "tracec":
        say(f"note: {work} has no readable {OWNER}; not touched")
        return
    who = f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}"
    if owner_alive(owner) is not False:
        say(f"note: {work} belongs to a process that may still run ({who}); not touched")
        return
    if owner.get("state") == "swapping":  # killed while replacing a bundle
        old = work / "old"
        if not os.path.lexists(out) and os.path.isdir(old) and replaceable(old) is None:
            rename_noreplace(old, out)
            say(f"restored the previous bundle at {shown} from {work} (a compile, {who}, was "
                f"killed while replacing it)")
        kept = [p for p in (work / "bundle", work / "old")
                if os.path.lexists(p) and replaceable(p) is not None]
        if kept:
            say(f"warning: {work} ({who}) holds {', '.join(p.name for p in kept)} that does not "
                f"verify as a bundle; not touched, inspect it yourself")
            return
    shutil.rmtree(work, ignore_errors=True)
    say(f"removed {work}: the leftovers of a compile that was killed ({who})")

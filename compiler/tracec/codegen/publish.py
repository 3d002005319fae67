"""Write a codegen package atomically: stage beside ``out``, then one no-replace rename.

An earlier package at ``out`` (``--force``, checked by the caller) is swapped out
atomically (``RENAME_EXCHANGE`` where the system has it, two renames otherwise) and
removed only after the new one is in place.  A failure removes the staging
directory; nothing of the user's is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from tracec.fsatomic import exchange, rename_noreplace

__all__ = ["staging", "publish"]


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A private directory beside ``out``; removed on failure (and after ``publish``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".codegen-staging",
                                 dir=out.parent))
    try:
        yield work / "pkg"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish(staged: Path, out: Path) -> None:
    """Move ``staged`` to ``out``; an existing ``out`` (an earlier package) is replaced."""
    os.chmod(staged, 0o755)
    if not os.path.lexists(out):
        rename_noreplace(staged, out)
        return
    old = staged.with_name("old")
    if not exchange(staged, out):      # no atomic swap here: two renames
        os.rename(out, old)
        os.rename(staged, out)
    else:
        os.rename(staged, old)         # staged now holds the earlier package
    shutil.rmtree(old, ignore_errors=True)

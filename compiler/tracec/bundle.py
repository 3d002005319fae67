"""Write a bundle atomically: build in a sibling temp dir, seal, then rename into place.

Nothing half-written is ever left at the destination: on any error the
staging directory is removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from tracec.errors import ParameterError
from tracec_runtime.canonical import canonical_file_bytes
from tracec_runtime.envelope import seal

MANIFEST = "manifest.json"
ENVELOPE = "bundle.dsse.json"


def check_destination(out: Path, force: bool) -> None:
    """Fail before any work if the destination exists and --force was not given."""
    if out.exists() and not force:
        raise ParameterError("out", "compile", "a path that does not exist yet (or pass --force)",
                             str(out))
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise ParameterError("out", "compile",
                             "a new path or an existing bundle (refusing to replace a directory "
                             "that is not a tracec bundle)", str(out))


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def publish(staged: Path, out: Path) -> None:
    """Move the staged bundle into place; an existing bundle (with --force) is replaced."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(staged, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, out)
    os.chmod(out, 0o755)

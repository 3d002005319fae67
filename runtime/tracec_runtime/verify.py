"""Verify a bundle directory, fail closed, before anything in it is used.

Order (docs/bundle-format.md): walk the directory (no links, no special
files) -> envelope and signature -> statement checks -> files vs subjects
(every problem collected into one ``BundleIntegrityError``) -> manifest parsed
from the verified bytes and cross-checked against the statement.  Callers
construct only from :attr:`VerifiedBundle.files`, the bytes that were hashed.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from tracec_runtime.canonical import parse_canonical
from tracec_runtime.envelope import (MEDIA_TYPE, PREDICATE_TYPE, READ_FORMAT_VERSIONS,
                                     STATEMENT_TYPE, open_envelope_signed)
from tracec_runtime.errors import (BundleIntegrityError, FileTooLargeError, SignatureError,
                                   UnsupportedFormatError)
from tracec_runtime.keys import load_public_key
from tracec_runtime.limits import (MAX_BUNDLE_BYTES, MAX_ENVELOPE_BYTES, MAX_FILE_BYTES,
                                   MAX_MANIFEST_BYTES)
from tracec_runtime.onnx_check import POLICY_OPS, check_onnx_bytes
from tracec_runtime.paths import ENVELOPE, check_name, list_files, read_file

__all__ = ["VerifiedBundle", "verify_bundle", "MANIFEST", "MODEL", "REQUIRED_FILES"]

MANIFEST = "manifest.json"
MODEL = "model.onnx"
REQUIRED_FILES = (MANIFEST, MODEL)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SIZE = re.compile(r"^(0|[1-9][0-9]*)$")


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose every file matched the signed statement.

    ``files`` maps each subject name to the exact bytes that were hashed;
    ``signer`` is the keyid whose signature verified (``None`` if unchecked).
    """

    path: Path
    statement: dict
    manifest: dict
    files: dict[str, bytes]
    signer: Optional[str]

    @property
    def signed(self) -> bool:
        """True when a signature was checked against the deployer's key."""
        return self.signer is not None

    @property
    def digest(self) -> str:
        """SHA-256 of the verified manifest bytes: the bundle's identity, as the routing
        service reports it (``/readyz``, ``tracec_bundle_info``) and logs it (``bundle``)."""
        return hashlib.sha256(self.files[MANIFEST]).hexdigest()


def _short(digest: str) -> str:
    return digest[:12] + "\u2026"


def _subjects(statement: dict, src: str) -> list[tuple[str, str, int]]:
    """``(name, sha256, size)`` per subject; format problems and unsafe names raise."""
    def bad(msg: str) -> UnsupportedFormatError:
        return UnsupportedFormatError(f"{src}: statement {msg}")

    if statement.get("_type") != STATEMENT_TYPE:
        raise bad(f"_type must be {STATEMENT_TYPE!r}; found {statement.get('_type')!r}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise bad(f"predicateType must be {PREDICATE_TYPE!r}; "
                  f"found {statement.get('predicateType')!r}")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise bad("predicate must be an object")
    if predicate.get("format_version") not in READ_FORMAT_VERSIONS:
        raise bad(f"predicate.format_version {predicate.get('format_version')!r} is not "
                  f"supported: this runtime reads format versions "
                  f"{', '.join(map(repr, READ_FORMAT_VERSIONS))}")
    if predicate.get("media_type") != MEDIA_TYPE:
        raise bad(f"predicate.media_type must be {MEDIA_TYPE!r}; "
                  f"found {predicate.get('media_type')!r}")
    subject = statement.get("subject")
    if not isinstance(subject, list):
        raise bad("subject must be a list")
    out = []
    for i, entry in enumerate(subject):
        where = f"subject[{i}]"
        if not isinstance(entry, dict):
            raise bad(f"{where} must be an object")
        name = check_name(entry.get("name"), f"{src}: statement {where}: ")
        if name == ENVELOPE:
            raise bad(f"{where}: {ENVELOPE} cannot be a subject of itself")
        digest, annotations = entry.get("digest"), entry.get("annotations")
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        size = annotations.get("size") if isinstance(annotations, dict) else None
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise bad(f"{where} ({name}): digest.sha256 must be 64 lowercase hex; found {sha!r}")
        if not isinstance(size, str) or not _SIZE.match(size):
            raise bad(f"{where} ({name}): annotations.size must be a decimal string; "
                      f"found {size!r}")
        cap, what = ((MAX_MANIFEST_BYTES, "the manifest cap") if name == MANIFEST
                     else (MAX_FILE_BYTES, "the per-file cap"))
        if len(size) > 12 or int(size) > cap:  # the length test first: no 5,000-digit int()
            raise bad(f"{where} ({name}): annotations.size {size[:24]} is over {what} of "
                      f"{cap} bytes")
        out.append((name, sha, int(size)))
    total = sum(size for _, _, size in out)
    if total > MAX_BUNDLE_BYTES:
        raise bad(f"subjects add up to {total} bytes; the loader reads at most "
                  f"{MAX_BUNDLE_BYTES} bytes per bundle")
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise bad(f"subject lists {', '.join(dup)} more than once")
    if names != sorted(names):
        raise bad("subject must be sorted by name")
    return out


def _diff(root: Path, on_disk: list[str], subjects: list) -> tuple[dict[str, bytes], list[str]]:
    """Read each subject once; return the verified bytes and every problem found."""
    files: dict[str, bytes] = {}
    problems: list[str] = []
    present = set(on_disk) - {ENVELOPE}
    listed = {name for name, _, _ in subjects}
    for name, sha, size in subjects:
        try:  # stat first: a file larger than its signed size is never read
            data = read_file(root, name, max_bytes=size) if name in present else None
        except FileTooLargeError as exc:
            problems.append(f"changed: {name} (size {size} expected, "
                            f"{exc.size if exc.size > size else 'more'} found; not read)")
            continue
        if data is None:
            problems.append(f"missing: {name}")
            continue
        found = hashlib.sha256(data).hexdigest()
        if found != sha:
            sizes = f"; size {size} expected, {len(data)} found" if len(data) != size else ""
            problems.append(f"changed: {name} (sha256 {_short(sha)} expected, "
                            f"{_short(found)} found{sizes})")
        elif len(data) != size:
            problems.append(f"size: {name} (annotations.size {size} expected, {len(data)} found)")
        else:
            files[name] = data
    problems += [f"extra: {name}" for name in sorted(present - listed)]
    problems += [f"missing: {name} (required, and not listed in the statement)"
                 for name in REQUIRED_FILES if name not in listed]
    return files, problems


def _manifest_problems(manifest: dict, subjects: list, where: Path) -> list[str]:
    """Defence in depth: ``manifest.files`` must describe exactly the signed subjects."""
    declared = manifest.get("files")
    if not isinstance(declared, dict):
        raise UnsupportedFormatError(f"{where}: field 'files' must be an object of "
                                     f"{{name: {{sha256, size}}}}; found {type(declared).__name__}")
    expected = {name: (sha, size) for name, sha, size in subjects if name != MANIFEST}
    problems = []
    for name in sorted(set(declared) | set(expected)):
        if name not in expected:
            problems.append(f"manifest.files: {name} is declared in {MANIFEST} "
                            f"but not in the signed statement")
            continue
        if name not in declared:
            problems.append(f"manifest.files: {name} is in the signed statement "
                            f"but not declared in {MANIFEST}")
            continue
        entry = declared[name] if isinstance(declared[name], dict) else {}
        sha, size = expected[name]
        got_sha, got_size = entry.get("sha256"), entry.get("size")
        if got_sha != sha:
            shown = _short(got_sha) if isinstance(got_sha, str) else repr(got_sha)
            problems.append(f"manifest.files: {name} (sha256 {shown} in {MANIFEST}, "
                            f"{_short(sha)} in the statement)")
        if type(got_size) is not int or got_size != size:
            problems.append(f"manifest.files: {name} (size {got_size!r} in {MANIFEST}, "
                            f"{size} in the statement)")
    return problems


def verify_bundle(path: Union[str, os.PathLike], public_key: object = None,
                  allow_unsigned: bool = False) -> VerifiedBundle:
    """Verify the bundle at ``path`` and return its verified contents; raise otherwise.

    ``public_key``: the deployer's key (path, JWK bytes/str/dict or ``VerifyKey``),
    never read from the bundle.  ``allow_unsigned=True`` is explicitly unsafe: it
    accepts a bundle without a checked signature but still checks every digest.
    """
    root = Path(path)
    key = load_public_key(public_key) if public_key is not None else None  # KeyFileError
    on_disk = list_files(root)                                          # 1. walk
    envelope = read_file(root, ENVELOPE, MAX_ENVELOPE_BYTES) if ENVELOPE in on_disk else None
    if envelope is None:
        raise SignatureError(f"{root}: no {ENVELOPE}: the bundle is not sealed")
    src = str(root / ENVELOPE)
    statement, signer = open_envelope_signed(envelope, key, allow_unsigned, src)  # 2. signature
    subjects = _subjects(statement, src)                                # 3. statement
    files, problems = _diff(root, on_disk, subjects)                    # 4. files
    if problems:
        raise BundleIntegrityError(str(root), problems)
    where = root / MANIFEST
    try:                                                                # 5. manifest
        manifest = parse_canonical(files[MANIFEST])
    except ValueError as exc:  # UnicodeDecodeError included
        raise UnsupportedFormatError(f"{where}: {exc}") from None
    if not isinstance(manifest, dict):
        raise UnsupportedFormatError(f"{where}: expected a JSON object")
    if manifest.get("format_version") not in READ_FORMAT_VERSIONS:
        raise UnsupportedFormatError(f"{where}: format_version must be one of "
                                     f"{', '.join(map(repr, READ_FORMAT_VERSIONS))}; "
                                     f"found {manifest.get('format_version')!r}")
    problems = _manifest_problems(manifest, subjects, where)
    if problems:
        raise BundleIntegrityError(str(root), problems)
    for name in sorted(files):                                          # 6. graphs
        if name.endswith(".onnx"):  # no external data anywhere; model.onnx: the policy ops
            check_onnx_bytes(files[name], str(root / name), POLICY_OPS if name == MODEL else None)
    return VerifiedBundle(root, statement, manifest, files, signer)

"""The signed statement of a generated source package, and its verification.

``codegen.dsse.json`` is a DSSE envelope (the bundle mechanism,
``tracec_runtime.envelope``) around an in-toto statement with its own predicate
type and media type: every emitted file with SHA-256 and size, the language,
the digest of the bundle envelope it was generated from, and the names the
package's ``build.sh`` may create (ignored by verification; anything else that
is not listed is an error).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Union

from tracec.codegen.errors import CodegenVerificationError
from tracec_runtime.canonical import canonical_file_bytes
from tracec_runtime.envelope import make_envelope, open_envelope_signed
from tracec_runtime.errors import BundleIntegrityError
from tracec_runtime.paths import list_files, read_file

__all__ = ["CODEGEN_ENVELOPE", "PREDICATE_TYPE", "MEDIA_TYPE", "is_codegen_dir", "statement_of",
           "envelope_bytes", "verify_codegen"]

CODEGEN_ENVELOPE = "codegen.dsse.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://tracec.dev/codegen/v1"
MEDIA_TYPE = "application/vnd.tracec.codegen.v1+json"
FORMAT_VERSION = "1"


def is_codegen_dir(path: Union[str, os.PathLike]) -> bool:
    p = Path(path)
    return p.is_dir() and not p.is_symlink() and (p / CODEGEN_ENVELOPE).is_file()


def statement_of(files: dict[str, bytes], *, lang: str, bundle_digest: str,
                 build_outputs: list[str]) -> dict:
    subjects = [{"name": n, "digest": {"sha256": hashlib.sha256(files[n]).hexdigest()},
                 "annotations": {"size": str(len(files[n]))}} for n in sorted(files)]
    return {"_type": STATEMENT_TYPE, "predicateType": PREDICATE_TYPE,
            "predicate": {"format_version": FORMAT_VERSION, "media_type": MEDIA_TYPE,
                          "language": lang, "bundle": {"envelope_sha256": bundle_digest},
                          "build_outputs": sorted(build_outputs)},
            "subject": subjects}


def envelope_bytes(statement: dict, signing_key: object = None) -> bytes:
    return canonical_file_bytes(make_envelope(statement, signing_key))


def _ignored(name: str, outputs: list) -> bool:
    return any(name == o or (o.endswith("/") and name.startswith(o)) for o in outputs)


def verify_codegen(path: Union[str, os.PathLike], public_key: object = None,
                   allow_unsigned: bool = False) -> dict:
    """Verify a generated package; return ``{"statement", "signer", "files"}`` or raise."""
    root = Path(path)
    names = list_files(root)
    src = str(root / CODEGEN_ENVELOPE)
    data = read_file(root, CODEGEN_ENVELOPE) if CODEGEN_ENVELOPE in names else None
    if data is None:
        raise CodegenVerificationError(f"{root}: no {CODEGEN_ENVELOPE}: not a codegen package")
    statement, signer = open_envelope_signed(data, public_key, allow_unsigned, src)
    pred = statement.get("predicate") if isinstance(statement.get("predicate"), dict) else {}
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE \
            or pred.get("media_type") != MEDIA_TYPE or pred.get("format_version") != FORMAT_VERSION:
        raise CodegenVerificationError(
            f"{src}: statement must have predicateType {PREDICATE_TYPE!r}, media_type "
            f"{MEDIA_TYPE!r} and format_version {FORMAT_VERSION!r}; found "
            f"{statement.get('predicateType')!r}, {pred.get('media_type')!r}, "
            f"{pred.get('format_version')!r}")
    outputs = pred.get("build_outputs") if isinstance(pred.get("build_outputs"), list) else []
    problems, listed = [], set()
    for i, s in enumerate(statement.get("subject") or []):
        name = s.get("name") if isinstance(s, dict) else None
        sha = (s.get("digest") or {}).get("sha256") if isinstance(s, dict) else None
        if not isinstance(name, str) or not isinstance(sha, str):
            raise CodegenVerificationError(f"{src}: subject[{i}] needs a name and digest.sha256")
        listed.add(name)
        got = read_file(root, name) if name in names else None
        if got is None:
            problems.append(f"missing: {name}")
        elif hashlib.sha256(got).hexdigest() != sha:
            problems.append(f"changed: {name}")
        elif str(len(got)) != (s.get("annotations") or {}).get("size"):
            problems.append(f"size: {name}")
    problems += [f"extra: {n}" for n in names
                 if n not in listed and n != CODEGEN_ENVELOPE and not _ignored(n, outputs)]
    if problems:
        raise BundleIntegrityError(str(root), problems)
    return {"statement": statement, "signer": signer, "files": sorted(listed)}

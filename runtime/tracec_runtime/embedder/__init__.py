"""The text embedder a text-in bundle carries: tokenizer, graph, pooling, fingerprint.

``load_text_embedder`` reads ``manifest.embedder.text`` and builds a
:class:`TextEmbedder` from the verified bytes of the files it names, then
checks the fingerprint (``EmbedderFingerprintError`` on a mismatch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from tracec_runtime.embedder.model import MAX_GROUP, PROCEDURE, TextEmbedder
from tracec_runtime.embedder.tokenize import EMPTY, INVALID, MAX_CHARS, TRUNCATED
from tracec_runtime.errors import UnsupportedFormatError

__all__ = ["TextEmbedder", "PROCEDURE", "MAX_GROUP", "MAX_CHARS", "EMPTY", "INVALID", "TRUNCATED",
           "embedder_input", "load_text_embedder"]


def embedder_input(manifest: dict, where: str) -> str:
    """``"text"`` or ``"embedding"`` (format version 1 bundles are embedding-in)."""
    embedder = manifest.get("embedder")
    value = embedder.get("input", "embedding") if isinstance(embedder, dict) else None
    if manifest.get("format_version") != "1" and value not in ("text", "embedding"):
        raise UnsupportedFormatError(f"{where}: field 'embedder.input' must be 'text' or "
                                     f"'embedding'; found {value!r}")
    return value if manifest.get("format_version") != "1" else "embedding"


def load_text_embedder(manifest: dict, files: Mapping[str, bytes], root: Path,
                       dimension: int) -> Optional[TextEmbedder]:
    """The bundle's embedder (``None`` for an embedding-in bundle)."""
    from tracec_runtime.embedder import fingerprint

    where = str(root / "manifest.json")
    if embedder_input(manifest, where) != "text":
        return None
    text = manifest["embedder"].get("text")
    if not isinstance(text, dict):
        raise UnsupportedFormatError(f"{where}: a text-in bundle needs the object "
                                     f"'embedder.text'; found {text!r:.80}")
    if text.get("procedure") != PROCEDURE:
        raise UnsupportedFormatError(f"{where}: embedder.text.procedure {text.get('procedure')!r}"
                                     f" is not supported: this runtime embeds by {PROCEDURE!r}")
    max_tokens = text.get("max_tokens")
    if type(max_tokens) is not int or not 2 <= max_tokens <= 4096:
        raise UnsupportedFormatError(f"{where}: embedder.text.max_tokens must be an integer in "
                                     f"[2, 4096]; found {max_tokens!r}")
    blobs = []
    for key in ("model", "tokenizer"):
        name = text.get(key)
        if not isinstance(name, str) or name not in files:
            raise UnsupportedFormatError(f"{where}: embedder.text.{key} must name a file of the "
                                         f"signed statement; found {name!r}")
        blobs.append(files[name])
    embedder = TextEmbedder(blobs[0], blobs[1], max_tokens=max_tokens, dimension=dimension,
                            where=str(root / text["model"]))
    fingerprint.check(text.get("fingerprint"), embedder.embed_many, dimension, where)
    return embedder

"""Text-in toy bundles: the toy policy graph over 384-d embeddings, plus the real embedder.

The embedder files are the packaged int8 all-MiniLM-L6-v2 and its tokenizer
(``tracec.minilm``, pinned by SHA-256); the fingerprint is computed by the
runtime's own ``TextEmbedder``, exactly as the compiler records it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from tracec_runtime.canonical import canonical_file_bytes
from tracec_runtime.embedder import PROCEDURE, fingerprint
from tracec_runtime.envelope import seal

from .conftest import LABELS, make_manifest, toy_model

D = 384
TAU = "0.5"
W384 = np.random.default_rng(11).normal(scale=8.0, size=(D, len(LABELS))).astype(np.float32)
MODEL, TOKENIZER = "embedder/model.onnx", "embedder/tokenizer.json"


def embedder_files() -> tuple[bytes, bytes]:
    from tracec import minilm

    files = minilm.packaged_files()
    return files.model, files.tokenizer


def text_record(max_tokens: int = 256, fp: Optional[dict] = None) -> dict:
    from tracec import minilm

    return {"procedure": PROCEDURE, "model": MODEL, "tokenizer": TOKENIZER,
            "max_tokens": max_tokens,
            "fingerprint": fp or fingerprint.record(minilm.embedder().embed_many)}


def make_text_bundle(root: Path, signing_key=None, *, text: Optional[dict] = None,
                     model: Optional[bytes] = None, tokenizer: Optional[bytes] = None,
                     gate: str = "open") -> Path:
    """A sealed text-in toy bundle at ``root`` (format version 2)."""
    emb_model, emb_tok = embedder_files()
    files = {"model.onnx": toy_model(W384, TAU),
             "artifacts/labels.json": canonical_file_bytes({"labels": LABELS}),
             MODEL: emb_model if model is None else model,
             TOKENIZER: emb_tok if tokenizer is None else tokenizer}
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    manifest = make_manifest(files, tau=TAU, dimension=D, gate=gate)
    manifest["format_version"] = "2"
    manifest["embedder"] = {"id": "toy int8 MiniLM", "dimension": D, "normalization": "l2",
                            "input": "text", "backend": "minilm-int8",
                            "text": text if text is not None else text_record()}
    (root / "manifest.json").write_bytes(canonical_file_bytes(manifest))
    seal(root, signing_key)
    return root

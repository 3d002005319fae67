"""The embedder fingerprint: embeddings of fixed canary strings, stored in the manifest.

Signed documents hold no floats, so each vector is the hex of its float32
little-endian bytes.  At load the runtime re-embeds the canaries and refuses
the bundle when any component differs by more than ``max_abs_diff``.
"""

from __future__ import annotations

import binascii

import numpy as np

from tracec_runtime.canonical import parse_f32
from tracec_runtime.errors import EmbedderFingerprintError, UnsupportedFormatError

# A short question, a longer one, non-ASCII, one past max_tokens, and two of equal token
# length (so the load check also exercises a batched group against rows run one by one).
CANARIES = (
    "How do I reset my card PIN?",
    "I was charged twice for the same purchase yesterday and I would like a refund.",
    "Überweisung nach Zürich: ¿dónde está mi dinero? 東京",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 40),
    "my card was declined",
    "my card got stolen",
)
MAX_ABS_DIFF = "0.0001"
# Texts of one token length (6 with [CLS]/[SEP]): the embedder's batch-invariance self-check.
EQUAL_LENGTH = ("my card was declined", "my card got stolen", "where is my money",
                "how to top up", "I lost my card")


def encode_vector(v: np.ndarray) -> str:
    return np.ascontiguousarray(v, dtype="<f4").tobytes().hex()


def decode_vector(text: object, dim: int, where: str) -> np.ndarray:
    if not isinstance(text, str) or len(text) != 8 * dim:
        raise UnsupportedFormatError(f"{where}: expected {8 * dim} hex characters (float32 x "
                                     f"{dim}, little-endian); found {str(text)[:40]!r}")
    try:
        return np.frombuffer(binascii.unhexlify(text), dtype="<f4").astype(np.float32)
    except (binascii.Error, ValueError):
        raise UnsupportedFormatError(f"{where}: not a hex string") from None


def record(embed_many, canaries=CANARIES) -> dict:
    """The manifest's ``fingerprint`` object for the embedder ``embed_many``."""
    X, _ = embed_many(list(canaries))
    return {"canaries": list(canaries), "vectors_f32le_hex": [encode_vector(v) for v in X],
            "max_abs_diff": MAX_ABS_DIFF}


def check(doc: object, embed_many, dim: int, where: str) -> float:
    """Re-embed the canaries; the largest difference, or ``EmbedderFingerprintError``."""
    if not isinstance(doc, dict):
        raise UnsupportedFormatError(f"{where}: field 'embedder.text.fingerprint' must be an "
                                     f"object; found {type(doc).__name__}")
    texts, vectors = doc.get("canaries"), doc.get("vectors_f32le_hex")
    if (not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts)
            or not isinstance(vectors, list) or len(vectors) != len(texts)):
        raise UnsupportedFormatError(f"{where}: embedder.text.fingerprint needs 'canaries' "
                                     f"(strings) and as many 'vectors_f32le_hex'")
    try:
        tol = float(parse_f32(doc.get("max_abs_diff")))
    except ValueError as exc:
        raise UnsupportedFormatError(f"{where}: embedder.text.fingerprint.max_abs_diff: "
                                     f"{exc}") from None
    expected = np.stack([decode_vector(v, dim, f"{where}: fingerprint vector {i}")
                         for i, v in enumerate(vectors)])
    found, _ = embed_many(texts)
    diff = np.abs(found.astype(np.float64) - expected).max(axis=1)
    worst = int(diff.argmax())
    if not diff[worst] <= tol:
        raise EmbedderFingerprintError(
            f"{where}: the embedder computes different numbers here than at compile time: "
            f"canary {worst} ({texts[worst][:40]!r}) differs by {diff[worst]:.3g} "
            f"(tolerance max_abs_diff {tol:g}); this onnxruntime/tokenizers build would "
            f"void the certificate, so the bundle is refused")
    return float(diff.max())

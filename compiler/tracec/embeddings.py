"""Embeddings: load precomputed ones from ``.npy``, or compute them offline.

``load_embeddings`` never unpickles: object arrays are refused from the file
header.  ``embed_texts`` runs the default embedder, all-MiniLM-L6-v2 as int8
ONNX (``tracec.minilm``), through the runtime's own ``TextEmbedder``: the
exact code and bytes a text-in bundle runs, so tau is certified on the
numbers the runtime computes.  ``backend="sentence-transformers"`` (extra
``tracec[embed-st]``) is the optional fp32 torch path.  Results are cached
under a key derived from the embedder's identity and the texts.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from tracec import embed_st, minilm, npy
from tracec.embed_st import EmbedderUnavailable  # noqa: F401  (re-exported)
from tracec.errors import EmbeddingError, InputError

DIMENSION = minilm.DIMENSION
CHUNK = 2048  # texts per encode call (progress granularity); part of the cache format
BACKENDS = ("minilm-int8", "sentence-transformers")
_FLOAT_DTYPES = ("float16", "float32", "float64")


@dataclass(frozen=True)
class EmbedderSpec:
    """What produced the embeddings; recorded in the manifest."""

    id: str
    dimension: int
    normalization: str
    package: Optional[str]
    package_version: Optional[str]
    backend: str = "minilm-int8"
    pooling: str = "mean"
    digest: Optional[str] = None      # SHA-256 of the model's weights file
    max_tokens: Optional[int] = None

    def as_dict(self) -> dict:
        return asdict(self)


def default_spec() -> EmbedderSpec:
    """The default embedder: int8 ONNX, mean pooling, L2, ``MAX_TOKENS`` tokens."""
    from tracec_runtime.embedder import PROCEDURE

    files = minilm.packaged_files()
    return EmbedderSpec(minilm.MODEL_ID, DIMENSION, "l2", minilm.MODEL_PACKAGE, files.model_version,
                        "minilm-int8", f"mean ({PROCEDURE})", minilm.MODEL_SHA256, minilm.MAX_TOKENS)


def st_spec() -> EmbedderSpec:
    """The sentence-transformers backend (``package_version`` None when not installed)."""
    return EmbedderSpec(embed_st.MODEL_ID, DIMENSION, "l2", embed_st.MODEL_PACKAGE,
                        embed_st.package_version(), "sentence-transformers", "mean",
                        embed_st.content_digest(), 256)


def spec_for(backend: str) -> EmbedderSpec:
    if backend not in BACKENDS:
        raise InputError(f"The 'embedder' parameter of compile must be one of "
                         f"{', '.join(BACKENDS)}. Got {backend!r} instead.")
    return default_spec() if backend == "minilm-int8" else st_spec()


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
# Computing embeddings, cached by content.
# --------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$TRACEC_CACHE_DIR`` or ``~/.cache/tracec/embeddings``."""
    env = os.environ.get("TRACEC_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tracec" / "embeddings"


def cache_key(spec: EmbedderSpec, texts: Sequence[str]) -> str:
    """SHA-256 over the embedder spec, the encoder versions and the texts (length-prefixed)."""
    h = hashlib.sha256(b"tracec-embeddings-v2\0")
    encoder = (_version("onnxruntime"), _version("tokenizers")) if spec.backend == "minilm-int8" \
        else (_version("sentence-transformers"), embed_st.BATCH_SIZE)
    header = {"spec": spec.as_dict(), "encoder": list(encoder), "chunk": CHUNK, "n": len(texts)}
    h.update(json.dumps(header, sort_keys=True).encode("utf-8"))
    for text in texts:
        b = text.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()


def _version(dist: str) -> Optional[str]:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _encode(texts: list[str], backend: str) -> np.ndarray:
    if backend == "sentence-transformers":
        return embed_st.encode(texts)
    return minilm.embedder().embed_many(texts)[0]


def check_texts(texts: Sequence[str], source: str = "input") -> None:
    """Refuse texts the embedder would only flag (empty, unpaired surrogates): ``InputError``
    naming ``source`` and the 1-based line."""
    from tracec_runtime.embedder.tokenize import check_text

    for i, text in enumerate(texts):
        flag = check_text(text) if isinstance(text, str) else "not a string"
        if flag is not None:
            shown = json.dumps(text)[:60] if isinstance(text, str) else type(text).__name__
            raise InputError(f"{source}:{i + 1}: field 'input': expected non-empty, valid "
                             f"Unicode text to embed, found {flag} ({shown})")


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
                progress: Optional[Callable[[int, int], None]] = None,
                backend: str = "minilm-int8", source: str = "input") -> np.ndarray:
    """Embed ``texts``: float32 ``(len(texts), 384)``, L2-normalised.

    Results are cached in ``cache_dir/<key>.npy`` (see ``cache_key``); ``progress``
    is called as ``progress(done, total)`` after each chunk of texts.
    """
    texts = list(texts)
    if not texts:
        return np.empty((0, DIMENSION), dtype=np.float32)
    check_texts(texts, source)
    spec = spec_for(backend)
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{cache_key(spec, texts)}.npy"
    cached = _read_cache(path, len(texts))
    if cached is not None:
        if progress is not None:
            progress(len(texts), len(texts))
        return cached
    parts = []
    for start in range(0, len(texts), CHUNK):
        parts.append(_encode(texts[start:start + CHUNK], backend))
        if progress is not None:
            progress(min(start + CHUNK, len(texts)), len(texts))
    out = np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)
    save_npy(path, out)
    return out

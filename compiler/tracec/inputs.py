"""Load traces and their embeddings into one validated, row-aligned table."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tracec.config import CompileConfig
from tracec.embeddings import check_embeddings, default_spec, embed_texts, load_embeddings
from tracec.loader import describe_read
from tracec.manifest import EmbedderInfo
from tracec.traces import Traces, label_index, load_traces


@dataclass(frozen=True)
class Data:
    traces: Traces
    X: np.ndarray            # float32 (n, dim)
    y: np.ndarray            # int64 teacher label index
    labels: list[str]
    embedder: EmbedderInfo
    embeddings_sha256: str

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])


def load_inputs(config: CompileConfig, say: Callable[[str], None]) -> Data:
    """Traces (a path or records read with the config's trace options, or already loaded) and their
    embeddings (a .npy path, an array, or computed).  The manifest's digests are of the
    content (``Traces.rows_sha256``, the float32 values), so a file and the same rows or
    array in memory give the same bundle."""
    traces = config.traces if isinstance(config.traces, Traces) \
        else load_traces(config.traces, **config.trace_options())
    say(f"traces {describe_read(traces)}")
    labels, y = label_index(traces.teachers)
    if config.embeddings is not None:
        if isinstance(config.embeddings, np.ndarray):
            X = check_embeddings(config.embeddings, traces.n, traces_path=traces.path)
        else:
            X, _ = load_embeddings(config.embeddings, traces.n, traces_path=traces.path)
        embedder = EmbedderInfo(id=config.embedder_id or "unspecified (provided with --embeddings)",
                                dimension=int(X.shape[1]), normalization=_normalization(X),
                                source="provided")
    else:
        spec = default_spec()
        X = embed_texts(traces.inputs, cache_dir=config.cache_dir,
                        progress=lambda done, total: say(f"embedding {done:,}/{total:,}"))
        embedder = EmbedderInfo(id=spec.id, dimension=spec.dimension,
                                normalization=spec.normalization, package=spec.package,
                                package_version=spec.package_version, source="computed")
    X = np.ascontiguousarray(X, dtype=np.float32)
    digest = hashlib.sha256(np.ascontiguousarray(X, dtype="<f4").tobytes()).hexdigest()
    say(f"embeddings: {X.shape[0]:,} x {X.shape[1]} ({embedder.source}); "
        f"{len(labels)} teacher labels")
    return Data(traces, X, y, labels, embedder, digest)


def _normalization(X: np.ndarray) -> str:
    norms = np.linalg.norm(X.astype(np.float64), axis=1)
    return "l2" if np.allclose(norms, 1.0, atol=1e-2) else "none"

"""Load traces and their embeddings into one validated, row-aligned table.

Three ways in (``manifest.embedder``): the default int8 ONNX embedder (a
text-in bundle: its graph, tokenizer and fingerprint ship in the bundle),
the optional sentence-transformers backend, or precomputed ``--embeddings``
with a required ``--embedder-id`` (both embedding-in only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tracec import minilm
from tracec.config import CompileConfig
from tracec.embeddings import check_embeddings, embed_texts, load_embeddings, spec_for
from tracec.loader import describe_read
from tracec.manifest import EmbedderInfo, Fingerprint, TextEmbedderRecord
from tracec.traces import Traces, label_index, load_traces


@dataclass(frozen=True)
class Data:
    traces: Traces
    X: np.ndarray            # float32 (n, dim)
    y: np.ndarray            # int64 teacher label index
    labels: list[str]
    embedder: EmbedderInfo
    embeddings_sha256: str
    embedder_files: dict = field(default_factory=dict)  # bundle path -> bytes (text-in only)

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])


def load_inputs(config: CompileConfig, say: Callable[[str], None]) -> Data:
    return embed_inputs(config, read_traces(config, say), say)


def read_traces(config: CompileConfig, say: Callable[[str], None]) -> Traces:
    """The load stage: a path or records read with the config's trace options, or already
    loaded ``Traces``.  The manifest's digests are of the content (``Traces.rows_sha256``, the
    float32 values), so a file and the same rows or array in memory give the same bundle."""
    traces = config.traces if isinstance(config.traces, Traces) \
        else load_traces(config.traces, **config.trace_options())
    say(f"traces {describe_read(traces)}")
    return traces


def embed_inputs(config: CompileConfig, traces: Traces, say: Callable[[str], None]) -> Data:
    """The embed stage: row-aligned embeddings (computed, cached, or provided)."""
    labels, y = label_index(traces.teachers)
    files: dict = {}
    if config.embeddings is not None:
        if isinstance(config.embeddings, np.ndarray):
            X = check_embeddings(config.embeddings, traces.n, traces_path=traces.path)
        else:
            X, _ = load_embeddings(config.embeddings, traces.n, traces_path=traces.path)
        X = np.ascontiguousarray(X, dtype=np.float32)
        digest = hashlib.sha256(np.ascontiguousarray(X, dtype="<f4").tobytes()).hexdigest()
        embedder = EmbedderInfo(id=config.embedder_id, dimension=int(X.shape[1]),
                                normalization=_normalization(X), source="provided",
                                input="embedding", backend="provided")
    else:
        X = embed_texts(traces.inputs, cache_dir=config.cache_dir, backend=config.embedder,
                        source=str(traces.path),
                        progress=lambda done, total: say(f"embedding {done:,}/{total:,}"))
        digest = hashlib.sha256(np.ascontiguousarray(X, dtype="<f4").tobytes()).hexdigest()
        embedder, files = embedder_record(config.embedder)
    say(f"embeddings: {X.shape[0]:,} x {X.shape[1]} ({embedder.source}, {embedder.input}-in); "
        f"{len(labels)} teacher labels")
    return Data(traces, np.ascontiguousarray(X, dtype=np.float32), y, labels, embedder, digest,
                files)


def embedder_record(backend: str) -> tuple[EmbedderInfo, dict]:
    """The manifest's ``embedder`` and, for the default embedder, the files the bundle carries."""
    from tracec_runtime.embedder import PROCEDURE, fingerprint

    spec = spec_for(backend)
    common = dict(id=spec.id, dimension=spec.dimension, normalization=spec.normalization,
                  package=spec.package, package_version=spec.package_version, source="computed",
                  backend=spec.backend, pooling=spec.pooling, digest=spec.digest,
                  max_tokens=spec.max_tokens)
    if backend != "minilm-int8":
        return EmbedderInfo(**common, input="embedding"), {}
    packaged = minilm.packaged_files()
    text = TextEmbedderRecord(procedure=PROCEDURE, model=minilm.BUNDLE_MODEL,
                              tokenizer=minilm.BUNDLE_TOKENIZER, max_tokens=minilm.MAX_TOKENS,
                              fingerprint=Fingerprint(**fingerprint.record(
                                  minilm.embedder().embed_many)))
    files = {minilm.BUNDLE_MODEL: packaged.model, minilm.BUNDLE_TOKENIZER: packaged.tokenizer}
    return EmbedderInfo(**common, input="text", text=text), files


def _normalization(X: np.ndarray) -> str:
    norms = np.linalg.norm(X.astype(np.float64), axis=1)
    return "l2" if np.allclose(norms, 1.0, atol=1e-2) else "none"

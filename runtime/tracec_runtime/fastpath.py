"""A plain-numpy executor of linear and MLP policy graphs: no onnxruntime.

Built only from the verified bytes of ``fastpath.json`` (canonical JSON, no
floats) and ``fastpath.bin`` (little-endian arrays, 64-byte aligned); the
format is in docs/bundle-format.md.  It computes the function ``model.onnx``
computes: layers, probabilities and acceptor features in float32, the
acceptor's logistic in float64 (then rounded to float32).  The compiler ships
it only when its decisions matched onnxruntime's on every row it checked;
scores differ by float32 rounding, so a row whose score lies within that
rounding of tau could in principle flip (docs/fastpath.md).  An optional
out-of-distribution stage (``$.ood``) ANDs the policy's flag with "cosine to the
nearest prototype >= threshold", computed in float32 as the graph does.
Thread-safe: every call works on fresh arrays.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from tracec_runtime.errors import RouteInputError
from tracec_runtime.fastpath_format import (FASTPATH_BIN, FASTPATH_JSON, FastPathFormatError,
                                            StageWeights, parse_fastpath)

__all__ = ["FastPath", "FastPathFormatError", "FASTPATH_JSON", "FASTPATH_BIN"]

_F32 = np.dtype(np.float32)
_FLOOR = np.float32(1e-12)   # tracec.features.PROB_FLOOR, as the graph's Clip uses it
_ZMIN = -700.0               # exp(-z) stays finite in float64 for the acceptor's sigmoid
_NORM_FLOOR = np.float32(1e-12)   # tracec.export.compose.OOD_EPS: a zero row has similarity 0


class _Stage:
    """One surrogate + acceptor, with everything precomputed for both code paths."""

    __slots__ = ("layers", "hidden", "output", "classes", "class_list", "c0", "c1", "c2", "c3",
                 "b", "log_k")

    def __init__(self, w: StageWeights):
        self.layers = tuple(w.layers)          # (weight [out, in], bias [out]) float32
        self.hidden, self.output = w.hidden, w.output
        self.classes = w.classes
        self.class_list = [int(c) for c in w.classes]
        self.c0, self.c1, self.c2, self.c3 = (float(c) for c in w.acceptor_coef)
        self.b = float(w.acceptor_intercept)
        self.log_k = float(np.float32(np.log(w.classes.shape[0])))   # the graph's constant


def _hidden(kind: str, h: np.ndarray) -> None:
    """sklearn MLP hidden activation, in place."""
    if kind == "relu":
        np.maximum(h, 0.0, out=h)
    elif kind == "tanh":
        np.tanh(h, out=h)
    elif kind == "logistic":
        with np.errstate(over="ignore"):
            np.negative(h, out=h)
            np.exp(h, out=h)
        h += 1.0
        np.reciprocal(h, out=h)


def _logits(st: _Stage, h: np.ndarray, first: Optional[np.ndarray] = None) -> np.ndarray:
    """The last layer's output for rows ``h`` ([N, D] or [D]): float32, a fresh array.
    ``first``: the first layer's product, already computed (fused with the OOD gate's).

    For ``ovr`` heads it is log sigmoid(z), so the probabilities are its softmax:
    one-vs-rest sigmoids normalised to sum 1, as the graph computes them.
    """
    last = len(st.layers) - 1
    for i, (wt, b) in enumerate(st.layers):
        if i == 0 and first is not None:
            h = first
        else:
            h = h @ wt.T if h.ndim == 2 else wt.dot(h)
        h += b
        if i < last:
            _hidden(st.hidden, h)
    if st.output == "ovr":
        np.negative(h, out=h)
        np.logaddexp(0.0, h, out=h)
        np.negative(h, out=h)
    return h


def _binary(z: np.ndarray) -> np.ndarray:
    """Columns (1 - p, p), p = sigmoid(z[..., 0]); exp(-z) -> inf gives p = 0 as in the graph."""
    with np.errstate(over="ignore"):
        np.negative(z, out=z)
        np.exp(z, out=z)
    z += 1.0
    np.reciprocal(z, out=z)
    p = z[..., 0]
    return np.stack([1.0 - p, p], axis=-1)


def _plogp(p: np.ndarray) -> np.ndarray:
    """p * log(max(p, 1e-12)), the graph's Clip, Log, Mul."""
    out = np.maximum(p, _FLOOR)
    np.log(out, out=out)
    out *= p
    return out


def _sigmoid64(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.maximum(z, _ZMIN)))


def _gate_batch(dots: np.ndarray, X: np.ndarray, thr: np.float32) -> np.ndarray:
    """in_distribution [N] from the prototype products ``dots`` [N, M], in float32."""
    norm = np.sqrt(np.einsum("ij,ij->i", X, X))
    np.maximum(norm, _NORM_FLOOR, out=norm)
    return dots.max(axis=1) / norm >= thr


def _gate_one(dots: np.ndarray, x: np.ndarray, thr: float) -> bool:
    """in_distribution of one row: ``best >= threshold * norm`` in float64 (``argmax`` +
    ``item``: no numpy reduction overhead on the latency path)."""
    return dots.item(int(dots.argmax())) >= thr * max(math.sqrt(x.dot(x)), 1e-12)


def _stage_batch(st: _Stage, X: np.ndarray,
                 first: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """(label int64 [N], score float32 [N]) of one stage.

    Softmax heads: with z' = z - max(z), S = sum(exp(z')) and p = exp(z') / S,
    the entropy sum -sum(p log p) is computed as log S - sum(p z') (no log of p).
    """
    z = _logits(st, X, first)
    if st.output == "logistic":
        p = _binary(z)
        neg_ent = _plogp(p).sum(axis=1, dtype=np.float32).astype(np.float64)
    else:
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        total = p.sum(axis=1, keepdims=True)
        p /= total
        neg_ent = (np.einsum("ij,ij->i", p, z).astype(np.float64)
                   - np.log(total[:, 0].astype(np.float64)))
    rows = np.arange(p.shape[0])
    idx = p.argmax(axis=1)
    top1 = p[rows, idx].astype(np.float64)
    p[rows, idx] = -1.0
    top2 = p.max(axis=1).astype(np.float64)
    ent = -neg_ent / st.log_k
    z = st.c0 * top1 + st.c1 * top2 + st.c2 * (top1 - top2) + st.c3 * ent + st.b
    return st.classes[idx], _sigmoid64(z).astype(np.float32)


def _stage_one(st: _Stage, x: np.ndarray, first: Optional[np.ndarray] = None) -> tuple[int, float]:
    """(label, score) of one stage for one row, as ``_stage_batch``; score is a float32 value."""
    z = _logits(st, x, first)
    if st.output == "logistic":
        p = _binary(z)
        neg_ent = float(_plogp(p).sum())
    else:
        z -= z.item(int(z.argmax()))
        p = np.exp(z)
        total = float(p.sum())
        p /= total
        neg_ent = float(p.dot(z)) - math.log(total)
    i = int(p.argmax())
    t1 = p.item(i)
    p[i] = -1.0
    t2 = p.max().item()
    ent = -neg_ent / st.log_k
    z = st.c0 * t1 + st.c1 * t2 + st.c2 * (t1 - t2) + st.c3 * ent + st.b
    return st.class_list[i], float(np.float32(1.0 / (1.0 + math.exp(-max(z, _ZMIN)))))


class FastPath:
    """The numpy policy: ``run`` for batches, ``run_one`` for latency.

    Construct with :meth:`from_bytes` from verified bundle bytes only.
    """

    def __init__(self, json_bytes: bytes, bin_bytes: bytes):
        spec = parse_fastpath(json_bytes, bin_bytes)
        self._mode, self._tau, self._dim = spec.mode, spec.tau, spec.n_features
        self._stages = tuple(_Stage(w) for w in spec.stages)
        self._tau_f = float(spec.tau)
        self._heads = tuple(w.head for w in spec.stages)
        self._max_label = max(int(w.classes.max()) for w in spec.stages)
        self._ood = None if spec.ood is None else (spec.ood.prototypes, spec.ood.threshold)
        self._ood_thr = None if spec.ood is None else float(spec.ood.threshold)
        # stage 1's first layer and the prototypes in one matrix: one product for both
        self._fused, self._k0 = None, 0
        if spec.ood is not None:
            w0 = self._stages[0].layers[0][0]
            self._fused, self._k0 = np.ascontiguousarray(np.vstack([w0, spec.ood.prototypes])), \
                w0.shape[0]

    @classmethod
    def from_bytes(cls, json_bytes: bytes, bin_bytes: bytes) -> "FastPath":
        """Parse and validate both files (``FastPathFormatError`` on any problem)."""
        return cls(json_bytes, bin_bytes)

    mode = property(lambda self: self._mode, doc="global, l2d, cascade or closed")
    tau = property(lambda self: self._tau, doc="the threshold, np.float32")
    n_features = property(lambda self: self._dim, doc="embedding dimension D")
    heads = property(lambda self: self._heads, doc="head type per stage")
    max_label = property(lambda self: self._max_label, doc="largest global label index")
    gated = property(lambda self: self._ood is not None, doc="has an out-of-distribution stage")
    ood_threshold = property(lambda self: None if self._ood is None else self._ood[1],
                             doc="the gate's cosine threshold (np.float32), or None")

    def inside(self, X: np.ndarray) -> np.ndarray:
        """in_distribution bool [N] for float32 ``X`` [N, D] (all true without a gate)."""
        if self._ood is None:
            return np.ones(X.shape[0], dtype=bool)
        return _gate_batch(X @ self._ood[0].T, X, self._ood[1])

    def inside_one(self, x: np.ndarray) -> bool:
        """in_distribution for one float32 row ``x`` [D] (as ``run_one`` decides it)."""
        return True if self._ood is None else _gate_one(self._ood[0].dot(x), x, self._ood_thr)

    def __repr__(self) -> str:
        return (f"FastPath(mode={self._mode!r}, heads={list(self._heads)}, "
                f"n_features={self._dim}, tau={self._tau_f:.9g})")

    def run(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(label int64 [N], score float32 [N], handled bool [N]) for float32 ``X`` [N, D]."""
        return self.run_full(X)[:3]

    def run_full(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``run`` plus in_distribution bool [N] (all true without a gate)."""
        if not isinstance(X, np.ndarray) or X.dtype != _F32 or X.ndim != 2 \
                or X.shape[1] != self._dim:
            raise RouteInputError(_bad_input(X, f"float32 [N, {self._dim}]"))
        n = X.shape[0]
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, bool), \
                np.zeros(0, bool)
        if self._fused is None:
            outs, inside = [_stage_batch(st, X) for st in self._stages], None
        else:
            both, k0 = X @ self._fused.T, self._k0
            inside = _gate_batch(both[:, k0:], X, self._ood[1])
            outs = [_stage_batch(self._stages[0], X, both[:, :k0])] + \
                [_stage_batch(st, X) for st in self._stages[1:]]
        if len(outs) == 1:
            label, score = outs[0]
        else:
            (y1, s1), (y2, s2) = outs
            first = s1 >= self._tau
            label, score = np.where(first, y1, y2), np.where(first, s1, np.maximum(s1, s2))
        if self._mode == "global":
            handled = np.ones(n, dtype=bool)
        elif self._mode == "closed":
            handled = np.zeros(n, dtype=bool)
        else:
            handled = score >= self._tau
        if inside is None:
            return label, score, handled, np.ones(n, dtype=bool)
        return label, score, handled & inside, inside

    def run_one(self, x: np.ndarray) -> tuple[int, float, bool]:
        """(label, score, handled) for one float32 row ``x`` [D]."""
        if not isinstance(x, np.ndarray) or x.dtype != _F32 or x.shape != (self._dim,):
            raise RouteInputError(_bad_input(x, f"float32 [{self._dim}]"))
        st, inside = self._stages, True
        if self._fused is None:
            label, score = _stage_one(st[0], x)
        else:
            both = self._fused.dot(x)
            inside = _gate_one(both[self._k0:], x, self._ood_thr)
            label, score = _stage_one(st[0], x, both[:self._k0])
        if len(st) == 2 and score < self._tau_f:  # stage 2 only for what stage 1 defers
            y2, s2 = _stage_one(st[1], x)
            label, score = y2, max(score, s2)
        mode = self._mode
        handled = True if mode == "global" else (False if mode == "closed"
                                                 else score >= self._tau_f)
        return label, score, handled and inside


def _bad_input(x: object, expected: str) -> str:
    found = (f"{x.dtype} {list(x.shape)}" if isinstance(x, np.ndarray)
             else type(x).__name__)
    return f"the fast path expects a {expected} numpy array; got {found}"

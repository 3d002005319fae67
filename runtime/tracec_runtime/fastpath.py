"""A plain-numpy executor of linear and MLP policy graphs: no onnxruntime.

Built only from the verified bytes of ``fastpath.json`` (canonical JSON, no
floats) and ``fastpath.bin`` (little-endian arrays, 64-byte aligned); the
format is in docs/bundle-format.md.  It computes what ``model.onnx`` computes,
in float32, with the same operations, and the compiler ships it only when its
decisions matched onnxruntime's on every row it checked.  "Identical" means
identical decisions on those rows; scores differ by float32 rounding, so a
row whose score lies within that rounding of tau could in principle flip
(docs/fastpath.md).  Thread-safe: every call works on fresh arrays.
"""

from __future__ import annotations

import math

import numpy as np

from tracec_runtime.errors import RouteInputError
from tracec_runtime.fastpath_format import (FASTPATH_BIN, FASTPATH_JSON, FastPathFormatError,
                                            StageWeights, parse_fastpath)

__all__ = ["FastPath", "FastPathFormatError", "FASTPATH_JSON", "FASTPATH_BIN"]

_F32 = np.dtype(np.float32)
_FLOOR = np.float32(1e-12)   # tracec.features.PROB_FLOOR, as the graph's Clip uses it
_ZMIN = -700.0               # exp(-z) stays finite in float64 for the acceptor's sigmoid


class _Stage:
    """One surrogate + acceptor, with everything precomputed for both code paths."""

    __slots__ = ("layers", "hidden", "output", "classes", "class_list", "c0", "c1", "c2", "c3",
                 "b", "log_k", "k")

    def __init__(self, w: StageWeights):
        self.layers = tuple(w.layers)          # (weight [out, in], bias [out]) float32
        self.hidden, self.output = w.hidden, w.output
        self.classes = w.classes
        self.class_list = [int(c) for c in w.classes]
        self.c0, self.c1, self.c2, self.c3 = (float(c) for c in w.acceptor_coef)
        self.b = float(w.acceptor_intercept)
        self.k = int(w.classes.shape[0])
        self.log_k = float(np.float32(np.log(self.k)))   # the graph's float32 constant


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


def _probs(st: _Stage, h: np.ndarray) -> np.ndarray:
    """Class probabilities of rows ``h`` ([N, D] or [D]); float32, a fresh array."""
    last = len(st.layers) - 1
    for i, (wt, b) in enumerate(st.layers):
        h = h @ wt.T if h.ndim == 2 else wt.dot(h)
        h += b
        if i < last:
            _hidden(st.hidden, h)
    if st.output == "softmax":
        h -= h.max(axis=-1, keepdims=True)
        np.exp(h, out=h)
        h /= h.sum(axis=-1, keepdims=True)
        return h
    with np.errstate(over="ignore"):      # exp(-z) -> inf gives probability 0, as in the graph
        np.negative(h, out=h)
        np.exp(h, out=h)
    h += 1.0
    np.reciprocal(h, out=h)
    if st.output == "logistic":           # binary: one logit, columns (1 - p, p)
        p = h[..., 0]
        return np.stack([1.0 - p, p], axis=-1)
    s = h.sum(axis=-1, keepdims=True)     # "ovr": sigmoid per class, then normalised
    zero = s == 0.0
    if zero.any():                        # all underflowed: uniform, as skl2onnx's graph does
        h += zero
        s += zero * np.float32(st.k)
    h /= s
    return h


def _sigmoid64(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.maximum(z, _ZMIN)))


def _stage_batch(st: _Stage, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label int64 [N], score float32 [N]) of one stage."""
    p = _probs(st, X)
    rows = np.arange(p.shape[0])
    idx = p.argmax(axis=1)
    top1 = p[rows, idx].astype(np.float64)
    plogp = np.maximum(p, _FLOOR)
    np.log(plogp, out=plogp)
    plogp *= p
    ent = -plogp.sum(axis=1, dtype=np.float32).astype(np.float64) / st.log_k
    p[rows, idx] = -1.0
    top2 = p.max(axis=1).astype(np.float64)
    z = st.c0 * top1 + st.c1 * top2 + st.c2 * (top1 - top2) + st.c3 * ent + st.b
    return st.classes[idx], _sigmoid64(z).astype(np.float32)


def _stage_one(st: _Stage, x: np.ndarray) -> tuple[int, float]:
    """(label, score) of one stage for one row; the score is a float32 value."""
    p = _probs(st, x)
    i = int(p.argmax())
    t1 = p.item(i)
    plogp = np.maximum(p, _FLOOR)
    np.log(plogp, out=plogp)
    ent = -float(p.dot(plogp)) / st.log_k
    p[i] = -1.0
    t2 = p.max().item()
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

    @classmethod
    def from_bytes(cls, json_bytes: bytes, bin_bytes: bytes) -> "FastPath":
        """Parse and validate both files (``FastPathFormatError`` on any problem)."""
        return cls(json_bytes, bin_bytes)

    mode = property(lambda self: self._mode, doc="global, l2d, cascade or closed")
    tau = property(lambda self: self._tau, doc="the threshold, np.float32")
    n_features = property(lambda self: self._dim, doc="embedding dimension D")
    heads = property(lambda self: self._heads, doc="head type per stage")
    max_label = property(lambda self: self._max_label, doc="largest global label index")

    def __repr__(self) -> str:
        return (f"FastPath(mode={self._mode!r}, heads={list(self._heads)}, "
                f"n_features={self._dim}, tau={self._tau_f:.9g})")

    def run(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(label int64 [N], score float32 [N], handled bool [N]) for float32 ``X`` [N, D]."""
        if not isinstance(X, np.ndarray) or X.dtype != _F32 or X.ndim != 2 \
                or X.shape[1] != self._dim:
            raise RouteInputError(_bad_input(X, f"float32 [N, {self._dim}]"))
        n = X.shape[0]
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, bool)
        outs = [_stage_batch(st, X) for st in self._stages]
        if len(outs) == 1:
            label, score = outs[0]
        else:
            (y1, s1), (y2, s2) = outs
            label, score = np.where(s1 >= self._tau, y1, y2), np.maximum(s1, s2)
        if self._mode == "global":
            handled = np.ones(n, dtype=bool)
        elif self._mode == "closed":
            handled = np.zeros(n, dtype=bool)
        else:
            handled = score >= self._tau
        return label, score, handled

    def run_one(self, x: np.ndarray) -> tuple[int, float, bool]:
        """(label, score, handled) for one float32 row ``x`` [D]."""
        if not isinstance(x, np.ndarray) or x.dtype != _F32 or x.shape != (self._dim,):
            raise RouteInputError(_bad_input(x, f"float32 [{self._dim}]"))
        st = self._stages
        label, score = _stage_one(st[0], x)
        if len(st) == 2:
            y2, s2 = _stage_one(st[1], x)
            if score < self._tau_f:
                label = y2
            score = max(score, s2)
        mode = self._mode
        handled = True if mode == "global" else (False if mode == "closed"
                                                 else score >= self._tau_f)
        return label, score, handled


def _bad_input(x: object, expected: str) -> str:
    found = (f"{x.dtype} {list(x.shape)}" if isinstance(x, np.ndarray)
             else type(x).__name__)
    return f"the fast path expects a {expected} numpy array; got {found}"

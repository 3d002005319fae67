"""The numpy fast path of a policy graph: ``fastpath.json`` + ``fastpath.bin``.

``fastpath_files`` extracts the weights of linear and MLP surrogates
(``Pipeline(StandardScaler, LogisticRegression | SGDClassifier(log_loss) |
MLPClassifier)`` or the bare estimator) with the scaler folded into the first
layer in float64, then cast to float32.  Anything else (trees) returns
``None``: those bundles are served by onnxruntime only.  ``check_identical``
compares the executor with onnxruntime on the very graph of the bundle; the
compiler ships the fast path only when no decision differs (docs/fastpath.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from tracec.export.spec import StageGraphSpec, check_ood, check_policy
from tracec_runtime.canonical import canonical_file_bytes, f32_str
from tracec_runtime.fastpath import FastPath
from tracec_runtime.fastpath_format import (ALIGN, FASTPATH_BIN, FASTPATH_JSON, FORMAT, HIDDEN,
                                            OOD_METHODS)

OOD_METHOD = OOD_METHODS[0]
SINGLE_ROW_CAP = 100_000  # run_one is compared on at most this many rows (single_row_sample)

__all__ = ["IdentityReport", "check_identical", "fastpath_files", "verified_fastpath"]


@dataclass(frozen=True)
class IdentityReport:
    """Fast path vs onnxruntime on ``rows`` rows: ``run`` on the whole batch and
    ``run_one`` on ``single_rows`` of them, every row up to ``SINGLE_ROW_CAP`` (a row counts
    once if either path differs).

    ``decision_mismatches`` counts rows whose label or handled flag differs;
    ``near_tau`` counts rows whose graph score lies within ``max_score_diff`` of
    tau (open modes only): they matched, by less than the observed discrepancy.
    """

    rows: int
    label_mismatches: int
    handled_mismatches: int
    max_score_diff: float
    decision_mismatches: int = 0
    near_tau: int = 0
    single_rows: int = 0     # rows ``run_one`` was also compared on (``single_row_sample``)

    @property
    def identical(self) -> bool:
        return self.rows > 0 and self.decision_mismatches == 0 and \
            self.label_mismatches == 0 and self.handled_mismatches == 0

    def manifest_record(self) -> dict:
        """The manifest's ``fastpath`` record (no floats; ``present`` iff identical)."""
        return {"present": self.identical, "rows_checked": self.rows,
                "decision_mismatches": self.decision_mismatches,
                "label_mismatches": self.label_mismatches,
                "handled_mismatches": self.handled_mismatches,
                "max_score_diff": format(self.max_score_diff, ".9g"), "near_tau": self.near_tau,
                "single_rows_checked": self.single_rows}


def _split(estimator) -> Optional[tuple[object, object]]:
    """(StandardScaler or None, final estimator), or None if not a supported shape."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if isinstance(estimator, Pipeline):
        steps = [s for _, s in estimator.steps if s not in (None, "passthrough")]
        if len(steps) == 1:
            return None, steps[0]
        if len(steps) == 2 and type(steps[0]) is StandardScaler:
            return steps[0], steps[1]
        return None
    return None, estimator


def _head(final) -> Optional[tuple[str, str, str, list]]:
    """(head, output, hidden, [(W [in, out], b [out]) float64]) or None."""
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.neural_network import MLPClassifier

    k = len(getattr(final, "classes_", ()))
    if k < 2:
        return None
    if type(final) in (LogisticRegression, SGDClassifier):
        if type(final) is SGDClassifier and final.loss != "log_loss":
            return None
        if type(final) is LogisticRegression and getattr(final, "multi_class", "auto") == "ovr":
            return None   # removed from scikit-learn; refuse rather than guess
        W = np.asarray(final.coef_, dtype=np.float64).T
        b = np.asarray(final.intercept_, dtype=np.float64).reshape(-1)
        if type(final) is SGDClassifier:   # the graph: softmax(log sigmoid(scores)); binary
            if k == 2:                     # scores are the columns (-s, s)
                W, b = np.hstack([-W, W]), np.concatenate([-b, b])
            return "linear", "ovr", "identity", [(W, b)]
        return "linear", ("logistic" if k == 2 else "softmax"), "identity", [(W, b)]
    if type(final) is MLPClassifier:
        out = final.out_activation_
        if final.activation not in HIDDEN or (out, k == 2) not in (("softmax", False),
                                                                    ("logistic", True)):
            return None
        layers = [(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64))
                  for W, b in zip(final.coefs_, final.intercepts_)]
        return "mlp", out, final.activation, layers
    return None


def _fold(scaler, layers: list) -> list:
    """Fold ``(x - mean) / scale`` into the first layer (float64)."""
    if scaler is None:
        return layers
    W, b = layers[0]
    d = W.shape[0]
    mean = np.asarray(scaler.mean_, dtype=np.float64) if scaler.with_mean else np.zeros(d)
    scale = np.asarray(scaler.scale_, dtype=np.float64) if scaler.with_std else np.ones(d)
    W2 = W / scale[:, None]
    return [(W2, b - mean @ W2)] + list(layers[1:])


class _Blob:
    """Tensors laid out back to back at 64-byte boundaries."""

    def __init__(self):
        self.parts, self.table, self.size = [], {}, 0

    def add(self, name: str, arr: np.ndarray, dtype: str) -> str:
        data = np.ascontiguousarray(arr, dtype=np.dtype(dtype)).tobytes()
        pad = -self.size % ALIGN
        self.parts.append(b"\0" * pad + data)
        self.table[name] = {"dtype": dtype, "shape": list(arr.shape), "offset": self.size + pad,
                            "length": len(data)}
        self.size += pad + len(data)
        return name


def fastpath_files(stages: Sequence[StageGraphSpec], *, mode: str,
                   tau: float, ood=None) -> Optional[dict[str, bytes]]:
    """``{"fastpath.json": ..., "fastpath.bin": ...}``, or None if a stage is unsupported.

    ``ood``: the out-of-distribution gate (``prototypes``, ``threshold``) or None."""
    t32 = check_policy(stages, tau, mode, "fastpath_files")
    blob, docs, dims = _Blob(), [], set()
    for i, st in enumerate(stages, start=1):
        split = _split(st.estimator)
        head = None if split is None else _head(split[1])
        if head is None:
            return None
        kind, output, hidden, layers = head
        layers = _fold(split[0], layers)
        dims.add(layers[0][0].shape[0])
        refs = [{"weight": blob.add(f"s{i}.layer{j}.weight", W.T, "<f4"),
                 "bias": blob.add(f"s{i}.layer{j}.bias", b, "<f4")}
                for j, (W, b) in enumerate(layers)]
        doc = {"head": kind, "output": output, "layers": refs,
               "classes": blob.add(f"s{i}.classes", np.asarray(st.classes), "<i8"),
               "acceptor_coef": blob.add(f"s{i}.acceptor_coef",
                                         np.asarray(st.acceptor_coef, dtype=np.float64), "<f4"),
               "acceptor_intercept": f32_str(float(st.acceptor_intercept))}
        if kind == "mlp":
            doc["hidden_activation"] = hidden
        docs.append(doc)
    if len(dims) != 1:
        return None
    dim = int(dims.pop())
    doc = {"format": FORMAT, "mode": mode, "tau": f32_str(float(t32)),
           "n_features": dim, "stages": docs, "tensors": blob.table}
    gate = check_ood(ood, dim, "fastpath_files")
    if gate is not None:
        doc["ood"] = {"method": OOD_METHOD, "prototypes": blob.add("ood.prototypes", gate[0], "<f4"),
                      "threshold": f32_str(float(gate[1]))}
    return {FASTPATH_JSON: canonical_file_bytes(doc), FASTPATH_BIN: b"".join(blob.parts)}


def single_row_sample(n: int, cap: Optional[int] = None) -> np.ndarray:
    """Rows ``run_one`` is compared on: all of them up to ``cap``, else ``cap`` evenly spaced
    rows (deterministic; the Python loop over rows is the check's only cost that matters at
    a million rows: ~0.5 ms a row)."""
    cap = SINGLE_ROW_CAP if cap is None else cap
    if n <= cap:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


def check_identical(fast, graph_bytes: bytes, X: np.ndarray) -> IdentityReport:
    """Compare ``fast`` (``run`` on every row, ``run_one`` on ``single_row_sample``) with
    onnxruntime on ``graph_bytes``."""
    from tracec.scoring import GraphScorer

    X = np.ascontiguousarray(X, dtype=np.float32)
    scorer = GraphScorer(graph_bytes)
    g_label, g_score, g_handled = scorer.run(X)
    f_label, f_score, f_handled = fast.run(X)
    idx = single_row_sample(len(X))
    one = [fast.run_one(x) for x in X[idx]]
    o_label = np.array([r[0] for r in one], dtype=np.int64)
    o_score = np.array([r[1] for r in one], dtype=np.float32)
    o_handled = np.array([r[2] for r in one], dtype=bool)
    label_bad, handled_bad = f_label != g_label, f_handled != g_handled
    label_bad[idx] |= o_label != g_label[idx]
    handled_bad[idx] |= o_handled != g_handled[idx]
    if scorer.gated or getattr(fast, "gated", False):   # the reason must match too
        g_inside = scorer.inside(X)
        handled_bad |= fast.inside(X) != g_inside
        handled_bad[idx] |= np.array([fast.inside_one(x) for x in X[idx]], dtype=bool) != g_inside[idx]
    g64 = g_score.astype(np.float64)
    diff = max(np.abs(f_score - g64).max(initial=0.0), np.abs(o_score - g64[idx]).max(initial=0.0))
    near = 0
    if getattr(fast, "mode", None) in ("l2d", "cascade"):
        near = int(np.sum(np.abs(g64 - float(fast.tau)) <= diff))
    return IdentityReport(int(X.shape[0]), int(label_bad.sum()), int(handled_bad.sum()),
                          float(diff), int((label_bad | handled_bad).sum()), near, len(idx))


def verified_fastpath(stages: Sequence[StageGraphSpec], *, mode: str, tau: float,
                      graph_bytes: bytes, X: np.ndarray, ood=None
                      ) -> tuple[Optional[dict[str, bytes]], Optional[IdentityReport]]:
    """The fast-path files and their report, or ``(None, report)`` when any decision differs
    (``(None, None)`` when the stages have no fast path)."""
    files = fastpath_files(stages, mode=mode, tau=tau, ood=ood)
    if files is None:
        return None, None
    fast = FastPath.from_bytes(files[FASTPATH_JSON], files[FASTPATH_BIN])
    report = check_identical(fast, graph_bytes, X)
    return (files if report.identical else None), report

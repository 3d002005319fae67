"""The candidate pool: trained once per compile, reused by every alpha and family.

Each candidate is fitted on the training split, exported to ONNX (dropped,
with a progress message, if the export fails, is inexact or exceeds the size
budget) and scored on validation by teacher macro-F1.  Fits run on float32
(the embeddings' precision; half the work of float64), scoring in float64.  BLAS and OpenMP run
single-threaded while fitting: on a shared 2-core machine multi-threaded BLAS
was 10-25x slower, and one thread makes the fits reproducible bit for bit.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
import onnxruntime as ort
from sklearn.base import clone
from sklearn.ensemble import (ExtraTreesClassifier, HistGradientBoostingClassifier,
                              RandomForestClassifier)
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import f1_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from tracec.errors import ExportError, ParameterError, TracecError
from tracec.export.convert import surrogate_to_onnx

# Max |ONNX (float32) - scikit-learn (float64)| probability on validation rows.  Float32
# rounding alone reaches ~1e-5 for linear models with large scores; a broken export
# (e.g. the SGD underflow in export/shims.py) is off by 1e-1 or more.
EXPORT_TOLERANCE = 1e-4
DEFAULT_SIZE_BUDGET = 5_000_000


class PoolError(TracecError):
    """No candidate of the pool could be trained and exported."""

    exit_code = 4


@dataclass(frozen=True)
class CandidateSpec:
    name: str
    kind: str                          # "linear" | "neural" | "tree"
    make: Callable[[int], object]      # seed -> unfitted estimator


@dataclass
class TrainedCandidate:
    name: str
    kind: str
    estimator: object
    val_macro_f1: float
    val_agreement: float
    fit_seconds: float
    onnx_bytes: int
    val_log_loss: float = float("nan")   # mean -log p(teacher label) on validation


def _log_loss(est, probs: np.ndarray, y: np.ndarray) -> float:
    """Mean -log probability of the teacher label (floored at 1e-12; a label the candidate
    never saw in training gets the floor)."""
    col = {int(c): i for i, c in enumerate(np.asarray(est.classes_))}
    idx = np.array([col.get(int(t), -1) for t in y])
    p = np.where(idx >= 0, probs[np.arange(len(y)), np.maximum(idx, 0)], 0.0)
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


# How train_pool orders the pool (pool[0] is the primary stage).  Every key reads the
# validation rows only, never calibration or shadow (docs/guarantee.md).
RANKINGS = {
    "f1": lambda c: (-c.val_macro_f1, c.name),
    "agreement": lambda c: (-c.val_agreement, c.val_log_loss, c.name),
    "log_loss": lambda c: (c.val_log_loss, c.name),
}


def _logreg(c: float) -> Callable[[int], object]:
    return lambda seed: make_pipeline(
        StandardScaler(), LogisticRegression(C=c, solver="lbfgs", max_iter=300, random_state=seed))


def candidate_specs(include_trees: bool = False) -> list[CandidateSpec]:
    """The pool.  Trees are size-capped (leaf count, trees, boosting rounds): uncapped
    forests export to hundreds of MB."""
    specs = [
        CandidateSpec("logreg_c0.05", "linear", _logreg(0.05)),
        CandidateSpec("logreg_c0.5", "linear", _logreg(0.5)),
        CandidateSpec("logreg_c4", "linear", _logreg(4.0)),
        CandidateSpec("sgd_log", "linear", lambda seed: make_pipeline(
            StandardScaler(), SGDClassifier(loss="log_loss", alpha=1e-2, tol=1e-2, max_iter=50,
                                            random_state=seed))),
        CandidateSpec("mlp_256", "neural", lambda seed: MLPClassifier(
            (256,), early_stopping=True, max_iter=200, random_state=seed)),
        CandidateSpec("mlp_256x128", "neural", lambda seed: MLPClassifier(
            (256, 128), early_stopping=True, max_iter=200, random_state=seed)),
    ]
    if include_trees:
        specs += [
            CandidateSpec("decision_tree", "tree", lambda seed: DecisionTreeClassifier(
                max_leaf_nodes=512, random_state=seed)),
            CandidateSpec("random_forest", "tree", lambda seed: RandomForestClassifier(
                n_estimators=100, max_leaf_nodes=256, n_jobs=1, random_state=seed)),
            CandidateSpec("extra_trees", "tree", lambda seed: ExtraTreesClassifier(
                n_estimators=100, max_leaf_nodes=256, n_jobs=1, random_state=seed)),
            CandidateSpec("hist_gb", "tree", lambda seed: HistGradientBoostingClassifier(
                max_iter=30, max_leaf_nodes=15, l2_regularization=1.0, early_stopping=False,
                random_state=seed)),
        ]
    return specs


def _check_xy(X, y, name: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] == 0 or not np.issubdtype(X.dtype, np.floating):
        raise ParameterError(f"X_{name}", "train_pool", "a non-empty 2-D float array",
                             f"an array of shape {X.shape} and dtype {X.dtype}")
    if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ParameterError(f"y_{name}", "train_pool",
                             f"a 1-D array of {X.shape[0]} non-negative integer labels",
                             f"an array of shape {y.shape} and dtype {y.dtype}")
    if not np.all(np.isfinite(X)):
        raise ParameterError(f"X_{name}", "train_pool", "finite", "non-finite values")
    return np.ascontiguousarray(X, dtype=np.float32), y.astype(np.int64)


def _fit(estimator, X, y, say: Callable[[str], None], name: str):
    """Fit; report warnings; retry once without early stopping if its split fails."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(X, y)
        except ValueError as exc:
            if not getattr(estimator, "early_stopping", False):
                raise
            say(f"candidate {name}: early-stopping split failed ({exc}); "
                "refitting without early stopping")
            estimator.set_params(early_stopping=False)
            estimator.fit(X, y)
    kinds = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:120]}"
                    for w in caught})
    for text in kinds:
        say(f"candidate {name}: warning while fitting: {text}")
    return estimator


def _export_check(estimator, X_val: np.ndarray, n_labels: int) -> int:
    """Serialised size of the stage graph; ``ExportError`` if its probabilities are inexact."""
    data = surrogate_to_onnx(estimator, X_val.shape[1], n_labels, "s_").SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    got = session.run(["s_probs"], {"embedding": X_val})[0]
    want = estimator.predict_proba(X_val.astype(np.float64))
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    if not err <= EXPORT_TOLERANCE:
        raise ExportError(f"the ONNX probabilities differ from scikit-learn's by {err:.2e} "
                          f"on validation rows (tolerance {EXPORT_TOLERANCE:.0e})")
    return len(data)


def train_pool(X_train, y_train, X_val, y_val, *, seed: int, include_trees: bool = False,
               size_budget_bytes: int = DEFAULT_SIZE_BUDGET,
               progress: Optional[Callable[[str], None]] = None, rank: str = "f1",
               specs: Optional[list[CandidateSpec]] = None) -> list[TrainedCandidate]:
    """Fit every candidate; best first by ``rank`` (``RANKINGS``; default validation macro-F1,
    ties by name).  ``specs`` replaces ``candidate_specs`` (the benchmark's grid experiments).

    Labels are integer-encoded by the caller; ``y_train`` may hold any subset of them.
    """
    say = progress or (lambda _msg: None)
    rank_pool([], rank)  # an unknown ranking fails before any fit
    X_train, y_train = _check_xy(X_train, y_train, "train")
    X_val, y_val = _check_xy(X_val, y_val, "val")
    if X_val.shape[1] != X_train.shape[1]:
        raise ParameterError("X_val", "train_pool", f"{X_train.shape[1]} columns",
                             f"{X_val.shape[1]} columns")
    if len(np.unique(y_train)) < 2:
        raise ParameterError("y_train", "train_pool", "labels of at least 2 classes",
                             f"only class {np.unique(y_train).tolist()}")
    n_labels = int(max(y_train.max(), y_val.max())) + 1
    pool = []
    with threadpool_limits(limits=1):
        for spec in specs if specs is not None else candidate_specs(include_trees):
            start = time.perf_counter()
            try:
                est = _fit(spec.make(seed), X_train, y_train, say, spec.name)
            except Exception as exc:  # a candidate that cannot fit is dropped, not fatal
                say(f"candidate {spec.name}: dropped, fit failed: {type(exc).__name__}: {exc}")
                continue
            seconds = time.perf_counter() - start
            try:
                size = _export_check(est, X_val, n_labels)
            except ExportError as exc:
                say(f"candidate {spec.name}: dropped, export failed: {exc}")
                continue
            if size > size_budget_bytes:
                say(f"candidate {spec.name}: dropped, ONNX graph is {size} bytes "
                    f"(budget {size_budget_bytes})")
                continue
            probs = est.predict_proba(X_val.astype(np.float64))
            pred = np.asarray(est.classes_)[np.argmax(probs, axis=1)]
            f1 = float(f1_score(y_val, pred, labels=np.unique(y_val), average="macro",
                                zero_division=0))
            agree = float(np.mean(pred == y_val))
            loss = _log_loss(est, probs, y_val)
            say(f"candidate {spec.name}: fit {seconds:.1f}s, ONNX {size} bytes, "
                f"val macro-F1 {f1:.4f}, agreement {agree:.4f}, log-loss {loss:.4f}")
            pool.append(TrainedCandidate(spec.name, spec.kind, est, f1, agree, seconds, size, loss))
    if not pool:
        raise PoolError("No candidate of the pool could be trained and exported within "
                        f"{size_budget_bytes} bytes; see the progress messages.")
    return rank_pool(pool, rank)


def rank_pool(pool: list[TrainedCandidate], rank: str = "f1") -> list[TrainedCandidate]:
    """The pool best first by ``RANKINGS[rank]`` (validation rows only)."""
    if rank not in RANKINGS:
        raise ParameterError("rank", "train_pool", f"one of {', '.join(RANKINGS)}", rank)
    return sorted(pool, key=RANKINGS[rank])


def refit_candidate(cand: TrainedCandidate, X: np.ndarray, y: np.ndarray, X_check: np.ndarray,
                    n_labels: int, size_budget_bytes: int,
                    progress: Optional[Callable[[str], None]] = None) -> TrainedCandidate:
    """The same estimator (same parameters and seed) fit again on ``X, y``, export-checked on
    ``X_check``; the original candidate when the refit cannot be fit or exported.

    Used once a stage's acceptor is fit: the surrogate then also learns from the rows its
    acceptor was fit on.  Certification runs on the refit model, so the guarantee is unchanged.
    """
    say = progress or (lambda _msg: None)
    X, y = _check_xy(X, y, "refit")
    start = time.perf_counter()
    try:
        with threadpool_limits(limits=1):
            est = _fit(clone(cand.estimator), X, y, say, cand.name)
            size = _export_check(est, np.ascontiguousarray(X_check, dtype=np.float32), n_labels)
    except (ExportError, ValueError) as exc:
        say(f"candidate {cand.name}: kept the train-split model, refit failed: {exc}")
        return cand
    if size > size_budget_bytes:
        say(f"candidate {cand.name}: kept the train-split model, refit graph is {size} bytes")
        return cand
    seconds = time.perf_counter() - start
    say(f"candidate {cand.name}: refit on {len(y):,} rows in {seconds:.1f}s")
    return replace(cand, estimator=est, onnx_bytes=size)

"""The numpy (float64) reference of the exported policy graph.

Same rules as ``tracec.export.compose``: scikit-learn ``predict_proba`` in
float64 on the float32 embedding the graph would receive, the acceptor
features of ``tracec.features``, and the float32 threshold.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from tracec.export.spec import StageGraphSpec, check_ood, check_policy
from tracec.features import acceptor_features


def stage_numpy(stage: StageGraphSpec, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probs float64 [N, K_s], global label int64 [N], score float64 [N]) of one stage."""
    X64 = np.asarray(X, dtype=np.float32).astype(np.float64)
    with threadpool_limits(limits=1):   # reproducible sums; no BLAS/OpenMP contention
        probs = np.asarray(stage.estimator.predict_proba(X64), dtype=np.float64)
    label = np.asarray(stage.classes, dtype=np.int64)[np.argmax(probs, axis=1)]
    z = acceptor_features(probs) @ np.asarray(stage.acceptor_coef, dtype=np.float64)
    score = 1.0 / (1.0 + np.exp(-(z + float(stage.acceptor_intercept))))
    return probs, label, score


def ood_numpy(ood, X: np.ndarray) -> np.ndarray:
    """in_distribution bool [N]: float64 cosine to the nearest prototype >= the threshold."""
    P, thr = check_ood(ood, np.asarray(X).shape[1], "ood_numpy")
    X64 = np.asarray(X, dtype=np.float32).astype(np.float64)
    norm = np.maximum(np.linalg.norm(X64, axis=1), 1e-12)
    return (X64 @ P.astype(np.float64).T).max(axis=1) / norm >= float(thr)


def policy_numpy(stages: Sequence[StageGraphSpec], X: np.ndarray, tau: float,
                 mode: str, ood=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label int64, score float64, handled bool), each [N], as the graph decides them."""
    t = float(check_policy(stages, tau, mode, "policy_numpy"))
    outs = [stage_numpy(st, X) for st in stages]
    if len(outs) == 1:
        label, score = outs[0][1], outs[0][2]
    else:
        (_, y1, s1), (_, y2, s2) = outs
        label, score = np.where(s1 >= t, y1, y2), np.where(s1 >= t, s1, np.maximum(s1, s2))
    if mode == "global":
        handled = np.ones(len(label), dtype=bool)
    elif mode == "closed":
        handled = np.zeros(len(label), dtype=bool)
    else:
        handled = score >= t
    if ood is not None:
        handled = handled & ood_numpy(ood, X)
    return label, score, handled

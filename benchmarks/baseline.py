"""The paper's confidence-threshold baseline, with hindsight.

A standardised logistic regression is trained on all training rows against the teacher;
on test, the max-probability threshold is chosen WITH HINDSIGHT (the lowest threshold whose
test TA >= alpha).  No deployable system can choose like this; it is a reference point.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.data import TaskData
from benchmarks.metrics import alpha_key, e2e_accuracy, hindsight_threshold


def surrogate_on_test(data: TaskData, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The LR surrogate fit on all training rows: (prediction, confidence, agrees with the
    teacher) per test row."""
    model = make_pipeline(StandardScaler(),
                          LogisticRegression(C=1.0, max_iter=1000, random_state=seed))
    model.fit(np.asarray(data.X_train, dtype=np.float32), data.teacher_train.astype(str))
    proba = model.predict_proba(np.asarray(data.X_test, dtype=np.float32))
    pred = model.classes_[proba.argmax(axis=1)].astype(object)
    return pred, proba.max(axis=1), pred == data.teacher_test


def confidence_baseline(data: TaskData, alphas, seed: int = 0) -> dict:
    """Full-coverage agreement of the LR surrogate and, per alpha, the hindsight threshold's
    coverage, TA and end-to-end accuracy on test."""
    pred, confidence, correct = surrogate_on_test(data, seed)
    out = {"model": "StandardScaler + LogisticRegression(C=1)",
           "full_coverage_agreement": float(correct.mean()), "alphas": {}}
    for alpha in alphas:
        h = hindsight_threshold(confidence, correct, alpha)
        handled = confidence >= h.threshold
        out["alphas"][alpha_key(alpha)] = {
            "threshold": None if not np.isfinite(h.threshold) else h.threshold,
            "coverage": h.coverage, "teacher_agreement": h.agreement,
            "e2e_accuracy": e2e_accuracy(handled, pred, data.teacher_test, data.gold_test)}
    return out

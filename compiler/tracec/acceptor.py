"""The acceptor: logistic regression predicting whether the surrogate agrees with the teacher.

Features are (top-1, top-2, margin, normalised entropy) of the surrogate's
probabilities (``tracec.features``).  The scaler is folded into the
coefficients so the exported graph needs one MatMul, one Add, one Sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from tracec.features import acceptor_features


@dataclass(frozen=True)
class Acceptor:
    coef: np.ndarray        # (4,) float64, over raw (unscaled) features
    intercept: float
    fitted_on: int          # number of validation rows
    degenerate: bool        # True when agreement was constant and top-1 probability is used

    def score(self, probs: np.ndarray) -> np.ndarray:
        z = acceptor_features(probs) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


def fit_acceptor(probs: np.ndarray, agree: np.ndarray, seed: int) -> Acceptor:
    """Fit on held-out rows (never the surrogate's training rows)."""
    feats = acceptor_features(probs)
    agree = np.asarray(agree, dtype=bool)
    if agree.all() or not agree.any():
        # Nothing to discriminate: rank by top-1 probability (monotone, documented).
        return Acceptor(np.array([8.0, 0.0, 0.0, 0.0]), -4.0, len(agree), True)
    mean = feats.mean(axis=0)
    scale = feats.std(axis=0)
    scale[scale < 1e-12] = 1.0
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    model.fit((feats - mean) / scale, agree.astype(np.int64))
    coef = model.coef_[0] / scale
    intercept = float(model.intercept_[0] - np.sum(model.coef_[0] * mean / scale))
    return Acceptor(coef.astype(np.float64), intercept, len(agree), False)

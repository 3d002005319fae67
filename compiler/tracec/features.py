"""The acceptor's features, computed from a stage's class probabilities.

This is the single definition: the exported graph (``tracec.export.compose``)
computes the same four numbers in float32, the compiler in float64 here.
"""

from __future__ import annotations

import numpy as np

from tracec.errors import ParameterError

FEATURE_NAMES = ("top1", "top2", "margin", "entropy")
PROB_FLOOR = 1e-12  # probabilities are clipped to [PROB_FLOOR, 1] inside the log


def acceptor_features(probs: np.ndarray) -> np.ndarray:
    """(top-1, top-2, top-1 minus top-2, entropy / log K) per row, float64 ``[N, 4]``.

    With a single column (K == 1) top-2 and the entropy are 0.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ParameterError("probs", "acceptor_features", "a 2-D array [N, K] with K >= 1",
                             f"an array of shape {p.shape}")
    n, k = p.shape
    out = np.zeros((n, 4), dtype=np.float64)
    if k == 1:
        out[:, 0] = p[:, 0]
        out[:, 2] = p[:, 0]
        return out
    top2 = -np.sort(-p, axis=1)[:, :2]
    entropy = -np.sum(p * np.log(np.clip(p, PROB_FLOOR, 1.0)), axis=1) / np.log(k)
    out[:, 0] = top2[:, 0]
    out[:, 1] = top2[:, 1]
    out[:, 2] = top2[:, 0] - top2[:, 1]
    out[:, 3] = entropy
    return out

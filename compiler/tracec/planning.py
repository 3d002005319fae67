"""Where a fixed sequence starts, planned on validation rows (never calibration rows).

The strictest grid step accepts only a few calibration rows; when a handful of them
disagree with the teacher its Clopper-Pearson bound falls below alpha and the whole
sequence stops there, although looser steps would pass.  So the sequence starts at
the step whose bound, *predicted from the validation rows* at the calibration split's
size, is highest: the step most likely to pass.  The same prediction ranks the policy
families, so only the most promising one is certified, at the full delta (no Bonferroni
split).  The plan depends on train/validation data, alpha, delta and the calibration size
only, so the sequence is still fixed before any calibration label is seen
(docs/guarantee.md).
"""

from __future__ import annotations

import numpy as np
from scipy import special


def predicted_lower(n_handled_val: np.ndarray, n_agree_val: np.ndarray, n_val: int, n_cal: int,
                    delta: float) -> np.ndarray:
    """Per grid step, the (1 - delta) Clopper-Pearson lower bound it would get on calibration.

    Step j handles ``n_handled_val[j]`` of ``n_val`` validation rows, ``n_agree_val[j]`` of
    them agreeing; at calibration size it would handle ``n = share * n_cal`` rows with the
    same agreement rate; the bound is taken at that (fractional) count.
    """
    nh = np.asarray(n_handled_val, dtype=np.float64)
    na = np.asarray(n_agree_val, dtype=np.float64)
    n = nh / max(n_val, 1) * n_cal
    rate = np.divide(na, nh, out=np.zeros_like(nh), where=nh > 0)
    k = rate * n
    ok = (k > 0) & (n > 0)
    lower = np.zeros_like(n)
    lower[ok] = special.betaincinv(k[ok], n[ok] - k[ok] + 1.0, delta)
    return lower


def planned_start(lower: np.ndarray) -> int:
    """The step with the highest predicted bound (the first one on ties): the likeliest to pass."""
    return int(np.argmax(lower))


def planned_coverage(lower: np.ndarray, n_handled_val: np.ndarray, n_val: int,
                     alpha: float) -> float:
    """Validation share handled by the last step the sequence is predicted to promote when it
    starts at ``planned_start``; 0.0 when even that step is predicted to fail."""
    start = planned_start(lower)
    passing = np.asarray(lower)[start:] >= alpha
    if not passing[0]:
        return 0.0
    run = len(passing) if passing.all() else int(np.argmin(passing))
    return float(np.asarray(n_handled_val)[start + run - 1]) / max(n_val, 1)

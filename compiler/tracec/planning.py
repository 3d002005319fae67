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
from scipy import special, stats


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


def pass_probability(n_handled_val: np.ndarray, n_agree_val: np.ndarray, n_val: int, n_cal: int,
                     alpha: float, delta: float) -> np.ndarray:
    """Per grid step, the probability that it passes on calibration, from validation alone.

    The step's TA is uncertain after ``n_handled_val`` validation rows: take its posterior
    Beta(k + 1, n - k + 1) (uniform prior); at calibration size the step handles
    ``round(share * n_cal)`` rows, agreement ~ Binomial(that, TA), and passes when the
    agreement reaches the smallest count whose exact p-value is <= delta.  So a step
    that looks good on few validation rows counts for less than one that looks as good on
    many: on a flat stretch of TA the start moves to where calibration has more rows.
    """
    nh = np.asarray(n_handled_val, dtype=np.float64)
    na = np.asarray(n_agree_val, dtype=np.float64)
    n = np.rint(nh / max(n_val, 1) * n_cal).astype(np.int64)
    out = np.zeros(len(n))
    m = n > 0
    need = pass_count(n[m], alpha, delta)
    ok = need <= n[m]
    idx = np.flatnonzero(m)[ok]
    out[idx] = betabinom_tail(need[ok], n[idx], na[idx] + 1.0, nh[idx] - na[idx] + 1.0)
    return out


def betabinom_tail(k: np.ndarray, n: np.ndarray, a: np.ndarray, b: np.ndarray,
                   cells: int = 1 << 22) -> np.ndarray:
    """P(X >= k) for X ~ BetaBinomial(n, a, b), per entry: the exact sum of the tail's
    probabilities, vectorised (scipy's ``betabinom.sf`` sums them one entry at a time in
    Python, the planner's hot spot).  Rows are taken in chunks of at most ``cells`` terms."""
    k, n = np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.zeros(len(n))
    width = np.maximum(n - k + 1, 0)
    order = np.argsort(width, kind="stable")
    start = 0
    while start < len(order):
        w = max(int(width[order[start:]].max(initial=0)), 1)
        stop = min(len(order), start + max(1, cells // w))
        rows = order[start:stop]
        j = k[rows, None] + np.arange(int(width[rows].max(initial=0)) or 1)[None, :]
        nn, aa, bb = n[rows, None], a[rows, None], b[rows, None]
        valid = j <= nn
        jj = np.where(valid, j, 0)
        logp = (special.gammaln(nn + 1) - special.gammaln(jj + 1) - special.gammaln(nn - jj + 1)
                + special.betaln(jj + aa, nn - jj + bb) - special.betaln(aa, bb))
        out[rows] = np.minimum(np.where(valid, np.exp(logp), 0.0).sum(axis=1), 1.0)
        start = stop
    return out


def pass_count(n: np.ndarray, alpha: float, delta: float) -> np.ndarray:
    """Smallest agreement count k >= 1 whose exact p-value P(Bin(n, alpha) >= k) is <= delta
    (n + 1 when even k = n fails), per entry of ``n``."""
    n = np.asarray(n, dtype=np.int64)
    k = np.maximum(stats.binom.ppf(1.0 - delta, n, alpha).astype(np.int64) + 1, 1)
    for _ in range(2):  # the quantile is exact up to floating point; settle it on bdtrc
        k = np.where((k > 1) & (special.bdtrc(np.maximum(k - 2, 0), n, alpha) <= delta), k - 1, k)
        k = np.where((k <= n) & (special.bdtrc(k - 1, n, alpha) > delta), k + 1, k)
    return np.minimum(k, n + 1)


def planned_start(lower: np.ndarray) -> int:
    """The step with the highest predicted bound (the first one on ties): the likeliest to pass."""
    return int(np.argmax(lower))


def planned_coverage(lower: np.ndarray, n_handled_val: np.ndarray, n_val: int,
                     alpha: float, start: int | None = None) -> float:
    """Validation share handled by the last step the sequence is predicted to promote when it
    starts at ``start`` (default ``planned_start(lower)``); 0.0 when even that step is
    predicted to fail."""
    start = planned_start(lower) if start is None else start
    passing = np.asarray(lower)[start:] >= alpha
    if not passing[0]:
        return 0.0
    run = len(passing) if passing.all() else int(np.argmin(passing))
    return float(np.asarray(n_handled_val)[start + run - 1]) / max(n_val, 1)


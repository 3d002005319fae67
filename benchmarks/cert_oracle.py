"""The "valid oracle" of ``benchmarks.gap_decomposition``: the largest coverage ONE
Clopper-Pearson test at full delta could certify on ``n_cal`` calibration rows, if the true
TA curve (here: measured on the test split) were known in advance.

A threshold with true coverage ``cov`` and true TA ``p`` handles ``n_h = round(n_cal * cov)``
calibration rows in expectation; its agreement count is ``K ~ Binomial(n_h, p)`` and the test
passes when ``cp_lower(K, n_h, delta) >= alpha``.  The oracle picks the largest-coverage
threshold whose pass probability is ``>= min_pass`` (0.5: the certificate is issued more often
than not).  No valid procedure that runs one test on these rows can do better at that
probability; a fixed sequence starting at that threshold is exactly this test.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from tracec.planning import pass_count


def k_min(n: int, alpha: float, delta: float) -> int:
    """Smallest agreement count k whose (1 - delta) CP lower bound of k/n is >= alpha (``n + 1``
    if none): by duality the count at which tracec's exact test passes, ``planning.pass_count``."""
    return int(pass_count(np.array([n]), alpha, delta)[0]) if n > 0 else n + 1


def pass_probability(n: int, p: float, alpha: float, delta: float) -> float:
    """P(cp_lower(K, n, delta) >= alpha) for K ~ Binomial(n, p)."""
    k = k_min(int(n), float(alpha), float(delta))
    if k > n:
        return 0.0
    return float(stats.binom.sf(k - 1, n, p))


def ta_curve(score: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, TA) of every threshold ``score >= t`` at a distinct score value, strict first."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    s, ok = np.asarray(score, dtype=float)[order], np.asarray(correct, dtype=bool)[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    handled = ends + 1
    return handled / len(s), np.cumsum(ok)[ends] / handled


def valid_oracle(score, correct, alpha: float, n_cal: int, delta: float = 0.05,
                 min_pass: float = 0.5) -> dict:
    """Largest coverage (of the curve ``score``/``correct``) whose single CP test on
    ``n_cal * coverage`` calibration rows passes with probability ``>= min_pass``."""
    cov, ta = ta_curve(score, correct)
    for i in range(len(cov) - 1, -1, -1):  # loosest first: the first pass is the largest
        n_h = int(round(n_cal * cov[i]))
        if ta[i] < alpha or n_h == 0:
            continue
        pp = pass_probability(n_h, float(ta[i]), alpha, delta)
        if pp >= min_pass:
            return {"coverage": float(cov[i]), "ta": float(ta[i]), "n_handled": n_h,
                    "pass_probability": round(pp, 4)}
    return {"coverage": 0.0, "ta": math.nan, "n_handled": 0, "pass_probability": 0.0}

"""Certify a threshold: Learn-then-Test fixed-sequence testing with exact binomial p-values.

For each step j of a sequence fixed *before* the calibration labels are seen
(strict -> loose thresholds), test H0_j: TA_j < alpha with the exact p-value
p_j = P(Binomial(n_handled_j, alpha) >= n_agree_j).  Walk the sequence, stop
at the first p_j > delta; the promoted step is the last one that passed.
Whatever the dependence between steps, P(promoted step has TA < alpha) <= delta
(see docs/guarantee.md).  Policies with per-step choices other than a single
threshold (the cascade) pass their own per-step counts to ``fixed_sequence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Optional, Sequence

import numpy as np
from scipy import special

from tracec.errors import ParameterError

__all__ = ["binom_sf_pvalue", "cp_lower", "cp_upper", "threshold_grid", "StepResult",
           "Certification", "fixed_sequence", "certify_threshold", "max_certifiable_alpha",
           "check_level", "check_binary"]


# ---------------------------------------------------------------- validation


def check_level(name: str, owner: str, value: object) -> float:
    """``value`` as a float strictly inside (0, 1), else ParameterError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 < float(value) < 1.0:
        raise ParameterError(name, owner, "a float in (0, 1)", value)
    return float(value)


def _check_count(name: str, owner: str, value: object, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < low:
        raise ParameterError(name, owner, f"an integer >= {low}", value)
    return int(value)


def _check_scores(name: str, owner: str, scores: object) -> np.ndarray:
    arr = np.asarray(scores)
    if arr.ndim != 1 or arr.dtype.kind not in "fiu":
        raise ParameterError(name, owner, "a 1-D array of real numbers",
                             f"an array of shape {arr.shape} and dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise ParameterError(name, owner, "finite everywhere",
                             f"{arr[bad[0]]} at index {int(bad[0])} ({len(bad)} non-finite values)")
    return arr


def check_binary(name: str, owner: str, values: object, n: int) -> np.ndarray:
    """``values`` as a bool array of length ``n`` (entries must be 0/1 or bool)."""
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise ParameterError(name, owner, f"a 1-D array of length {n} (same length as the "
                             "other array)", f"shape {arr.shape}")
    if arr.dtype != bool:
        if arr.dtype.kind not in "fiu":
            raise ParameterError(name, owner, "binary (bool or 0/1)", f"dtype {arr.dtype}")
        bad = np.flatnonzero((arr != 0) & (arr != 1))
        if len(bad):
            raise ParameterError(name, owner, "binary (bool or 0/1)",
                                 f"{arr[bad[0]]!r} at index {int(bad[0])}")
    return arr.astype(bool)


# ---------------------------------------------------------------- binomial tools


def binom_sf_pvalue(n_agree: int, n_handled: int, alpha: float) -> float:
    """Exact p-value of H0: TA < alpha, i.e. P(Binomial(n_handled, alpha) >= n_agree); 1 if n_handled == 0."""
    k = _check_count("n_agree", "binom_sf_pvalue", n_agree)
    n = _check_count("n_handled", "binom_sf_pvalue", n_handled)
    a = check_level("alpha", "binom_sf_pvalue", alpha)
    if k > n:
        raise ParameterError("n_agree", "binom_sf_pvalue", f"<= n_handled ({n})", k)
    return 1.0 if n == 0 or k == 0 else float(special.bdtrc(k - 1, n, a))


def cp_lower(k: int, n: int, delta: float) -> float:
    """One-sided (1 - delta) Clopper-Pearson lower bound on a proportion; 0 if n == 0."""
    k, n, d = _check_kn("cp_lower", k, n), n, check_level("delta", "cp_lower", delta)
    return 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, d))


def cp_upper(k: int, n: int, delta: float) -> float:
    """One-sided (1 - delta) Clopper-Pearson upper bound on a proportion; 1 if n == 0."""
    k, n, d = _check_kn("cp_upper", k, n), n, check_level("delta", "cp_upper", delta)
    return 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1.0 - d))


def _check_kn(owner: str, k: object, n: object) -> int:
    n_ = _check_count("n", owner, n)
    k_ = _check_count("k", owner, k)
    if k_ > n_:
        raise ParameterError("k", owner, f"<= n ({n_})", k_)
    return k_


# ---------------------------------------------------------------- the grid


def threshold_grid(unlabelled_scores: np.ndarray, n_calibration: int, min_accept: int = 100,
                   max_steps: int = 200) -> np.ndarray:
    """Descending float32 thresholds (strict -> loose) fixed from scores whose labels are never used.

    The scores must come from a split independent of the calibration split (e.g.
    validation).  The strictest step accepts about ``min_accept`` calibration rows
    (a share min_accept / n_calibration of the unlabelled scores); steps are
    evenly spaced in that share up to the last step, ``-inf`` (accept everything).
    Every finite threshold lies strictly between two adjacent distinct float32
    scores (their float32 midpoint), so a row scored in float32 (ONNX) or float64
    falls on the same side of it unless its score is within a float32 rounding
    error of the threshold.  When two scores are adjacent float32 numbers there is
    no float32 in between and the upper one is used.
    """
    owner = "threshold_grid"
    u = _check_scores("unlabelled_scores", owner, unlabelled_scores)
    if len(u) == 0:
        raise ParameterError("unlabelled_scores", owner, "non-empty", "an empty array")
    n_cal = _check_count("n_calibration", owner, n_calibration, low=1)
    m = _check_count("min_accept", owner, min_accept, low=1)
    steps = _check_count("max_steps", owner, max_steps, low=2)
    # Distinct float32 values, descending, and how many unlabelled rows are >= each.
    values, counts = np.unique(u.astype(np.float32), return_counts=True)
    values, counts = values[::-1], counts[::-1]
    accepted = np.cumsum(counts)                           # rows >= values[i]
    upper, lower = values[:-1].astype(np.float64), values[1:].astype(np.float64)
    taus = ((upper + lower) / 2.0).astype(np.float32)      # accepts exactly accepted[:-1]
    squeezed = (taus <= lower) | (taus >= upper)           # adjacent float32 values
    taus[squeezed] = values[:-1][squeezed]
    taus = np.append(taus, np.float32(-np.inf))
    share = np.append(accepted[:-1], len(u)) / len(u)
    start = min(1.0, m / n_cal)
    targets = np.linspace(start, 1.0, steps) if start < 1.0 else np.array([1.0])
    # For each target share, the strictest threshold accepting at least that share.
    idx = np.searchsorted(share, targets - 1e-12, side="left")
    idx = np.unique(np.minimum(idx, len(taus) - 1))
    return taus[idx]


# ---------------------------------------------------------------- fixed sequence


@dataclass(frozen=True)
class StepResult:
    """One tested step.  ``ta_lower`` is that step's own (1 - delta) Clopper-Pearson bound."""

    index: int
    tau: np.float32
    n_handled: int
    n_agree: int
    coverage: float
    ta: float            # 0.0 when nothing is handled
    p_value: float
    ta_lower: float


@dataclass(frozen=True)
class Certification:
    """Outcome of one fixed sequence: every tested step (including the failing one)."""

    passed: bool
    tau: Optional[np.float32]
    steps: tuple[StepResult, ...]
    chosen: Optional[StepResult]
    alpha: float
    delta: float


def fixed_sequence(n_handled: Sequence[int], n_agree: Sequence[int], n_total: int,
                   taus: Sequence[float], alpha: float, delta: float) -> Certification:
    """Walk the steps in the given order; promote the last step before the first p-value > delta.

    Step j handles ``n_handled[j]`` of the ``n_total`` calibration rows and agrees
    with the teacher on ``n_agree[j]`` of them; ``taus[j]`` labels the step.  The
    order must be fixed without looking at the calibration labels.
    """
    owner = "fixed_sequence"
    a, d = check_level("alpha", owner, alpha), check_level("delta", owner, delta)
    total = _check_count("n_total", owner, n_total, low=1)
    nh, na = _int_array("n_handled", n_handled), _int_array("n_agree", n_agree)
    tau = np.asarray(taus, dtype=np.float32).reshape(-1)
    if not len(nh) == len(na) == len(tau) or len(tau) == 0:
        raise ParameterError("n_handled/n_agree/taus", owner, "non-empty sequences of one length",
                             f"lengths {len(nh)}, {len(na)}, {len(tau)}")
    bad = np.flatnonzero((na < 0) | (na > nh) | (nh > total))
    if len(bad):
        j = int(bad[0])
        raise ParameterError(f"n_agree/n_handled[{j}]", owner,
                             f"0 <= n_agree <= n_handled <= n_total ({total})",
                             (int(na[j]), int(nh[j])))
    # P(Bin(n, a) >= k) = bdtrc(k - 1, n, a); it is 1 when k == 0 (or n == 0).
    p = np.where(na > 0, special.bdtrc(np.maximum(na, 1) - 1, np.maximum(nh, 1), a), 1.0)
    failing = np.flatnonzero(~(p <= d))
    n_tested = len(tau) if len(failing) == 0 else int(failing[0]) + 1
    k, n = na[:n_tested], nh[:n_tested]
    lower = np.where(k > 0, special.betaincinv(np.maximum(k, 1), n - k + 1, d), 0.0)
    steps = tuple(
        StepResult(index=j, tau=t, n_handled=n_j, n_agree=k_j, coverage=n_j / total,
                   ta=k_j / n_j if n_j else 0.0, p_value=p_j, ta_lower=lo_j)
        for j, (t, n_j, k_j, p_j, lo_j) in enumerate(zip(
            tau[:n_tested], n.tolist(), k.tolist(), p[:n_tested].tolist(), lower.tolist())))
    n_passed = n_tested if len(failing) == 0 else n_tested - 1
    chosen = steps[n_passed - 1] if n_passed else None
    return Certification(passed=chosen is not None, tau=None if chosen is None else chosen.tau,
                         steps=steps, chosen=chosen, alpha=a, delta=d)


def _int_array(name: str, values: Sequence[int]) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ParameterError(name, "fixed_sequence", "a 1-D sequence of integers",
                             f"shape {arr.shape}, dtype {arr.dtype}")
    return arr.astype(np.int64)


def step_counts(scores: np.ndarray, agree: np.ndarray, grid: np.ndarray,
                owner: str = "certify_threshold") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(taus, n_handled, n_agree) per threshold, handled meaning float32(score) >= tau."""
    s = _check_scores("scores", owner, scores).astype(np.float32)
    if len(s) == 0:
        raise ParameterError("scores", owner, "non-empty", "an empty array")
    ok = check_binary("agree", owner, agree, len(s))
    taus = np.asarray(grid, dtype=np.float32).reshape(-1)
    with np.errstate(invalid="ignore"):                       # -inf - -inf is nan: rejected
        descending = bool(np.all(np.diff(taus) < 0))
    if len(taus) == 0 or np.isnan(taus).any() or not descending:
        raise ParameterError("grid", owner, "a non-empty, strictly descending array of thresholds "
                             "(strict -> loose, e.g. from threshold_grid)", taus)
    order = np.argsort(s, kind="stable")
    s_sorted, a_sorted = s[order], ok[order].astype(np.int64)
    suffix = np.append(np.cumsum(a_sorted[::-1])[::-1], 0)   # agreements among rows i..end
    first = np.searchsorted(s_sorted, taus, side="left")      # first row with score >= tau
    return taus, len(s) - first, suffix[first]


def certify_threshold(scores: np.ndarray, agree: np.ndarray, grid: np.ndarray, alpha: float,
                      delta: float) -> Certification:
    """Fixed-sequence certification of ``score >= tau`` over ``grid`` (from ``threshold_grid``)."""
    check_level("alpha", "certify_threshold", alpha)
    check_level("delta", "certify_threshold", delta)
    taus, nh, na = step_counts(scores, agree, grid)
    return fixed_sequence(nh, na, len(scores), taus, alpha, delta)


def max_certifiable_alpha(scores: np.ndarray, agree: np.ndarray, grid: np.ndarray, delta: float,
                          alphas: np.ndarray = np.arange(0.50, 0.996, 0.005)) -> Optional[float]:
    """Largest alpha in ``alphas`` the same sequence would certify, or None.

    Descriptive only, for refusal explanations: it is chosen after looking at the
    calibration labels, so it carries no guarantee of its own.  Because the walk
    starts at the strictest step, it is bounded by that step's Clopper-Pearson
    lower bound (e.g. about 0.970 with 100 rows that all agree, delta = 0.05).
    """
    check_level("delta", "max_certifiable_alpha", delta)
    taus, nh, na = step_counts(scores, agree, grid, owner="max_certifiable_alpha")
    levels = sorted({round(float(x), 6) for x in np.asarray(alphas, dtype=np.float64).reshape(-1)},
                    reverse=True)
    for a in levels:
        if 0.0 < a < 1.0 and fixed_sequence(nh, na, len(scores), taus, a, delta).passed:
            return a
    return None

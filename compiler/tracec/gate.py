"""The parity gate on the untouched shadow split.

The gate refuses a policy only on *evidence against it*: when the one-sided
(1 - delta) Clopper-Pearson upper bound on shadow TA is below alpha, when the
shadow coverage is below ``min_coverage``, or when nothing is handled.  A policy
whose true TA is >= alpha is refused on the TA criterion with probability
<= delta.  (Re-testing "lower bound >= alpha" on shadow would instead refuse
about half of the valid policies certified at the edge; see docs/guarantee.md.)
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np

from tracec.calibration import check_binary, check_level, cp_lower, cp_upper
from tracec.errors import ParameterError

__all__ = ["ShadowResult", "shadow_gate"]


@dataclass(frozen=True)
class ShadowResult:
    """Verdict of the gate.  ``reasons`` explains a refusal (empty when it passed)."""

    passed: bool
    n_total: int
    n_handled: int
    n_agree: int
    coverage: float
    ta: float          # 0.0 when nothing is handled
    ta_lower: float    # one-sided (1 - delta) Clopper-Pearson bounds on shadow TA
    ta_upper: float
    reasons: tuple[str, ...]


def shadow_gate(handled: np.ndarray, agree: np.ndarray, alpha: float, delta: float,
                min_coverage: float = 0.05) -> ShadowResult:
    """Promote or refuse the policy from its shadow-split behaviour.

    ``handled[i]``: the policy answers shadow row i locally; ``agree[i]``: its
    answer equals the teacher's (only read where handled).
    """
    owner = "shadow_gate"
    a, d = check_level("alpha", owner, alpha), check_level("delta", owner, delta)
    if (isinstance(min_coverage, bool) or not isinstance(min_coverage, Real)
            or not 0.0 <= float(min_coverage) <= 1.0):
        raise ParameterError("min_coverage", owner, "a float in [0, 1]", min_coverage)
    h_arr = np.asarray(handled)
    if h_arr.ndim != 1 or len(h_arr) == 0:
        raise ParameterError("handled", owner, "a non-empty 1-D array", f"shape {h_arr.shape}")
    h = check_binary("handled", owner, h_arr, len(h_arr))
    ok = check_binary("agree", owner, agree, len(h))
    n_total, n_handled = len(h), int(h.sum())
    n_agree = int((h & ok).sum())
    coverage = n_handled / n_total
    ta = n_agree / n_handled if n_handled else 0.0
    lower, upper = cp_lower(n_agree, n_handled, d), cp_upper(n_agree, n_handled, d)
    conf = f"{100 * (1 - d):.4g}%"
    reasons = []
    if n_handled == 0:
        reasons.append(f"the policy handles none of the {n_total:,} shadow rows, so there is "
                       "nothing to promote")
    else:
        if coverage < min_coverage:
            reasons.append(f"shadow coverage {coverage:.1%} ({n_handled:,} of {n_total:,} rows) "
                           f"is below the minimum coverage {min_coverage:.1%}")
        if upper < a:
            reasons.append(f"shadow TA {ta:.3f} on {n_handled:,} handled rows is below "
                           f"alpha={_level(a)} with confidence {conf} (upper bound {_below(upper, a)})")
    return ShadowResult(passed=not reasons, n_total=n_total, n_handled=n_handled,
                        n_agree=n_agree, coverage=coverage, ta=ta, ta_lower=lower,
                        ta_upper=upper, reasons=tuple(reasons))


def _below(x: float, ref: float) -> str:
    """``x`` with 3 decimals, or more when 3 would round it up to ``ref``."""
    for digits in range(3, 10):
        if round(x, digits) < ref:
            return f"{x:.{digits}f}"
    return f"{x:.10g}"


def _level(x: float) -> str:
    """0.9 -> '0.90', 0.975 -> '0.975'."""
    return f"{x:.2f}" if round(x, 2) == x else f"{x:g}"

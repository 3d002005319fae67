"""An anytime-valid confidence sequence for live teacher agreement (a Bernoulli mean).

Each audited, handled request is one Bernoulli outcome: 1 if the surrogate's
answer equals the teacher's.  With ``S`` agreements and ``F`` disagreements,
Robbins' beta-binomial mixture

    M_t(p) = B(a + S, b + F) / B(a, b) / (p^S (1 - p)^F)

is a nonnegative martingale with initial value 1 under the true mean ``p``
(it is the likelihood ratio of a Beta(a, b) mixture against ``p``), so by
Ville's inequality ``P(exists t: M_t(p) >= 1/delta) <= delta``.  The set

    CS_t = {p : M_t(p) < 1/delta}

is therefore an interval that contains the true mean at *every* t at once
with probability >= 1 - delta: it may be checked after every feedback, for
ever, without inflating the error (unlike a repeated fixed-n test).  The
interval depends on the counts only, so counts summed over replicas give the
bound of the pooled traffic.

The prior is centred on the certified alpha (``prior_for``), which spends the
test's power where the decision is made; any fixed prior keeps the guarantee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Interval", "confidence_interval", "prior_for", "log_mixture", "excludes_above"]

#: Prior concentration (pseudo-observations) of the mixture; see docs/guarantee.md.
PRIOR_STRENGTH = 20.0


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float
    agree: int
    disagree: int

    @property
    def n(self) -> int:
        return self.agree + self.disagree


def prior_for(alpha: float, strength: float = PRIOR_STRENGTH) -> tuple[float, float]:
    """Beta(a, b) with mean ``alpha`` and ``strength`` pseudo-observations."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha!r}")
    return alpha * strength, (1.0 - alpha) * strength


def _log_beta(x: float, y: float) -> float:
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)


def log_mixture(agree: int, disagree: int, p: float, a: float, b: float) -> float:
    """``log M_t(p)``; +inf where ``p`` is impossible given the counts."""
    if (p <= 0.0 and agree) or (p >= 1.0 and disagree):
        return math.inf
    ll = (agree * math.log(p) if agree else 0.0) + (disagree * math.log1p(-p) if disagree else 0.0)
    return _log_beta(a + agree, b + disagree) - _log_beta(a, b) - ll


def excludes_above(agree: int, disagree: int, alpha: float, delta: float,
                   prior: tuple[float, float]) -> bool:
    """True iff the interval's upper end is below ``alpha``, in O(1).

    The interval contains the MLE and is convex, so its upper end is below
    ``alpha`` exactly when the MLE is below ``alpha`` and ``alpha`` is outside.
    """
    n = agree + disagree
    if n == 0 or agree >= alpha * n:
        return False
    return log_mixture(agree, disagree, alpha, *prior) >= math.log(1.0 / delta)


def confidence_interval(agree: int, disagree: int, delta: float,
                        prior: tuple[float, float] = (0.5, 0.5)) -> Interval:
    """The (1 - delta) anytime-valid interval for the agreement rate after these counts."""
    if not (isinstance(agree, int) and isinstance(disagree, int)) or agree < 0 or disagree < 0:
        raise ValueError(f"counts must be integers >= 0; got {agree!r}, {disagree!r}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1); got {delta!r}")
    a, b = prior
    level = math.log(1.0 / delta)
    n = agree + disagree
    if n == 0:
        return Interval(0.0, 1.0, 0, 0)
    centre = agree / n  # log M_t is convex in p with its minimum at the MLE

    def inside(p: float) -> bool:
        return log_mixture(agree, disagree, p, a, b) < level

    if not inside(centre):  # unreachable: the mixture is <= the maximum likelihood, so M_t(MLE) <= 1
        return Interval(centre, centre, agree, disagree)
    return Interval(_edge(inside, centre, 0.0), _edge(inside, centre, 1.0), agree, disagree)


def _edge(inside, centre: float, limit: float, iterations: int = 60) -> float:
    """The boundary of the interval between ``centre`` (inside) and ``limit``, outward-rounded."""
    if inside(limit):
        return limit
    good, bad = centre, limit
    for _ in range(iterations):
        mid = 0.5 * (good + bad)
        if inside(mid):
            good = mid
        else:
            bad = mid
    return bad  # the outer side: the reported interval never excludes an inside point

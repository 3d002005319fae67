"""Pure metric functions shared by both systems (numpy only, no model code).

Conventions: ``handled`` is a boolean mask over test rows; ``pred`` holds the surrogate's
label for every row (only handled rows are read where that matters); ``teacher`` and
``gold`` are label arrays of the same length.  Labels may be strings or ints.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def alpha_key(alpha: float) -> str:
    """The key an alpha is stored under in results JSON: ``0.9`` -> ``"0.9"``."""
    return format(float(alpha), "g")


def _arrays(*arrays):
    out = [np.asarray(a) for a in arrays]
    n = len(out[0])
    for a in out[1:]:
        if len(a) != n:
            raise ValueError(f"metric inputs must have one entry per test row: lengths "
                             f"{[len(x) for x in out]} differ")
    return out


def coverage(handled) -> float:
    """Share of rows answered locally."""
    (h,) = _arrays(handled)
    return float(h.astype(bool).mean()) if len(h) else 0.0


def teacher_agreement(handled, pred, teacher) -> float:
    """Agreement with the teacher on handled rows (NaN when nothing is handled)."""
    h, p, t = _arrays(handled, pred, teacher)
    h = h.astype(bool)
    if not h.any():
        return math.nan
    return float((p[h] == t[h]).mean())


def e2e_accuracy(handled, pred, teacher, gold) -> float:
    """Accuracy against gold when handled rows take the surrogate's answer and deferred
    rows take the teacher's."""
    h, p, t, g = _arrays(handled, pred, teacher, gold)
    final = np.where(h.astype(bool), p.astype(object), t.astype(object))
    return float((final == g.astype(object)).mean()) if len(g) else math.nan


def oracle_limit(full_agreement: float, alpha: float) -> float:
    """Best coverage any acceptor can reach at target ``alpha`` with a surrogate whose
    agreement at full coverage is ``full_agreement``: min(1, agreement / alpha)."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    return float(min(1.0, full_agreement / alpha))


@dataclass(frozen=True)
class Hindsight:
    threshold: float  # +inf when no threshold reaches alpha
    coverage: float
    agreement: float  # NaN when nothing is accepted


def hindsight_threshold(confidence, correct, alpha: float) -> Hindsight:
    """The lowest threshold ``t`` on ``confidence`` (accept ``confidence >= t``) whose
    agreement on the accepted rows is ``>= alpha``, chosen with hindsight on these rows.

    Every distinct confidence value is a candidate threshold; ties are accepted together.
    """
    c, ok = _arrays(confidence, correct)
    c = c.astype(float)
    ok = ok.astype(bool)
    if not len(c):
        return Hindsight(math.inf, 0.0, math.nan)
    order = np.argsort(-c, kind="stable")
    cs, oks = c[order], ok[order]
    hits = np.cumsum(oks)
    k = np.arange(1, len(cs) + 1)
    # last position of each run of equal confidence: accepting "conf >= cs[i]" takes rows 0..i
    ends = np.flatnonzero(np.r_[cs[1:] != cs[:-1], True])
    ta = hits[ends] / k[ends]
    good = ends[ta >= alpha]
    if not len(good):
        return Hindsight(math.inf, 0.0, math.nan)
    i = int(good[-1])
    return Hindsight(float(cs[i]), float((i + 1) / len(cs)), float(hits[i] / (i + 1)))


def violation_share(agreements, alpha: float) -> float:
    """Share of runs whose handled-row agreement is below ``alpha``.  A run that handles
    nothing (NaN agreement) makes no claim and is not a violation."""
    a = np.asarray(agreements, dtype=float)
    if not len(a):
        return math.nan
    return float(np.mean(np.where(np.isnan(a), False, a < alpha)))


def percentiles_us(seconds, qs=(50, 99)) -> dict[str, float]:
    """Latency percentiles in microseconds, keyed ``p50``, ``p99``..."""
    s = np.asarray(seconds, dtype=float) * 1e6
    return {f"p{q}": float(np.percentile(s, q)) for q in qs}


@dataclass(frozen=True)
class Evaluation:
    coverage: float
    teacher_agreement: float
    e2e_accuracy: float
    n_test: int

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(handled, pred, teacher, gold) -> Evaluation:
    """Coverage, handled-row teacher agreement and end-to-end gold accuracy at once."""
    return Evaluation(coverage(handled), teacher_agreement(handled, pred, teacher),
                      e2e_accuracy(handled, pred, teacher, gold), len(np.asarray(handled)))

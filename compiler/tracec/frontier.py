"""Certify every alpha x family on the calibration split; record the frontier.

The candidate pool, the primary stage and its graph scores are computed once
and reused for every alpha; only the cascade's residual stage depends on alpha.
Stages are selected on the train-split models; ``Context.ship`` gives the stage
as it ships (refit on train + validation), which is what calibration certifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from tracec.calibration import fixed_sequence, max_certifiable_alpha, threshold_grid
from tracec.manifest import dec
from tracec.policy import (FamilyResult, Scored, Stage, best_family, certify_cascade, certify_l2d,
                           is_accept_all, make_residual, score_shipped)


@dataclass(frozen=True)
class Context:
    """Everything the certification needs, computed once per compile."""

    pool: Sequence
    primary: Stage
    scored: dict[str, Scored]          # primary stage graph outputs per split
    X: dict[str, np.ndarray]           # embeddings per split
    y: dict[str, np.ndarray]           # teacher label index per split
    families: tuple[str, ...]
    delta: float
    min_accept: int
    seed: int
    n_features: int
    progress: Callable[[str], None]
    size_budget_bytes: int = 5_000_000
    ship: Callable[[Stage], Stage] = lambda stage: stage  # a selected stage as it ships


@dataclass(frozen=True)
class AlphaResult:
    alpha: float
    results: tuple[FamilyResult, ...]
    winner: Optional[FamilyResult]
    residual_scores: Optional[dict[str, Scored]]
    full_coverage_ta: float
    oracle_limit: float
    delta_per_family: float


def certify_alpha(ctx: Context, alpha: float) -> AlphaResult:
    y_cal = ctx.y["calibration"]
    primary = ctx.ship(ctx.primary)
    residual, residual_scores = None, None
    if "cascade" in ctx.families:
        selected = make_residual(ctx.pool, ctx.primary, ctx.scored["validation"], ctx.X["validation"],
                                 ctx.y["validation"], alpha, ctx.seed, ctx.size_budget_bytes)
        if selected is not None:
            residual = ctx.ship(selected)
            residual_scores = score_shipped(selected, residual, ctx.n_features, ctx.X)
    single = any(f in ctx.families for f in ("global", "l2d"))
    n_sequences = int(single) + int(residual is not None)
    delta_f = ctx.delta / max(n_sequences, 1)
    min_accept = first_step_size(ctx.min_accept, alpha, delta_f)
    results = []
    if single:
        cert, grid_size = _certify_single(ctx, alpha, delta_f, min_accept)
        family = "global" if is_accept_all(cert, grid_size) else "l2d"
        results.append(FamilyResult(family, (primary,), cert, grid_size))
    if residual is not None:
        cert, grid_size = certify_cascade(ctx.scored["validation"], residual_scores["validation"],
                                          ctx.scored["calibration"], residual_scores["calibration"],
                                          y_cal, alpha, delta_f, min_accept)
        results.append(FamilyResult("cascade", (primary, residual), cert, grid_size))
    full_ta = float(np.mean(ctx.scored["calibration"].label == y_cal))
    winner = best_family(results)
    for r in results:
        chosen = r.certification.chosen
        ctx.progress(f"  alpha={alpha:g} {r.family:<8} "
                     + (f"certified coverage {chosen.coverage:.3f} (TA {chosen.ta:.3f}, lower "
                        f"{chosen.ta_lower:.3f}, tau {chosen.tau:.4g})" if r.certification.passed
                        else "not certified"))
    return AlphaResult(alpha, tuple(results), winner, residual_scores, full_ta,
                       min(1.0, full_ta / alpha), delta_f)


def first_step_size(min_accept: int, alpha: float, delta_f: float) -> int:
    """Rows the first step must accept to be able to pass at all: alpha**n <= delta_f, with slack.

    Depends only on (alpha, delta), never on calibration labels, so the grid stays fixed in advance.
    """
    need = int(np.ceil(np.log(delta_f) / np.log(alpha)))
    return max(min_accept, 2 * need)


def _certify_single(ctx: Context, alpha: float, delta_f: float, min_accept: int):
    y_cal = ctx.y["calibration"]
    if "l2d" not in ctx.families:  # global alone: the single accept-all hypothesis
        agree = int(np.sum(ctx.scored["calibration"].label == y_cal))
        loosest = threshold_grid(ctx.scored["validation"].score, len(y_cal), min_accept)[-1:]
        return fixed_sequence([len(y_cal)], [agree], len(y_cal), loosest, alpha, delta_f), 1
    return certify_l2d(ctx.scored["validation"], ctx.scored["calibration"], y_cal, alpha, delta_f,
                       min_accept)


def highest_passing_alpha(ctx: Context, delta_f: float) -> Optional[float]:
    """Descriptive only: the largest alpha the l2d sequence would certify on calibration."""
    grid = threshold_grid(ctx.scored["validation"].score, len(ctx.y["calibration"]), ctx.min_accept)
    agree = ctx.scored["calibration"].label == ctx.y["calibration"]
    return max_certifiable_alpha(ctx.scored["calibration"].score, agree, grid, delta_f)


def frontier_document(results: Sequence[AlphaResult]) -> dict:
    """frontier.json: every alpha and every family (decimals as strings)."""
    alphas = []
    for ar in results:
        fams = []
        for r in ar.results:
            c = r.certification.chosen
            fams.append({
                "family": r.family, "passed": bool(r.certification.passed),
                "models": [s.candidate.name for s in r.stages],
                "steps_tested": len(r.certification.steps), "grid_size": r.grid_size,
                "coverage": dec(c.coverage) if c else "0", "ta": dec(c.ta) if c else None,
                "ta_lower": dec(c.ta_lower) if c else None,
                "tau": format(float(c.tau), ".9g") if c else None,
            })
        alphas.append({"alpha": dec(ar.alpha), "delta_per_family": dec(ar.delta_per_family),
                       "families": fams, "chosen": ar.winner.family if ar.winner else None,
                       "full_coverage_ta": dec(ar.full_coverage_ta),
                       "oracle_limit": dec(ar.oracle_limit)})
    return {"artifact": "frontier", "version": "1", "split": "calibration", "alphas": alphas}

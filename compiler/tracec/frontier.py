"""Certify every alpha x family on the calibration split; record the frontier.

The candidate pool, the primary stage and its graph scores are computed once
and reused for every alpha; only the cascade's residual stage depends on alpha.
Stages are selected on the train-split models; ``Context.ship`` gives the stage
as it ships (refit on train + validation), which is what calibration certifies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

import numpy as np

from tracec.calibration import Certification
from tracec.manifest import dec
from tracec.policy import (FamilyResult, Scored, Stage, best_family, cascade_decide, certify_plan,
                           is_accept_all, l2d_decide, make_residual, plan_family, score_stage)


@dataclass(frozen=True)
class Context:
    """Everything the certification needs, computed once per compile."""

    pool: Sequence
    primary: Stage
    scored: dict[str, Scored]          # primary stage graph outputs: validation, calibration
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
    rules: object = None               # tracec.rules.RoutingRules, or None
    labels: tuple = ()                 # label names (the rules name labels)


@dataclass(frozen=True)
class AlphaResult:
    alpha: float
    results: tuple[FamilyResult, ...]
    winner: Optional[FamilyResult]
    residual_scores: Optional[dict[str, Scored]]
    full_coverage_ta: float
    oracle_limit: float
    delta_per_family: float
    planned: dict = None               # family -> predicted coverage on validation


def certify_alpha(ctx: Context, alpha: float) -> AlphaResult:
    """Plan every family on validation, certify the most promising one on calibration."""
    y_cal, y_val = ctx.y["calibration"], ctx.y["validation"]
    primary = ctx.ship(ctx.primary)
    selected, selected_val, residual_scores = None, None, None
    if "cascade" in ctx.families:
        selected = make_residual(ctx.pool, ctx.primary, ctx.scored["validation"], ctx.X["validation"],
                                 y_val, alpha, ctx.seed, ctx.size_budget_bytes)
        if selected is not None:
            selected_val = score_stage(selected, ctx.n_features, {"validation": ctx.X["validation"]})
    min_accept = first_step_size(ctx.min_accept, alpha, ctx.delta)
    plans = []
    single = "l2d" if "l2d" in ctx.families else ("global" if "global" in ctx.families else None)
    if single:  # l2d's loosest step is global; global alone is that one step
        plans.append(plan_family(single, (primary,), [ctx.scored["validation"]], y_val, len(y_cal),
                                 alpha, ctx.delta, min_accept))
    if selected is not None:
        plans.append(plan_family("cascade", (primary, selected),
                                 [ctx.scored["validation"], selected_val["validation"]],
                                 y_val, len(y_cal), alpha, ctx.delta, min_accept))
    results = []
    if plans:  # ties go to the simpler family (listed first)
        plan = max(plans, key=lambda pl: pl.coverage)
        stages, cal = plan.stages, [ctx.scored["calibration"]]
        if plan.family == "cascade":  # only a chosen residual stage is refit and scored
            residual = ctx.ship(selected)
            residual_scores = {**selected_val, **score_stage(
                residual, ctx.n_features, {"calibration": ctx.X["calibration"]})}
            stages, cal = (primary, residual), cal + [residual_scores["calibration"]]
        decide = l2d_decide(cal[0]) if len(cal) == 1 else cascade_decide(*cal)
        cert, grid_size = certify_plan(plan, decide, y_cal, alpha, ctx.delta, ctx.rules, ctx.labels)
        family = "global" if plan.family == "l2d" and is_accept_all(cert, grid_size) else plan.family
        results.append(FamilyResult(family, stages, cert, grid_size))
    else:  # cascade alone and no residual to build stage 2 on: nothing can be tested
        results.append(FamilyResult("cascade", (primary,), Certification(
            passed=False, tau=None, steps=(), chosen=None, alpha=alpha, delta=ctx.delta), 0))
    full_ta = float(np.mean(ctx.scored["calibration"].label == y_cal))
    winner = best_family(results)
    for pl in plans:
        ctx.progress(f"  alpha={alpha:g} {pl.family:<8} planned coverage {pl.coverage:.3f} "
                     f"(validation)")
    for r in results:
        chosen = r.certification.chosen
        ctx.progress(f"  alpha={alpha:g} {r.family:<8} "
                     + (f"certified coverage {chosen.coverage:.3f} (TA {chosen.ta:.3f}, lower "
                        f"{chosen.ta_lower:.3f}, tau {chosen.tau:.4g})" if r.certification.passed
                        else "not certified"))
    return AlphaResult(alpha, tuple(results), winner, residual_scores, full_ta,
                       min(1.0, full_ta / alpha), ctx.delta,
                       {pl.family: pl.coverage for pl in plans})


def first_step_size(min_accept: int, alpha: float, delta_f: float) -> int:
    """Rows the first step must accept to be able to pass at all: alpha**n <= delta_f, with slack.

    Depends only on (alpha, delta), never on calibration labels, so the grid stays fixed in advance.
    """
    need = int(np.ceil(np.log(delta_f) / np.log(alpha)))
    return max(min_accept, 2 * need)


def highest_passing_alpha(ctx: Context, delta_f: float,
                          alphas: Sequence[float] = tuple(np.arange(0.995, 0.4999, -0.005))
                          ) -> Optional[float]:
    """Descriptive only: the largest alpha (0.005 grid) at which the procedure that was tested
    (``certify_alpha``: plan every family on validation, certify the most promising one, same
    pool and primary stage) would certify on calibration.  Chosen after looking at the
    calibration labels, so it carries no guarantee of its own."""
    quiet = replace(ctx, delta=delta_f, progress=lambda _msg: None)
    for a in alphas:
        if certify_alpha(quiet, round(float(a), 6)).winner is not None:
            return round(float(a), 6)
    return None


def frontier_document(results: Sequence[AlphaResult]) -> dict:
    """frontier.json: every alpha, the family certified and every family's planned coverage on
    validation (decimals as strings)."""
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
                       "planned_coverage": {f: dec(c) for f, c in sorted((ar.planned or {}).items())},
                       "full_coverage_ta": dec(ar.full_coverage_ta),
                       "oracle_limit": dec(ar.oracle_limit)})
    return {"artifact": "frontier", "version": "1", "split": "calibration", "alphas": alphas}

"""Guarantee validity: random re-splits of a pooled task; how often is test TA on handled
rows below alpha?  tracec compiles with the re-split's seed; TRACER (whose own internal
split seed is fixed) fits once per re-split over all alphas.  TRACER re-splits are optional
jobs: they run while the time budget allows, and the count that ran is reported."""

from __future__ import annotations

import math

from scipy.stats import beta as beta_dist

from benchmarks.context import Context, tracec_alpha, tracer_alphas, tracer_cached
from benchmarks.data import TaskData, pooled_resplit
from benchmarks.metrics import alpha_key, violation_share
from benchmarks.scheduler import Job, Outcome


def resplit_jobs(ctx: Context, pooled: TaskData, n_train: int, seeds, alphas,
                 tracer_seeds) -> list[Job]:
    """tracec jobs for every seed (required) and TRACER jobs for ``tracer_seeds`` (optional),
    interleaved so both systems progress together."""
    jobs = []
    for seed in seeds:
        split = _Lazy(pooled, n_train, seed)
        for alpha in alphas:
            if ctx.tracec_ok:
                jobs.append(Job(f"resplit:tracec:{seed}:{alpha_key(alpha)}",
                                _tracec(ctx, split, alpha, alphas, seed), "resplit-tracec"))
        if ctx.tracer_py is not None and seed in tracer_seeds:
            jobs.append(Job(f"resplit:tracer:{seed}", _tracer(ctx, split, alphas), "resplit-tracer",
                            optional=True, estimate_s=400,
                            ready=_bind(lambda s: tracer_cached(ctx, s.get(), alphas, True), split)))
    return jobs


class _Lazy:
    """The re-split, drawn on first use (the pooled arrays are shared, not copied per job)."""

    def __init__(self, pooled: TaskData, n_train: int, seed: int):
        self.pooled, self.n_train, self.seed, self._data = pooled, n_train, seed, None

    def get(self) -> TaskData:
        if self._data is None:
            self._data = pooled_resplit(self.pooled, self.n_train, self.seed)
        return self._data


def _tracec(ctx: Context, split: _Lazy, alpha: float, alphas, seed: int):
    return lambda: _slim(tracec_alpha(ctx, split.get(), alpha, alphas=alphas, seed=seed))


def _tracer(ctx: Context, split: _Lazy, alphas):
    return lambda: tracer_alphas(ctx, split.get(), alphas, memo=True, bounded=True)


def _bind(fn, *args):
    return lambda: fn(*args)


def _slim(ev: dict) -> dict:
    keep = ("coverage", "teacher_agreement", "e2e_accuracy", "family", "gate", "compile_wall_s")
    return {k: ev[k] for k in keep}


def upper_bound(k: int, n: int, level: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a violation probability from k of n runs."""
    if n == 0:
        return math.nan
    return 1.0 if k == n else float(beta_dist.ppf(level, k + 1, n - k))


def clear_violations(runs: list[dict], alpha: float, n_test: int, level: float = 0.95) -> int:
    """Runs whose test TA is below alpha beyond test-sample noise: the one-sided ``level``
    Clopper-Pearson upper bound of the test TA (n = coverage x n_test handled rows) is < alpha.
    The plain share also counts policies whose true TA clears alpha but whose ~2,500 handled
    test rows happened to fall just below it."""
    count = 0
    for r in runs:
        ta = r.get("teacher_agreement")
        if ta is None or math.isnan(ta) or ta >= alpha:
            continue
        n = int(round(r["coverage"] * n_test))
        k = int(round(ta * n))
        count += n > 0 and upper_bound(k, n, level) < alpha
    return count


def _summary(runs: list[dict], alpha: float) -> dict:
    tas = [r["teacher_agreement"] for r in runs]
    k = sum(1 for t in tas if t is not None and not math.isnan(t) and t < alpha)
    covs = [r["coverage"] for r in runs]
    return {"runs": len(runs), "violations": k, "violation_share": violation_share(tas, alpha),
            "violation_upper_95": upper_bound(k, len(runs)),
            "mean_coverage": sum(covs) / len(covs) if covs else math.nan,
            "min_ta": min((t for t in tas if not math.isnan(t)), default=math.nan),
            "handled_nothing": sum(1 for c in covs if c == 0)}


def assemble(ctx: Context, outcomes: dict[str, Outcome], seeds, alphas, n_train: int,
             n_test: int, tracer_seeds) -> dict:
    out = {"n_train": n_train, "n_test": n_test, "alphas": [float(a) for a in alphas],
           "delta": ctx.delta, "seeds_planned": {"tracec": len(seeds), "tracer": len(tracer_seeds)},
           "tracec": {}, "tracer": {}}
    for alpha in alphas:
        key = alpha_key(alpha)
        c_runs = [dict(seed=s, **outcomes[f"resplit:tracec:{s}:{key}"].value) for s in seeds
                  if _done(outcomes, f"resplit:tracec:{s}:{key}")]
        t_runs = []
        for s in tracer_seeds:
            o = outcomes.get(f"resplit:tracer:{s}")
            if o is not None and o.status == "done":
                ev = o.value["alphas"][key]
                t_runs.append({"seed": s, "cached": o.value["cached"],
                               **{k: ev[k] for k in ("coverage", "teacher_agreement", "e2e_accuracy",
                                                     "family")}})
        out["tracec"][key] = dict(_summary(c_runs, alpha), per_run=c_runs)
        out["tracer"][key] = dict(_summary(t_runs, alpha), per_run=t_runs)
    skipped = [s for s in tracer_seeds
               if (o := outcomes.get(f"resplit:tracer:{s}")) is not None and o.status == "skipped"]
    failed = [s for s in tracer_seeds
              if (o := outcomes.get(f"resplit:tracer:{s}")) is not None and o.status == "failed"]
    out["tracer_skipped_for_budget"] = len(skipped)
    out["tracer_failed"] = len(failed)
    return out


def _done(outcomes: dict[str, Outcome], name: str) -> bool:
    o = outcomes.get(name)
    return o is not None and o.status == "done"

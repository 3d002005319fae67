"""Certified coverage per task x alpha, in process (no bundle): the certification measurement
behind docs/benchmarks.md "Certify more from fewer traces".

Runs tracec's own split -> pool -> primary -> refit -> certify on a task's training traces,
then applies the certified policy to the task's test split (coverage, TA) next to the
hindsight confidence threshold (``benchmarks.baseline``).  The shadow gate is not run (it
needs a bundle); ``shadow_ok`` reports whether the shadow split's Clopper-Pearson upper bound
would clear alpha, which is what the gate tests.

    python -m benchmarks.certify_sweep --task banking77_llm --alphas 0.8,0.85,0.9,0.95
    python -m benchmarks.certify_sweep --task banking77_llm --train-rows 2001
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.baseline import confidence_baseline
from benchmarks.data import daily_batches, load_task, size_subset
from tracec.calibration import cp_upper
from tracec.candidates import train_pool
from tracec.config import FAMILIES
from tracec.frontier import Context, certify_alpha
from tracec.policy import Refitter, cascade_decisions, make_primary, score_shipped, score_stage
from tracec.splits import auto_fractions, split_rows


def _encode(train, test):
    labels = sorted(set(train.tolist()))
    index = {l: i for i, l in enumerate(labels)}
    return (np.array([index[t] for t in train], dtype=np.int64),
            np.array([index.get(t, -1) for t in test], dtype=np.int64), len(labels))


def run(task: str, alphas, train_rows: int | None = None, days: int | None = None, day: int = 1, seed: int = 0, delta: float = 0.05,
        fractions=None, root: Path = Path(os.environ.get(
            "TRACEC_SHARED_DATA", "/work/shared/data")), selects=None, grid=None,
        features: str | None = None, keep: dict | None = None) -> dict:
    """One task x seed.  The experiment knobs (none of them shipped): ``grid`` replaces the
    pool's logistic-regression C values, ``selects`` lists primary-stage rankings to compare
    on the same pool (``benchmarks.pool_experiment``), ``features`` an acceptor feature set.
    ``keep``, if given, receives the run's primary stage, refitter, splits and test rows
    (``benchmarks.gap_decomposition`` scores tracec's shipped model on test from them)."""
    data = load_task(root, task)
    if days:  # the flywheel's traces on day ``day``: the first ``day`` of ``days`` shuffled batches
        batches = daily_batches(len(data.X_train), days, seed)
        data = data.subset(np.sort(np.concatenate(batches[:day])), name=f"{task}@day{day}of{days}")
    elif train_rows:  # a data-size sweep: the first ``train_rows`` of one seeded shuffle
        data = size_subset(data, train_rows, seed)
    X_all = np.asarray(data.X_train, dtype=np.float32)
    y_all, y_test, n_labels = _encode(data.teacher_train, data.teacher_test)
    X_test = np.asarray(data.X_test, dtype=np.float32)
    base = confidence_baseline(data, alphas, seed)
    out = {"task": data.name, "n_traces": len(y_all)}
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        splits = split_rows(len(y_all), seed, fractions or auto_fractions(len(y_all)),
                            inputs=data.texts_train)
        X = {k: X_all[v] for k, v in splits.__dict__.items()}
        y = {k: y_all[v] for k, v in splits.__dict__.items()}
        pool = train_pool(X["train"], y["train"], X["validation"], y["validation"], seed=seed,
                          specs=None if grid is None else experiment_specs(grid))
        train_seconds = time.perf_counter() - start
        ship = Refitter(np.concatenate([X["train"], X["validation"]]),
                        np.concatenate([y["train"], y["validation"]]), X["validation"], n_labels,
                        5_000_000, lambda _m: None)
        out.update(splits=splits.counts(), pool=[c.name for c in pool],
                   train_seconds=round(train_seconds, 1),
                   candidates={c.name: [round(c.val_macro_f1, 4), round(c.val_agreement, 4),
                                        round(c.val_log_loss, 4), round(c.fit_seconds, 1)]
                               for c in pool})
        if selects or features:
            from benchmarks.pool_experiment import compare
            out["experiments"] = compare(pool, X, y, X_test, y_test, ship, alphas, delta, seed,
                                         base, selects or ("f1",), features)
            return out
        primary = make_primary(pool[0], X["validation"], y["validation"], seed)
        scored = score_shipped(primary, ship(primary), X_all.shape[1],
                               {k: X[k] for k in ("validation", "calibration")})
        ctx = Context(pool, primary, scored, X, y, FAMILIES, delta, 100, seed, X_all.shape[1],
                      lambda _m: None, 5_000_000, ship)
        results = [certify_alpha(ctx, a) for a in alphas]
    out["certify_seconds"] = round(time.perf_counter() - start, 1)
    if keep is not None:
        keep.update(primary=primary, ship=ship, X=X, y=y, X_test=X_test, y_test=y_test,
                    results=results)
    out["rows"] = rows_of(results, X, y, X_test, y_test, base, delta, _route)
    return out


def experiment_specs(grid) -> list:
    """The shipped pool with its logistic regressions replaced by ``grid``'s C values."""
    from tracec.candidates import CandidateSpec, _logreg, candidate_specs
    rest = [s for s in candidate_specs() if not s.name.startswith("logreg_")]
    return [CandidateSpec(f"logreg_c{c:g}", "linear", _logreg(float(c))) for c in grid] + rest


def rows_of(results, X, y, X_test, y_test, base, delta, route) -> list[dict]:
    """Per alpha: the certified policy on test (coverage, TA), the shadow bound, hindsight."""
    rows = []
    dim = X_test.shape[1]
    for ar in results:
        row = {"alpha": ar.alpha, "planned": ar.planned, "family": None, "cal_coverage": 0.0,
               "test_coverage": 0.0, "test_ta": None, "shadow_ok": None}
        w = ar.winner
        if w is not None:
            label, handled = route(w, dim, X_test, float(w.certification.tau))
            s_label, s_handled = route(w, dim, X["shadow"], float(w.certification.tau))
            agree_sh = (s_label == y["shadow"])[s_handled]
            row.update(family=w.family, cal_coverage=round(w.coverage, 4),
                       test_coverage=round(float(handled.mean()), 4),
                       test_ta=round(float(np.mean((label == y_test)[handled])), 4)
                       if handled.any() else None,
                       shadow_ok=bool(handled.any() and cp_upper(int(agree_sh.sum()), len(agree_sh),
                                                                  delta) >= ar.alpha))
        hb = base["alphas"][format(ar.alpha, "g")] if format(ar.alpha, "g") in base["alphas"] \
            else next(iter(v for k, v in base["alphas"].items() if abs(float(k) - ar.alpha) < 1e-9))
        row["hindsight_coverage"] = round(hb["coverage"], 4)
        rows.append(row)
    return rows


def _route(w, dim: int, X: np.ndarray, tau: float):
    outs = [score_stage(s, dim, {"x": X})["x"] for s in w.stages]
    if len(outs) == 1:
        return outs[0].label, outs[0].score >= np.float32(tau)
    return cascade_decisions(outs[0], outs[1], tau)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True)
    ap.add_argument("--alphas", default="0.8,0.85,0.9,0.95")
    ap.add_argument("--train-rows", type=int, default=None)
    ap.add_argument("--days", type=int, default=None)
    ap.add_argument("--day", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", default=None, help="experiment: logistic-regression C values")
    ap.add_argument("--select", default=None,
                    help="experiment: primary-stage rankings to compare (f1,agreement,log_loss,predcov)")
    ap.add_argument("--features", default=None,
                    help="experiment: acceptor features (base,centroid,knn,all; l2d/global only)")
    args = ap.parse_args()
    out = run(args.task, [float(a) for a in args.alphas.split(",")], args.train_rows, args.days,
              args.day, seed=args.seed, selects=args.select and args.select.split(","),
              grid=args.grid and [float(c) for c in args.grid.split(",")], features=args.features)
    print(json.dumps(out))
    blocks = {name: e["rows"] for name, e in out["experiments"].items()} if "experiments" in out \
        else {"": out["rows"]}
    for name, rows in blocks.items():
        for r in rows:
            print(f"{out['task']:<24} n={out['n_traces']:>6} {name:<18} alpha={r['alpha']:.2f} "
                  f"{str(r['family']):<8} cal {r['cal_coverage']:.3f} test {r['test_coverage']:.3f}"
                  f" TA {r['test_ta']} shadow_ok {r['shadow_ok']} | hindsight "
                  f"{r['hindsight_coverage']:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()

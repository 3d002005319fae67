"""``tracec scan TRACES``: what could be certified now, and what more traces would buy.

    load -> embed -> split (the compile's auto split) -> train pool -> certify every alpha
         (coverage now: the compile's own procedure) -> learning curve on subsamples
         -> projection per alpha -> labels that hold coverage back

No bundle is built and no shadow gate runs.  Deterministic for the same traces, embeddings and
seed (one BLAS thread, seeded subsamples); the document carries no timings.  docs/scan.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from threadpoolctl import threadpool_limits

from tracec import learning_curve as lc
from tracec.candidates import train_pool
from tracec.config import CompileConfig
from tracec.frontier import Context, certify_alpha
from tracec.inputs import embed_inputs, read_traces
from tracec.ood import fit_ood
from tracec.policy import Refitter, make_primary, score_shipped
from tracec.pool_sample import capped
from tracec.projection import FACTORS, MAX_FACTOR, project
from tracec.splits import auto_fractions, split_rows

Say = Callable[[str], None]
FIT = ("1 - A(c, m) = k_c m^(-g_c): held-out disagreement of the c most confident share, a "
       "power law of the training rows m, one fit per subsample seed")


def scan(config: CompileConfig, say: Optional[Say] = None) -> dict:
    say = say or (lambda _m: None)
    with threadpool_limits(limits=1):
        start = time.perf_counter()
        data = embed_inputs(config, read_traces(config, say), say)
        fractions = auto_fractions(data.n)
        splits = split_rows(data.n, config.seed, fractions, data.traces.certifiable,
                             data.traces.inputs)
        X = {k: data.X[v] for k, v in splits.__dict__.items()}
        y = {k: data.y[v] for k, v in splits.__dict__.items()}
        say("split " + ", ".join(f"{k} {v:,}" for k, v in splits.counts().items()))
        now = certify_now(X, y, len(data.labels), data.dim, config, say)
        say(f"[scan] coverage now certified in {time.perf_counter() - start:.1f} s; "
            "learning curve ...")
        curve = lc.measure_curve(X, y, config.seed)
        alphas = []
        for alpha, (family, coverage) in zip(config.alphas, now):
            alphas.append({"alpha": alpha, "coverage_now": round(coverage, 4), "family": family,
                           **project(curve, data.n, alpha, config.delta, coverage)})
        counts = np.bincount(data.y, minlength=len(data.labels))
        say(f"[scan] done in {time.perf_counter() - start:.1f} s")
    return {
        "ok": True, "traces": data.traces.summary(), "labels_total": len(data.labels),
        "seed": config.seed, "delta": config.delta, "splits": splits.counts(),
        "method": {"model": lc.MODEL, "fractions": list(lc.FRACTIONS), "repeats": lc.REPEATS,
                   "fit": FIT, "factors": list(FACTORS), "max_factor": MAX_FACTOR,
                   "heldout_rows": curve.heldout_rows, "train_rows": curve.train_rows},
        "learning_curve": [{"fraction": p.fraction, "repeat": p.repeat,
                            "train_rows": p.train_rows,
                            "agreement_full_coverage": round(float(p.agreement[-1]), 4)}
                           for p in curve.points],
        "alphas": alphas,
        "labels": lc.label_table(curve, data.labels, counts),
    }


def certify_now(X: dict, y: dict, n_labels: int, dim: int, config: CompileConfig,
                say: Say) -> list[tuple[Optional[str], float]]:
    """The compile's pool -> primary -> refit -> certify on the same split: (family, calibration
    coverage) per alpha, what ``tracec compile`` with the same traces, seed and alphas certifies
    (before its shadow gate), its default OOD gate included."""
    fit_X, fit_y = capped(X["train"], y["train"], config.seed, 0, say)  # as compile: <= POOL_CAP
    pool = train_pool(fit_X, fit_y, X["validation"], y["validation"], seed=config.seed,
                      include_trees=config.include_trees,
                      size_budget_bytes=config.size_budget_bytes, progress=say)
    primary = make_primary(pool[0], X["validation"], y["validation"], config.seed)
    refit_X, refit_y = capped(np.concatenate([X["train"], X["validation"]]),
                              np.concatenate([y["train"], y["validation"]]), config.seed, 1, say)
    ship = Refitter(refit_X, refit_y, X["validation"], n_labels, config.size_budget_bytes, say)
    ood = None if config.ood_quantile is None else fit_ood(
        X["train"], y["train"], seed=config.seed, quantile=config.ood_quantile)
    scored = score_shipped(primary, ship(primary), dim,
                           {k: X[k] for k in ("validation", "calibration")}, ood)
    ctx = Context(pool, primary, scored, X, y, config.families, config.delta, config.min_accept,
                  config.seed, dim, say, config.size_budget_bytes, ship)
    out = []
    for alpha in config.alphas:
        w = certify_alpha(ctx, alpha).winner
        out.append((None, 0.0) if w is None else (w.family, float(w.coverage)))
    return out


def scan_config(traces, alphas, delta: float, seed: int, embeddings=None, **options) -> CompileConfig:
    """The scan's options as a ``CompileConfig`` (the same validation as compile; no --out)."""
    return CompileConfig(traces=traces, out=Path("(scan: no bundle)"), embeddings=embeddings,
                         alphas=tuple(alphas), delta=delta, seed=seed, **options)


def text(doc: dict) -> str:
    """The human summary printed without --json."""
    t = doc["traces"]
    lines = [f"scan of {t['rows']:,} traces, {doc['labels_total']} teacher labels "
             f"(delta {doc['delta']:g}, seed {doc['seed']}):"]
    for a in doc["alphas"]:
        now = (f"certifies {a['coverage_now']:.1%} now ({a['family']})" if a["family"]
               else "certifies nothing now")
        lines.append(f"  alpha {a['alpha']:g}: {now}; {a['note']}")
    if doc["labels"]:
        lines.append("  labels holding coverage back (collect more traces of these): " + ", ".join(
            f"{r['label']} ({r['traces']} traces, agreement {r['agreement']:.2f})"
            for r in doc["labels"][:5]))
    return "\n".join(lines)

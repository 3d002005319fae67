"""A cap on the rows the candidate pool is fit on: above it, a seeded uniform sample.

Fitting the pool (six candidates, lbfgs and Adam passes over every row) and refitting the
shipped stages on train + validation are the only compile steps whose cost per row is large;
on 384-d sentence embeddings a linear or MLP surrogate gains little past tens of thousands
of rows, while the compile time keeps growing with them (docs/scaling.md, measured with
``benchmarks/compile_scale.py``).  So when the train split (for the pool) or train +
validation (for the refit) holds more than ``POOL_CAP`` rows, the fit uses a uniform sample
of ``POOL_CAP`` of them, drawn with the compile's seed.  Everything else uses every row:
selection and acceptors (validation), the OOD gate (train split), calibration, the shadow
gate and the fast-path check.  Calibration rows never enter a fit either way, so the
certificate is unchanged (docs/guarantee.md).  The manifest's ``pool_sample`` records the cap
and the rows fit (null when nothing was sampled); the bundle stays a function of the traces,
the seed and the options.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

POOL_CAP = 50_000
METHOD = "uniform-seeded"


def _rows(n: int, seed: int, salt: int, cap: int) -> Optional[np.ndarray]:
    if n <= cap:
        return None
    return np.sort(np.random.default_rng([seed, salt]).choice(n, size=cap, replace=False))


def capped(X: np.ndarray, y: np.ndarray, seed: int, salt: int = 0, say=None,
           cap: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` itself when it has at most ``cap`` rows, else a seeded uniform sample of
    ``cap`` rows in their original order (``salt`` separates the pool's and the refit's draws;
    ``cap`` defaults to ``POOL_CAP``)."""
    cap = POOL_CAP if cap is None else cap
    idx = _rows(len(y), seed, salt, cap)
    if idx is None:
        return X, y
    if say is not None:
        say(f"{'pool' if salt == 0 else 'refit'}: fitting on a seeded uniform sample of "
            f"{cap:,} of {len(y):,} rows (pool_sample)")
    return X[idx], y[idx]


def record(counts: dict, cap: Optional[int] = None) -> Optional[dict]:
    """The manifest's ``pool_sample`` for these split counts (None: every row was fit)."""
    cap = POOL_CAP if cap is None else cap
    pool, refit = counts["train"], counts["train"] + counts["validation"]
    if max(pool, refit) <= cap:
        return None
    return {"method": METHOD, "cap": cap, "pool_fit_rows": min(pool, cap),
            "pool_rows": pool, "refit_rows_fit": min(refit, cap), "refit_rows": refit}

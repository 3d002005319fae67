"""Project certifiable coverage to more traces from a learning curve (``tracec.learning_curve``).

The fit: at every coverage level ``c`` of the grid, the held-out disagreement of the ``c`` most
confident share is fitted as a power law of the training rows ``m``,
``1 - A(c, m) = k_c m^(-g_c)`` (a line in log-log), one fit per subsample seed (its 25 % and
50 % runs and the shared 100 % run).  Two parameters, which three sizes can support; learning
curves of error are close to power laws.  On the Banking77 backtest (docs/scan.md) a line in
``ln m`` (``A = a + b ln m``) overshot far more (projected agreement above 1 at 5x); the power law
can still be optimistic (real curves flatten), so projections stop at ``MAX_FACTOR`` times the
traces and are reported as "at this rate".

For ``n`` total traces the compile's auto split gives ``m(n)`` training and ``cal(n)``
calibration rows; the projected coverage at alpha is the largest ``c`` whose step of
``floor(c cal(n))`` rows, at the projected agreement, passes the compile's exact binomial test
at delta and is at least the first step's size (``frontier.first_step_size``).  That step
ignores what planning loses (the fixed sequence may stop before the best step); measured
against what compile certified in docs/scan.md.

``no_learning`` is the pessimistic end: the model stops improving and only the calibration
split grows.  Each projection reports both.  In the backtest (docs/scan.md) the power law was
off either way (high on Banking77, low on CLINC150 at 1,000 traces, where the compile's pool
beats the projection model), and the certified coverage was never below the no-learning end.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import stats

from tracec.frontier import first_step_size
from tracec.learning_curve import FRACTIONS, GRID, MIN_HELDOUT, MIN_SUBSAMPLE, Curve, measure_curve
from tracec.splits import auto_fractions

MAX_FACTOR = 10                   # no projection beyond 10x the traces scanned
FACTORS = (2, 5, 10)              # projected coverage reported at these multiples
TARGETS = (0.25, 0.5, 0.75)       # "about N more traces reach coverage X"
FLAT_EXPONENT = 0.02              # error decay exponent g below which the curve is flat (1.4 %/doubling)
MIN_ERROR = 1e-3                  # disagreement floor before the log (a fully agreeing level)
MIN_ACCEPT = 100                  # the compile's default --min-accept


def split_rows_at(n: int) -> tuple[int, int]:
    """(train + validation rows, calibration rows) of the compile's auto split of ``n`` traces."""
    fr = auto_fractions(n)
    cal, shadow = int(np.floor(fr[2] * n)), int(np.floor(fr[3] * n))
    return n - cal - shadow, cal


def certifiable(agreement: np.ndarray, n_cal: int, alpha: float, delta: float) -> float:
    """Largest grid coverage whose calibration step would pass at ``agreement`` (0 if none)."""
    k = np.floor(GRID * n_cal + 1e-9).astype(np.int64)
    agree = np.floor(np.clip(agreement, 0.0, 1.0) * k + 1e-9).astype(np.int64)
    p = stats.binom.sf(agree - 1, k, alpha)
    ok = (k >= first_step_size(MIN_ACCEPT, alpha, delta)) & (p <= delta)
    return float(GRID[ok].max()) if ok.any() else 0.0


def fits(curve: Curve) -> list[np.ndarray]:
    """One (2, grid) array per subsample seed: slope and intercept of ln(1 - A) on ln m."""
    full = curve.full()
    out = []
    for rep in sorted({p.repeat for p in curve.points if p.fraction < 1.0}):
        pts = [p for p in curve.points if p.fraction < 1.0 and p.repeat == rep] + [full]
        x = np.log([p.train_rows for p in pts])
        errors = np.clip(1.0 - np.stack([p.agreement for p in pts]), MIN_ERROR, 1.0)
        out.append(np.polyfit(x, np.log(errors), 1))
    return out


def _coverage(fit: np.ndarray, n: int, alpha: float, delta: float) -> float:
    m, n_cal = split_rows_at(n)
    return certifiable(agreement_at(fit, m), n_cal, alpha, delta)


def agreement_at(fit: np.ndarray, m: int) -> np.ndarray:
    """Projected selective agreement on the grid with ``m`` training rows."""
    return 1.0 - np.exp(fit[0] * np.log(m) + fit[1])


def _spread(values: list) -> dict:
    finite = [v for v in values if v is not None]
    med = float(np.median([np.inf if v is None else v for v in values]))
    return {"median": None if not np.isfinite(med) else round(med, 4),
            "low": round(min(finite), 4) if finite else None,
            "high": None if len(finite) < len(values) else round(max(finite), 4)}


def _traces_for(fit: np.ndarray, n: int, alpha: float, delta: float, target: float):
    """Smallest total trace count (grid n * 10^(j/40), j = 0..40) projected to reach ``target``."""
    return _first_size(n, lambda size: _coverage(fit, size, alpha, delta) >= target)


def _first_size(n: int, reaches) -> Optional[int]:
    for j in range(41):
        size = int(round(n * MAX_FACTOR ** (j / 40)))
        if reaches(size):
            return size
    return None


def no_learning(agreement: np.ndarray, n: int, alpha: float, delta: float) -> float:
    """The pessimistic end: coverage certified at ``n`` traces if the model stopped learning,
    today's held-out agreement curve certified on ``n``'s larger calibration split (more rows
    shrink the finite-sample margin; nothing else improves)."""
    return certifiable(agreement, split_rows_at(n)[1], alpha, delta)


def project(curve: Curve, n: int, alpha: float, delta: float, certified_now: float,
            min_coverage: float = 0.05) -> dict:
    """The projection at one alpha: a status, a sentence, and numbers with their seed spread."""
    full = curve.full()
    model_now = no_learning(full.agreement, n, alpha, delta)
    doc = {"model_coverage_now": round(model_now, 4), "status": "cannot_project",
           "at": [], "traces_to_open": None, "more_traces_to_open": None,
           "traces_to_open_no_learning": None, "targets": []}
    if curve.too_small:
        doc["note"] = (f"cannot project: too few traces ({curve.heldout_rows} held-out rows, "
                       f"{curve.train_rows} training rows; need {MIN_HELDOUT} and "
                       f"{int(MIN_SUBSAMPLE / FRACTIONS[0])})")
        return doc
    fitted = fits(curve)
    decay = [-float(f[0][-1]) for f in fitted]   # error decay exponent at full coverage
    if float(np.median(decay)) <= FLAT_EXPONENT:
        doc["note"] = ("cannot project: the learning curve is flat (agreement at full coverage "
                       + ", ".join(f"{p.agreement[-1]:.3f}" for p in curve.points) +
                       " at " + ", ".join(str(p.train_rows) for p in curve.points) +
                       " training rows): more traces of the same kind are unlikely to help")
        return doc
    doc["status"] = "projected"
    m_now = split_rows_at(n)[0]
    doc["agreement_gain_per_doubling"] = _spread([float(agreement_at(f, 2 * m_now)[-1]
                                                        - agreement_at(f, m_now)[-1]) for f in fitted])
    for factor in FACTORS:
        doc["at"].append({"traces": n * factor, **_spread(
            [_coverage(f, n * factor, alpha, delta) for f in fitted]),
            "no_learning": round(no_learning(full.agreement, n * factor, alpha, delta), 4)})
    if certified_now >= min_coverage:
        doc["traces_to_open"] = {"median": n, "low": n, "high": n}
        doc["more_traces_to_open"] = 0
        doc["traces_to_open_no_learning"] = n
    else:
        doc["traces_to_open"] = _spread([_traces_for(f, n, alpha, delta, min_coverage)
                                         for f in fitted])
        med = doc["traces_to_open"]["median"]
        doc["more_traces_to_open"] = None if med is None else int(med) - n
        doc["traces_to_open_no_learning"] = _first_size(n, lambda size: no_learning(
            full.agreement, size, alpha, delta) >= min_coverage)
    for target in TARGETS:
        if target > max(model_now, certified_now):
            need = _spread([_traces_for(f, n, alpha, delta, target) for f in fitted])
            doc["targets"].append({"coverage": target, "traces": need})
    doc["note"] = sentence(doc, n, alpha, certified_now >= min_coverage)
    return doc


def sentence(doc: dict, n: int, alpha: float, certified: bool = False) -> str:
    """The one-line summary (also the refusal's projection line)."""
    if doc["status"] != "projected":
        return doc.get("note", "cannot project")
    opened = doc["traces_to_open"]
    if doc["more_traces_to_open"] == 0 and certified:
        head = f"alpha {alpha:g} certifies now (calibration)"
    elif doc["more_traces_to_open"] == 0:
        head = (f"at alpha {alpha:g} the projection model would certify at this size but the "
                "compile's procedure did not (planning or acceptor loss): collect more traces")
    elif opened["median"] is None:
        head = (f"at this rate {MAX_FACTOR}x the traces ({n * MAX_FACTOR:,}) would not open the "
                f"gate at alpha {alpha:g}")
    else:
        hi = "more than " + f"{n * MAX_FACTOR - n:,}" if opened["high"] is None \
            else f"{int(opened['high']) - n:,}"
        spread = "" if opened["low"] == opened["high"] else \
            f" (seed spread {int(opened['low']) - n:,} to {hi})"
        head = (f"at this rate about {int(opened['median']) - n:,} more traces would open the "
                f"gate at alpha {alpha:g}{spread}")
    if doc["more_traces_to_open"] != 0:
        flat = doc["traces_to_open_no_learning"]
        head += (f", {flat - n:,} more if the model stopped learning" if flat is not None else
                 f", not within {MAX_FACTOR}x if the model stopped learning")
    at = doc["at"][0]
    spread = "" if at["low"] == at["high"] else f" (spread {at['low']:.2f}-{at['high']:.2f})"
    return (f"{head}; coverage at {at['traces']:,} traces: {at['median']:.2f} at this rate"
            f"{spread}, {at['no_learning']:.2f} if the model stopped learning (docs/scan.md)")


def refusal_line(X: dict, y: dict, seed: int, alpha: float, delta: float, certified: float) -> str:
    """The refused compile's projection, on its own split: one subsample seed (3 logistic-
    regression fits, not the scan's 7; the pool is not retrained), so no seed spread.  It
    assumes the auto split for the larger trace counts."""
    n = sum(len(v) for v in y.values())
    doc = project(measure_curve(X, y, seed, repeats=1), n, alpha, delta, certified)
    return (f"projection (learning curve, one seed; `tracec scan` gives the seed spread and the "
            f"labels to collect): {doc['note']}")

"""Policy families and their certification.

A *stage* is a surrogate plus its acceptor.  Every stage is exported to ONNX
first and scored by that graph (float32), so the threshold is certified on
exactly the numbers the runtime will compute.

Families (all certified by fixed-sequence testing, ``tracec.calibration``):

* ``l2d``: one stage, handled when score >= tau.  Its loosest grid step is
  "accept everything", which *is* the ``global`` family: when the sequence
  passes all the way, the winner is reported as ``global``.
* ``cascade``: stage 1 as above; stage 2 is the pool member that agrees best
  with the teacher on the validation residual (rows stage 1 would defer at
  alpha), with its own acceptor fit on that residual.  Handled when either
  score >= tau, answered by stage 1 when it clears tau, else by stage 2.

Each family's sequence is planned on validation rows (``plan_family``); only the
family with the highest predicted coverage is certified, at the full delta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from tracec.acceptor import Acceptor, fit_acceptor
from tracec.calibration import Certification, fixed_sequence, threshold_grid
from tracec.candidates import refit_candidate
from tracec.export import StageGraphSpec, build_policy_graph
from tracec.planning import pass_probability, planned_coverage, planned_start, predicted_lower
from tracec.scoring import GraphScorer

START = "pass_probability"  # or "lower": how plan_family picks the start (docs/guarantee.md)


@dataclass(frozen=True)
class Stage:
    candidate: object            # tracec.candidates.TrainedCandidate
    acceptor: Acceptor

    @property
    def spec(self) -> StageGraphSpec:
        est = self.candidate.estimator
        return StageGraphSpec(estimator=est, classes=np.asarray(est.classes_, dtype=np.int64),
                              acceptor_coef=self.acceptor.coef,
                              acceptor_intercept=self.acceptor.intercept)


@dataclass(frozen=True)
class Scored:
    """One stage's graph outputs on one split."""

    label: np.ndarray   # int64 global label index
    score: np.ndarray   # float32
    inside: Optional[np.ndarray] = None   # bool: the OOD gate's in_distribution (None: no gate)

    def gated(self, handled: np.ndarray) -> np.ndarray:
        """``handled`` AND in distribution: rows the gate rejects are never handled."""
        return handled if self.inside is None else handled & self.inside


@dataclass(frozen=True)
class FamilyResult:
    family: str                      # global | l2d | cascade
    stages: tuple[Stage, ...]
    certification: Certification
    grid_size: int

    @property
    def coverage(self) -> float:
        c = self.certification.chosen
        return 0.0 if c is None else float(c.coverage)


def score_stage(stage: Stage, n_features: int, splits: dict[str, np.ndarray],
                ood=None) -> dict[str, Scored]:
    """Export one stage as an l2d graph (with the OOD gate, if any) and score every given
    split with onnxruntime; ``inside`` is the graph's own ``in_distribution`` output."""
    graph = build_policy_graph([stage.spec], n_features=n_features, tau=0.5, mode="l2d", ood=ood)
    scorer = GraphScorer(graph)
    out = {}
    for name, X in splits.items():
        label, score, _ = scorer.run(X)
        out[name] = Scored(label, score, scorer.inside(X) if ood is not None else None)
    return out


class Refitter:
    """A selected stage as it ships: its surrogate refit on train + validation (memoised per
    candidate), its acceptor unchanged.  Selection, acceptors, the threshold grid and the
    cascade's residual all use the train-split models and validation rows; the refit models
    are what calibration certifies, the shadow gate tests and the bundle carries."""

    def __init__(self, X: np.ndarray, y: np.ndarray, X_check: np.ndarray, n_labels: int,
                 size_budget_bytes: int, progress: Callable[[str], None]):
        self._args = (X, y, X_check, n_labels, size_budget_bytes, progress)
        self._done: dict[str, object] = {}

    def __call__(self, stage: Stage) -> Stage:
        name = stage.candidate.name
        if name not in self._done:
            self._done[name] = refit_candidate(stage.candidate, *self._args)
        return Stage(self._done[name], stage.acceptor)


def score_shipped(selected: Stage, shipped: Stage, n_features: int,
                  splits: dict[str, np.ndarray], ood=None) -> dict[str, Scored]:
    """Validation rows scored by the selected (train-split) stage, every other split by the
    shipped one.  The OOD gate (``ood``) applies to the certified splits only: validation rows
    plan the walk (grid, start, family) exactly as without the gate, a choice made before any
    calibration row is seen either way; calibration counts gated-out rows as deferred."""
    val = {k: v for k, v in splits.items() if k == "validation"}
    rest = {k: v for k, v in splits.items() if k != "validation"}
    out = score_stage(selected, n_features, val) if val else {}
    out.update(score_stage(shipped, n_features, rest, ood))
    return out


def make_primary(candidate, X_val: np.ndarray, y_val: np.ndarray, seed: int) -> Stage:
    probs = candidate.estimator.predict_proba(X_val)
    pred = np.asarray(candidate.estimator.classes_)[probs.argmax(axis=1)]
    return Stage(candidate, fit_acceptor(probs, pred == y_val, seed))


def residual_cut(primary_val: Scored, y_val: np.ndarray, alpha: float) -> float:
    """Lowest score above which stage 1's validation agreement (point estimate) is >= alpha."""
    order = np.argsort(-primary_val.score, kind="stable")
    agree = (primary_val.label == y_val)[order].astype(np.float64)
    running = np.cumsum(agree) / np.arange(1, len(agree) + 1)
    ok = np.nonzero(running >= alpha)[0]
    if len(ok) == 0:
        return float(primary_val.score.max()) + 1.0
    return float(primary_val.score[order][ok[-1]])


def make_residual(pool: Sequence, primary: Stage, primary_val: Scored, X_val: np.ndarray,
                  y_val: np.ndarray, alpha: float, seed: int,
                  size_budget_bytes: int = 5_000_000) -> Optional[Stage]:
    """Pick stage 2 from the pool by agreement on stage 1's validation residual.

    Only candidates that fit in the bundle-size budget together with stage 1 are eligible.
    """
    residual = primary_val.score < residual_cut(primary_val, y_val, alpha)
    if residual.sum() < 30:
        return None
    best, best_agree, best_probs = None, -1.0, None
    for cand in pool:
        if cand is primary.candidate or \
                cand.onnx_bytes + primary.candidate.onnx_bytes > size_budget_bytes:
            continue
        probs = cand.estimator.predict_proba(X_val[residual])
        pred = np.asarray(cand.estimator.classes_)[probs.argmax(axis=1)]
        rate = float(np.mean(pred == y_val[residual]))
        if rate > best_agree:
            best, best_agree, best_probs = cand, rate, (probs, pred)
    if best is None:
        return None
    probs, pred = best_probs
    return Stage(best, fit_acceptor(probs, pred == y_val[residual], seed))


def cascade_decisions(s1: Scored, s2: Scored, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """(label, handled) of the two-stage cascade at threshold tau (same rule as the graph)."""
    h1 = s1.score >= np.float32(tau)
    handled = s1.gated(h1 | (s2.score >= np.float32(tau)))
    return np.where(h1, s1.label, s2.label), handled


@dataclass(frozen=True)
class Plan:
    """One family's fixed sequence, planned on validation rows (``tracec.planning``)."""

    family: str              # l2d | cascade
    stages: tuple            # as planned: shipped stage 1; a cascade's stage 2 not yet refit
    grid: np.ndarray         # thresholds from the planned start on, strict -> loose
    coverage: float          # predicted share handled by the last promoted step


def l2d_decide(s: Scored) -> Callable:
    return lambda tau: (s.gated(s.score >= np.float32(tau)), s.label)


def cascade_decide(s1: Scored, s2: Scored) -> Callable:
    return lambda tau: cascade_decisions(s1, s2, tau)[::-1]


def _counts(grid: np.ndarray, decide: Callable, y: np.ndarray) -> tuple[list[int], list[int]]:
    """Per threshold, rows handled and rows handled in agreement with ``y``."""
    nh, na = [], []
    for tau in grid:
        handled, label = decide(tau)
        nh.append(int(handled.sum()))
        na.append(int((handled & (label == y)).sum()))
    return nh, na


def plan_family(family: str, stages: tuple, val: Sequence[Scored], y_val: np.ndarray,
                n_cal: int, alpha: float, delta: float, min_accept: int) -> Plan:
    """Grid from the validation scores (max over stages), started where the predicted bound
    is highest; the predicted coverage ranks the families.  ``global`` is the one
    accept-everything step."""
    grid = threshold_grid(np.maximum.reduce([v.score for v in val]), n_cal, min_accept=min_accept)
    if family == "global":
        grid = grid[-1:]
    decide = l2d_decide(val[0]) if len(val) == 1 else cascade_decide(*val)
    nh, na = np.array(_counts(grid, decide, y_val))
    lower = predicted_lower(nh, na, len(y_val), n_cal, delta)
    start = planned_start(pass_probability(nh, na, len(y_val), n_cal, alpha, delta)
                          if START == "pass_probability" else lower)
    return Plan(family, stages, grid[start:], planned_coverage(lower, nh, len(y_val), alpha, start))


def certify_plan(plan: Plan, decide_cal: Callable, y_cal: np.ndarray, alpha: float,
                 delta: float, rules=None, labels=()) -> tuple[Certification, int]:
    """Fixed-sequence certification of the planned grid on the calibration rows (with the
    routing rules, if any: ``tracec.rules.certify_with_rules``)."""
    if rules is not None and not rules.is_empty():
        from tracec.rules import certify_with_rules
        return (certify_with_rules(plan.grid, decide_cal, y_cal, alpha, delta, rules, labels),
                len(plan.grid))
    nh, na = _counts(plan.grid, decide_cal, y_cal)
    return fixed_sequence(nh, na, len(y_cal), plan.grid, alpha, delta), len(plan.grid)


def is_accept_all(cert: Certification, grid_size: int) -> bool:
    """The sequence passed all the way to its last step, "accept everything" (tau = -inf)."""
    return cert.chosen is not None and cert.chosen.index == grid_size - 1 and not np.isfinite(cert.chosen.tau)


def best_family(results: Sequence[FamilyResult]) -> Optional[FamilyResult]:
    """Highest certified calibration coverage; ties go to the simpler family."""
    rank = {"global": 0, "l2d": 1, "cascade": 2}
    passed = [r for r in results if r.certification.passed]
    if not passed:
        return None
    return max(passed, key=lambda r: (round(r.coverage, 9), -rank[r.family]))


ProgressFn = Callable[[str], None]

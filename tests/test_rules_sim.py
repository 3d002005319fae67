"""tracec.rules.certify_with_rules: the family-wise guarantee (overall + per-label TA, all at
delta / (1 + m)) by simulation, and the never_handle / max_handled_share mechanics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracec.calibration import threshold_grid
from tracec.rules import RoutingRules, certify_with_rules

ALPHA, DELTA = 0.85, 0.1
LABELS = ("a", "b", "c")
P_LABEL = np.array([0.3, 0.4, 0.3])   # predicted label, independent of the score


# Agreement g_l(s) = base_l + slope_l * s on s ~ U(0, 1): TA_l(t) = base_l + slope_l (1 + t) / 2.
WORLDS = {
    # label a crosses its floor 0.85 at t = 0.25; overall crosses 0.85 lower
    "crossing": {"a": (0.6, 0.4), "b": (0.9, 0.1), "c": (0.8, 0.2)},
    # label a is flat just below its floor: any promotion that handles a is a violation
    "flat_below": {"a": (0.84, 0.0), "b": (0.95, 0.05), "c": (0.9, 0.1)},
}


def _ta(world: dict, label: str, t: float) -> float:
    base, slope = world[label]
    t = max(float(t), 0.0)  # tau = -inf handles everything
    return base + slope * (1 + t) / 2


def _violates(world, rules: RoutingRules, tau) -> bool:
    """True TA of the promoted policy (closed form) below alpha overall or below a floor."""
    live = [k for k, x in enumerate(LABELS) if x not in rules.never_handle]
    w = P_LABEL[live] / P_LABEL[live].sum()
    overall = sum(wk * _ta(world, LABELS[k], tau) for wk, k in zip(w, live))
    return overall < ALPHA or any(_ta(world, x, tau) < a for x, a in rules.min_alpha.items())


def _simulate(world, rules: RoutingRules, reps: int, seed: int, n: int = 2000, judge=None):
    """(share of draws promoting a policy that violates ``judge`` (default: the rules
    themselves), share of draws promoting anything)."""
    judge = rules if judge is None else judge
    rng = np.random.default_rng(seed)
    bad = promoted = 0
    for _ in range(reps):
        grid = threshold_grid(rng.random(n), n, min_accept=200, max_steps=60)
        s = rng.random(n)
        label = rng.choice(3, size=n, p=P_LABEL)
        base = np.array([world[x][0] for x in LABELS])[label]
        slope = np.array([world[x][1] for x in LABELS])[label]
        agree = rng.random(n) < base + slope * s
        y = np.where(agree, label, -1)
        s32 = s.astype(np.float32)
        cert = certify_with_rules(grid, lambda tau: (s32 >= tau, label), y, ALPHA, DELTA,
                                  rules, LABELS)
        if cert.passed:
            promoted += 1
            bad += _violates(world, judge, cert.tau)
    return bad / reps, promoted / reps


def _tolerance(p: float, reps: int) -> float:
    return 3.0 * math.sqrt(p * (1 - p) / reps)


@pytest.mark.parametrize("name", sorted(WORLDS))
def test_class_conditional_violation_rate_is_at_most_delta(name):
    rules = RoutingRules(min_alpha={"a": 0.85, "c": 0.85})
    bad, promoted = _simulate(WORLDS[name], rules, reps=600, seed=21)
    assert bad <= DELTA + _tolerance(DELTA, 600), (name, bad, promoted)
    if name == "crossing":  # there is something to certify: the procedure finds it
        assert promoted >= 0.8


def test_without_the_per_label_hypotheses_label_a_is_violated():
    """Overall TA is about 0.9 everywhere, label a's is 0.84: the walk with the overall
    hypothesis alone promotes a policy violating a's floor almost always; with the floor,
    at most delta of the draws do."""
    world, floors = WORLDS["flat_below"], RoutingRules(min_alpha={"a": 0.85})
    unprotected, _ = _simulate(world, RoutingRules(), reps=200, seed=22, judge=floors)
    protected, _ = _simulate(world, floors, reps=200, seed=22)
    assert unprotected >= 0.9
    assert protected <= DELTA + _tolerance(DELTA, 200)


def test_never_handle_labels_are_never_counted_as_handled():
    rng = np.random.default_rng(5)
    n = 3000
    s, label = rng.random(n).astype(np.float32), rng.choice(3, size=n, p=P_LABEL)
    y = label.copy()  # full agreement
    grid = threshold_grid(rng.random(n), n, min_accept=100, max_steps=30)
    rules = RoutingRules(never_handle=["b"])
    cert = certify_with_rules(grid, lambda tau: (s >= tau, label), y, ALPHA, DELTA, rules, LABELS)
    assert cert.passed
    share_b = float(np.mean(label == 1))
    assert cert.chosen.coverage <= 1 - share_b + 1e-9
    assert cert.chosen.n_handled == int(np.sum((s >= cert.tau) & (label != 1)))


def test_max_handled_share_caps_calibration_coverage():
    rng = np.random.default_rng(6)
    n = 3000
    s, label = rng.random(n).astype(np.float32), rng.choice(3, size=n, p=P_LABEL)
    grid = threshold_grid(rng.random(n), n, min_accept=100, max_steps=40)
    free = certify_with_rules(grid, lambda tau: (s >= tau, label), label, ALPHA, DELTA,
                              RoutingRules(), LABELS)
    capped = certify_with_rules(grid, lambda tau: (s >= tau, label), label, ALPHA, DELTA,
                                RoutingRules(max_handled_share=0.4), LABELS)
    assert free.chosen.coverage > 0.9
    assert 0.3 < capped.chosen.coverage <= 0.4
    assert capped.tau > free.tau and capped.stopped_by == "max_handled_share"
    # a cap below the strictest step: nothing can be certified
    none = certify_with_rules(grid, lambda tau: (s >= tau, label), label, ALPHA, DELTA,
                              RoutingRules(max_handled_share=0.01), LABELS)
    assert not none.passed and none.tau is None and none.stopped_by == "max_handled_share"
    # a floor no step can meet ends the walk at its first step, and says so
    floor = certify_with_rules(grid, lambda tau: (s >= tau, label), np.where(label == 0, -1, label),
                               0.5, DELTA, RoutingRules(min_alpha={"a": 0.9}), LABELS)
    assert not floor.passed and floor.stopped_by == "min_alpha.a" and floor.delta_each == DELTA / 2

"""The live gate's statistics, proven by simulation (docs/guarantee.md, "Watching").

* validity: with live TA >= alpha, checking after every audit for as long as a run
  lasts, the gate closes in at most delta of runs;
* power: with live TA = alpha - 5 points it closes within the documented number of audits;
* the interval agrees with its definition, and summed replica counts give the pooled bound.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracec_runtime.watch import LiveMonitor, confidence_interval, pooled, prior_for
from tracec_runtime.watch.confseq import excludes_above, log_mixture

DELTA = 0.05


def _closing_time(outcomes: np.ndarray, alpha: float, delta: float) -> int | None:
    mon = LiveMonitor(alpha, delta)
    for t, ok in enumerate(outcomes.tolist(), start=1):
        if not mon.record(ok):
            return t
    return None


def _close_share(p: float, alpha: float, runs: int, horizon: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    closed = sum(_closing_time(rng.random(horizon) < p, alpha, DELTA) is not None
                 for _ in range(runs))
    return closed / runs


def _binomial_upper(k: int, n: int, level: float = 0.999) -> float:
    """A crude one-sided upper bound on a share (normal approximation with continuity)."""
    z = 3.09 if level == 0.999 else 2.33
    p = (k + 0.5) / n
    return p + z * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("alpha,live", [(0.90, 0.90), (0.95, 0.95), (0.90, 0.92)])
def test_gate_closes_in_at_most_delta_of_runs_when_live_ta_meets_alpha(alpha, live):
    runs, horizon = 300, 2000  # checked after every one of 2,000 audits
    share = _close_share(live, alpha, runs, horizon, seed=int(alpha * 1000 + live * 100))
    # the share is itself a sample: it must be compatible with <= delta
    assert share <= DELTA + 3.09 * math.sqrt(DELTA * (1 - DELTA) / runs), share


@pytest.mark.slow
def test_validity_holds_over_long_watches():
    share = _close_share(0.90, 0.90, runs=400, horizon=20_000, seed=7)
    assert share <= DELTA + 3.09 * math.sqrt(DELTA * (1 - DELTA) / 400), share


def test_a_repeated_fixed_n_test_would_inflate_the_error():
    """The trap this module avoids: a one-sided 95 % normal test after every audit closes
    a gate whose live TA equals alpha far more often than delta."""
    rng = np.random.default_rng(3)
    runs, horizon, alpha = 200, 2000, 0.9
    closed = 0
    for _ in range(runs):
        x = rng.random(horizon) < alpha
        t = np.arange(1, horizon + 1)
        mean = np.cumsum(x) / t
        upper = mean + 1.645 * np.sqrt(alpha * (1 - alpha) / t)
        closed += bool(np.any((upper < alpha) & (t >= 30)))
    assert closed / runs > 2 * DELTA
    assert _close_share(alpha, alpha, runs, horizon, seed=3) <= DELTA + 0.05


@pytest.mark.parametrize("alpha", [0.90, 0.95])
def test_gate_closes_within_documented_audits_when_live_ta_is_5_points_below(alpha):
    rng = np.random.default_rng(11)
    runs, limit = 60, 1500  # docs/guarantee.md: within 1,500 audits in >= 95 % of runs
    times = [_closing_time(rng.random(limit) < alpha - 0.05, alpha, DELTA) for _ in range(runs)]
    closed = [t for t in times if t is not None]
    assert len(closed) >= 0.95 * runs, (len(closed), runs)


def test_interval_matches_its_definition():
    prior = prior_for(0.9)
    level = math.log(1 / DELTA)
    for agree, disagree in [(0, 1), (5, 0), (90, 10), (850, 150), (9000, 1000)]:
        iv = confidence_interval(agree, disagree, DELTA, prior)
        assert 0.0 <= iv.lower <= agree / (agree + disagree) <= iv.upper <= 1.0
        for p in (iv.lower, iv.upper):
            if 0.0 < p < 1.0:  # just outside the set, by outward rounding
                assert log_mixture(agree, disagree, p, *prior) >= level - 1e-6
        inner = [iv.lower + (iv.upper - iv.lower) * f for f in (0.01, 0.5, 0.99)]
        assert all(log_mixture(agree, disagree, p, *prior) < level for p in inner)
        assert excludes_above(agree, disagree, 0.9, DELTA, prior) == (iv.upper < 0.9)


def test_interval_narrows_with_evidence_and_empty_counts_say_nothing():
    assert confidence_interval(0, 0, DELTA).lower == 0.0
    assert confidence_interval(0, 0, DELTA).upper == 1.0
    widths = [confidence_interval(9 * n, n, DELTA, prior_for(0.9)) for n in (10, 100, 1000)]
    assert widths[0].upper - widths[0].lower > widths[1].upper - widths[1].lower \
        > widths[2].upper - widths[2].lower


def test_replica_counts_add_up_to_the_pooled_bound():
    a, b = LiveMonitor(0.9, DELTA), LiveMonitor(0.9, DELTA)
    rng = np.random.default_rng(5)
    for ok in (rng.random(700) < 0.86).tolist():
        (a if rng.random() < 0.5 else b).record(ok)
    whole = LiveMonitor(0.9, DELTA)
    for _ in range(a.agree + b.agree):
        whole.record(True)
    for _ in range(a.disagree + b.disagree):
        whole.record(False)
    iv, open_ = pooled(a.agree + b.agree, a.disagree + b.disagree, 0.9, DELTA)
    assert iv == whole.interval
    assert open_ == (iv.upper >= 0.9)


def test_closed_gate_stays_closed_and_says_why():
    mon = LiveMonitor(0.9, DELTA)
    for _ in range(400):
        mon.record(False)
    assert not mon.gate_open and "below alpha 0.9" in mon.closed_reason
    for _ in range(10_000):
        mon.record(True)
    assert not mon.gate_open

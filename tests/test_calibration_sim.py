"""tracec.calibration: exact tools, the grid, fixed-sequence testing, its guarantee by simulation,
and MAPIE's Learn-then-Test as an oracle."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from scipy import stats

from tracec.calibration import (binom_sf_pvalue, certify_threshold, cp_lower, cp_upper,
                                fixed_sequence, max_certifiable_alpha, step_counts,
                                threshold_grid)
from tracec.errors import ParameterError
from tracec.planning import planned_coverage, planned_start, predicted_lower

# ---------------------------------------------------------------- exact binomial tools


@pytest.mark.parametrize("k,n,alpha", [(0, 5, 0.9), (3, 5, 0.5), (5, 5, 0.9), (9, 12, 0.8),
                                       (20, 20, 0.95), (1, 1, 0.3)])
def test_pvalue_is_the_binomial_upper_tail(k, n, alpha):
    tail = sum(math.comb(n, j) * alpha**j * (1 - alpha) ** (n - j) for j in range(k, n + 1))
    assert binom_sf_pvalue(k, n, alpha) == pytest.approx(tail, rel=1e-10, abs=1e-15)


def test_pvalue_of_an_empty_policy_is_one():
    assert binom_sf_pvalue(0, 0, 0.9) == 1.0


@pytest.mark.parametrize("k,n", [(0, 10), (7, 10), (10, 10), (950, 1000), (3, 250)])
@pytest.mark.parametrize("delta", [0.05, 0.1])
def test_clopper_pearson_matches_scipy_exact_interval(k, n, delta):
    # scipy's two-sided exact interval at confidence 1 - 2*delta has the one-sided bounds at delta.
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - 2 * delta, method="exact")
    assert cp_lower(k, n, delta) == pytest.approx(ci.low, abs=1e-9)
    assert cp_upper(k, n, delta) == pytest.approx(ci.high, abs=1e-9)


def test_clopper_pearson_without_data():
    assert (cp_lower(0, 0, 0.05), cp_upper(0, 0, 0.05)) == (0.0, 1.0)


def test_bounds_and_pvalue_agree():
    # p <= delta exactly when the (1 - delta) lower bound clears alpha.
    for k, n in [(97, 100), (180, 200), (930, 1000)]:
        low = cp_lower(k, n, 0.05)
        assert binom_sf_pvalue(k, n, low - 1e-6) <= 0.05 < binom_sf_pvalue(k, n, low + 1e-6)


@pytest.mark.parametrize("call", [
    lambda: binom_sf_pvalue(5, 4, 0.9), lambda: binom_sf_pvalue(1, 4, 1.5),
    lambda: cp_lower(1, 4, 0.0), lambda: cp_upper(-1, 4, 0.1), lambda: cp_lower(1.5, 4, 0.1),
    lambda: threshold_grid(np.array([0.1, np.nan]), 100),
    lambda: threshold_grid(np.array([]), 100),
    lambda: certify_threshold(np.array([0.2, 0.4]), np.array([1, 0, 1]), np.array([0.3]), 0.9, 0.1),
    lambda: certify_threshold(np.array([0.2, 0.4]), np.array([1, 2]), np.array([0.3]), 0.9, 0.1),
    lambda: certify_threshold(np.array([0.2, np.inf]), np.array([1, 0]), np.array([0.3]), 0.9, 0.1),
    lambda: certify_threshold(np.array([0.2, 0.4]), np.array([1, 0]), np.array([0.1, 0.3]), 0.9, 0.1),
    lambda: certify_threshold(np.array([0.2, 0.4]), np.array([1, 0]), np.array([0.3]), 1.0, 0.1),
    lambda: fixed_sequence([10, 20], [11, 5], 30, [0.5, 0.4], 0.9, 0.1),
    lambda: fixed_sequence([10, 20], [10], 30, [0.5, 0.4], 0.9, 0.1),
    lambda: fixed_sequence([10, 40], [10, 5], 30, [0.5, 0.4], 0.9, 0.1),
])
def test_bad_parameters_raise_parameter_error(call):
    with pytest.raises(ParameterError, match="must be"):
        call()


# ---------------------------------------------------------------- the grid


def test_grid_starts_near_min_accept_and_ends_with_accept_all():
    u = np.random.default_rng(1).random(2000)
    grid = threshold_grid(u, n_calibration=1000, min_accept=100, max_steps=50)
    assert grid.dtype == np.float32 and len(grid) <= 50
    assert np.all(np.diff(grid) < 0) and grid[-1] == -np.inf
    # 100 of 1000 calibration rows = a 10% share = 200 of the 2000 unlabelled scores.
    assert int(np.sum(u.astype(np.float32) >= grid[0])) == 200
    shares = [np.mean(u.astype(np.float32) >= t) for t in grid]
    assert np.all(np.diff(shares) > 0) and shares[-1] == 1.0


def test_grid_thresholds_sit_strictly_between_distinct_float32_scores():
    rng = np.random.default_rng(2)
    u = np.round(rng.random(3000), 2)          # heavy ties
    grid = threshold_grid(u, n_calibration=3000, min_accept=30)
    u32 = u.astype(np.float32)
    finite = grid[np.isfinite(grid)]
    assert not np.isin(finite, u32).any()
    for t in finite:  # float32 and float64 scoring put every unlabelled row on the same side
        above, below = u32[u32 > t], u32[u32 < t]
        assert below.max() < t < above.min()
        assert np.sum(u >= float(t)) == np.sum(u32 >= t)


def test_grid_when_min_accept_exceeds_calibration_is_accept_all_only():
    assert threshold_grid(np.linspace(0, 1, 50), n_calibration=80, min_accept=100).tolist() == [-np.inf]


def test_grid_with_adjacent_float32_scores_uses_the_upper_one():
    a = np.float32(0.5)
    b = np.nextafter(a, np.float32(0))
    grid = threshold_grid(np.array([a, b], dtype=np.float32), n_calibration=2, min_accept=1)
    assert grid.tolist() == [float(a), -np.inf]


# ---------------------------------------------------------------- fixed sequence


def test_fixed_sequence_stops_at_first_failure_and_keeps_the_failing_step():
    # A general (non-nested) sequence, as a cascade family supplies: step 2 fails, step 3 would pass.
    cert = fixed_sequence([100, 200, 300, 400], [100, 196, 240, 400], 500,
                          [0.9, 0.8, 0.7, 0.6], alpha=0.9, delta=0.05)
    assert [s.index for s in cert.steps] == [0, 1, 2]
    assert cert.passed and cert.chosen is cert.steps[1] and cert.tau == np.float32(0.8)
    assert cert.steps[2].p_value > 0.05 >= cert.steps[1].p_value
    assert cert.chosen.coverage == 200 / 500 and cert.chosen.ta == 196 / 200
    for s in cert.steps:
        assert s.p_value == pytest.approx(binom_sf_pvalue(s.n_agree, s.n_handled, 0.9))
        assert (s.p_value <= 0.05) == (s.ta_lower >= 0.9)


def test_fixed_sequence_refuses_when_the_first_step_fails():
    cert = fixed_sequence([0, 200], [0, 200], 500, [0.9, 0.5], alpha=0.9, delta=0.05)
    assert not cert.passed and cert.tau is None and cert.chosen is None
    assert len(cert.steps) == 1 and cert.steps[0].ta == 0.0 and cert.steps[0].p_value == 1.0


def test_certify_threshold_counts_score_ge_tau_in_float32():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.2], dtype=np.float64)
    agree = np.array([1, 1, 0, 1, 0])
    taus, nh, na = step_counts(scores, agree, np.array([0.85, 0.8, -np.inf], dtype=np.float32))
    assert nh.tolist() == [1, 3, 5] and na.tolist() == [1, 2, 3]


def test_max_certifiable_alpha_is_limited_by_the_strictest_step():
    rng = np.random.default_rng(3)
    grid = threshold_grid(rng.random(2000), 2000)
    s = rng.random(2000)
    best = max_certifiable_alpha(s, np.ones(2000, bool), grid, 0.05)
    first = int(np.sum(s.astype(np.float32) >= grid[0]))
    assert best == pytest.approx(np.floor(cp_lower(first, first, 0.05) / 0.005) * 0.005)
    assert certify_threshold(s, np.ones(2000, bool), grid, best, 0.05).passed
    assert max_certifiable_alpha(s, np.zeros(2000, bool), grid, 0.05) is None


# ---------------------------------------------------------------- the guarantee, by simulation
#
# Scores ~ U(0, 1), P(agree | s) = g(s).  The true TA of "s >= t" is G(t) / (1 - t) with
# G(t) = integral of g over [t, 1], known in closed form; tau = -inf means t = 0.


@dataclass(frozen=True)
class World:
    name: str
    g: Callable[[np.ndarray], np.ndarray]
    G: Callable[[float], float]

    def ta(self, tau: float) -> float:
        t = min(max(float(tau), 0.0), 1.0 - 1e-12)
        return self.G(t) / (1.0 - t)


ALPHA, DELTA = 0.90, 0.05
B = ALPHA - 0.005  # "just below alpha"
SMOOTH = World("smooth", lambda s: 0.6 + 0.4 * s,                # TA(t) = 0.8 + 0.2 t
               lambda t: 0.6 * (1 - t) + 0.2 * (1 - t * t))
EDGE = World("edge", lambda s: np.where(s >= 0.99, 1.0, B),    # TA >= alpha only for t >= 0.79
             lambda t: 0.01 + B * (0.99 - t) if t < 0.99 else 1.0 - t)
FLAT = World("flat", lambda s: np.full_like(s, B), lambda t: B * (1 - t))  # every step is a null


def _tolerance(p: float, reps: int) -> float:
    # 3 binomial standard errors of a share estimated from `reps` independent draws: a true
    # share of exactly `p` exceeds p + tolerance with probability ~0.13%.
    return 3.0 * math.sqrt(p * (1 - p) / reps)


def _simulate(world: World, reps: int, seed: int, n_cal: int = 2000, n_unl: int = 2000):
    """Shares of draws where fixed-sequence / the naive sweep promote a policy with TA < alpha."""
    rng = np.random.default_rng(seed)
    bad_fst = bad_naive = promoted = 0
    coverage = []
    for _ in range(reps):
        grid = threshold_grid(rng.random(n_unl), n_cal)        # independent unlabelled split
        s = rng.random(n_cal)
        agree = rng.random(n_cal) < world.g(s)
        cert = certify_threshold(s, agree, grid, ALPHA, DELTA)
        if cert.passed:
            promoted += 1
            coverage.append(cert.chosen.coverage)
            bad_fst += world.ta(cert.tau) < ALPHA
        # Naive: the loosest threshold whose own CP lower bound clears alpha, anywhere in the sweep.
        handled = s.astype(np.float32)[None, :] >= grid[:, None]
        nh, na = handled.sum(1), (handled & agree[None, :]).sum(1)
        lower = np.where(na > 0, stats.beta.ppf(DELTA, np.maximum(na, 1), nh - na + 1), 0.0)
        ok = np.flatnonzero(lower >= ALPHA)
        if len(ok):
            bad_naive += world.ta(grid[ok[-1]]) < ALPHA
    return bad_fst / reps, bad_naive / reps, promoted / reps, float(np.mean(coverage or [0.0]))


@pytest.mark.parametrize("world", [SMOOTH, EDGE, FLAT], ids=lambda w: w.name)
def test_closed_form_ta_matches_monte_carlo(world):
    s = np.random.default_rng(4).random(1_000_000)
    agree = np.random.default_rng(5).random(1_000_000) < world.g(s)
    for t in (0.0, 0.3, 0.6, 0.8, 0.95):
        assert np.mean(agree[s >= t]) == pytest.approx(world.ta(t), abs=0.004)


def _check_guarantee(reps: int, seed: int) -> dict:
    tol = _tolerance(DELTA, reps)
    out = {}
    for world in (SMOOTH, EDGE, FLAT):
        fst, naive, promoted, cov = _simulate(world, reps, seed)
        out[world.name] = (fst, naive, promoted, cov)
        assert fst <= DELTA + tol, (world.name, fst)
        if world is not SMOOTH:  # a wide band just below alpha: the naive sweep over-promotes
            assert naive > DELTA + tol, (world.name, naive)
    # Power where there is something to certify (TA(t) = 0.8 + 0.2 t crosses 0.9 at 50% coverage).
    assert out["smooth"][2] >= 0.9 and out["smooth"][3] >= 0.3
    return out


def test_fixed_sequence_guarantee_holds_where_the_naive_sweep_fails():
    _check_guarantee(reps=1500, seed=6)


@pytest.mark.slow
def test_fixed_sequence_guarantee_large_simulation():
    print(_check_guarantee(reps=20000, seed=7))


# ---------------------------------------------------------------- planned start and family choice
#
# Two families (independent score functions, same world).  tracec plans on a labelled
# validation split: the walk starts at the step with the highest predicted bound, and only the
# family with the highest predicted coverage is certified, at the full delta.  The trap does the
# same planning on the calibration split itself.


def _counts(s: np.ndarray, agree: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    handled = s.astype(np.float32)[None, :] >= grid[:, None]
    return handled.sum(1), (handled & agree[None, :]).sum(1)


def _plan(grid, s, agree, n_cal):
    nh, na = _counts(s, agree, grid)
    lower = predicted_lower(nh, na, len(s), n_cal, DELTA)
    return planned_start(lower), planned_coverage(lower, nh, len(s), ALPHA)


def _simulate_planned(world: World, reps: int, seed: int, n: int = 1500):
    rng = np.random.default_rng(seed)
    bad = bad_trap = promoted = 0
    for _ in range(reps):
        grid = threshold_grid(rng.random(n), n, min_accept=2 * 22)
        draws = []
        for _family in range(2):
            s_val, s_cal = rng.random(n), rng.random(n)
            draws.append((s_val, rng.random(n) < world.g(s_val), s_cal, rng.random(n) < world.g(s_cal)))
        for trap in (False, True):
            plans = [_plan(grid, *(d[2:] if trap else d[:2]), n) for d in draws]
            f = int(np.argmax([cov for _, cov in plans]))
            start = plans[f][0]
            nh, na = _counts(draws[f][2], draws[f][3], grid[start:])
            cert = fixed_sequence(nh, na, n, grid[start:], ALPHA, DELTA)
            if cert.passed:
                promoted += not trap
                violated = world.ta(cert.tau) < ALPHA
                bad_trap += trap and violated
                bad += (not trap) and violated
    return bad / reps, bad_trap / reps, promoted / reps


def test_planning_on_validation_keeps_the_guarantee_planning_on_calibration_breaks_it():
    reps = 1000
    tol = _tolerance(DELTA, reps)
    for world in (SMOOTH, EDGE, FLAT):
        fst, trap, promoted = _simulate_planned(world, reps, seed=8)
        assert fst <= DELTA + tol, (world.name, fst)
        if world is not SMOOTH:  # a wide band just below alpha: choosing on calibration cheats
            assert trap > DELTA + tol, (world.name, trap)
        if world is SMOOTH:
            assert promoted >= 0.9, promoted


def test_planned_start_skips_a_strict_step_that_validation_predicts_will_fail():
    # validation: the strictest step has 3 disagreements in 60 rows, the next ones are clean
    nh = np.array([60, 200, 400, 800])
    na = np.array([57, 197, 394, 740])
    lower = predicted_lower(nh, na, 1000, 1000, 0.05)
    assert planned_start(lower) == 2 and lower[2] == max(lower)
    assert lower[0] == pytest.approx(cp_lower(57, 60, 0.05), abs=1e-9)
    assert planned_coverage(lower, nh, 1000, 0.95) == 0.4   # steps 2 passes, step 3 does not
    assert planned_coverage(lower, nh, 1000, 0.99) == 0.0   # even the best step fails
    # scaled to a calibration split half the size, the bounds widen
    assert np.all(predicted_lower(nh, na, 1000, 500, 0.05)[1:] < lower[1:])


# ---------------------------------------------------------------- oracle: MAPIE's Learn-then-Test


def test_agrees_with_mapie_fixed_sequence():
    """MAPIE 1.6 BinaryClassificationController, risk=precision, fwer_method='fixed_sequence'.

    Precision of "predict 1 when score >= tau" against agree is exactly TA.  MAPIE's binary
    p-value is min(Hoeffding, Bentkus) with Bentkus = P(Bin(n, 1 - alpha) <= ceil(n * risk)),
    our exact tail whenever the ceil is exact; but ``n * (1 - k/n)`` is often a hair above
    the integer n - k in floating point, so MAPIE then counts one more disagreement and its
    p-value is larger (more conservative; the Hoeffding term, always >= the exact tail, then
    sometimes wins the min).  MAPIE also orders the walk by the empirical risk direction on
    the calibration data; our grid fixes the order in advance (strict -> loose), which MAPIE
    keeps here.  Agreed property: MAPIE's p-values are >= ours and equal on most steps; its valid
    thresholds are a prefix of ours, identical unless it stopped at a step where ours passed
    and its inflated p-value did not; when identical, the chosen tau is the same.
    """
    mapie_rc = pytest.importorskip("mapie.risk_control")
    from mapie.risk_control.fwer_control import control_fwer
    identical = 0
    for seed in range(8):
        rng = np.random.default_rng(100 + seed)
        grid = threshold_grid(rng.random(2000), 3000)
        s = rng.random(3000).astype(np.float32)
        agree = rng.random(3000) < 0.55 + 0.45 * s
        alpha, delta = (0.85, 0.9, 0.93, 0.95)[seed % 4], 0.1
        ours = certify_threshold(s, agree, grid, alpha, delta)
        ctl = mapie_rc.BinaryClassificationController(
            predict_function=lambda X: np.column_stack([1 - X, X]), risk="precision",
            target_level=alpha, confidence_level=1 - delta,
            list_predict_params=grid.astype(np.float64), fwer_method="fixed_sequence")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "risk not monotonic" and "nothing valid" notices
            ctl.calibrate(s.astype(np.float64), agree.astype(int))
        taus, nh, na = step_counts(s, agree, grid)
        exact = np.array([binom_sf_pvalue(int(k), int(n), alpha) for k, n in zip(na, nh)])
        theirs = ctl.p_values[:, 0]
        assert np.all(theirs >= exact * (1 - 1e-9))
        assert np.mean(np.isclose(theirs, exact, rtol=1e-9, atol=0)) >= 0.5
        # MAPIE's own fixed-sequence walk on our p-values gives exactly our passing steps.
        passed = [st.tau for st in ours.steps if st.p_value <= delta]
        np.testing.assert_array_equal(taus[control_fwer(exact, delta, "fixed_sequence")], passed)
        valid = np.asarray(ctl.valid_predict_params, dtype=np.float32)
        np.testing.assert_array_equal(valid, np.asarray(passed[:len(valid)], dtype=np.float32))
        if len(valid) == len(passed):
            identical += 1
            assert (ours.tau is None) == (ctl.best_predict_param is None)
            if ours.tau is not None:
                assert np.float32(ctl.best_predict_param) == ours.tau
        else:
            j = len(valid)
            assert exact[j] <= delta < theirs[j]
    assert identical >= 4


# ---------------------------------------------------------------- the start by pass probability
#
# plan_family (the production path) starts the walk at the step most likely to pass on
# calibration, with the validation uncertainty of each step's TA taken into account
# (tracec.planning.pass_probability).  Small splits are where the start matters: 240 rows is
# the demo's calibration split (1,600 traces).


def _band(c0: float) -> World:
    """Agreement 1 on the top c0 of scores, alpha - 0.005 below: TA >= alpha only while
    coverage <= c0 * (1 - B) / (alpha - B), i.e. 0.1, 0.2, 0.4, 0.8 for c0 = 0.005 ... 0.04;
    beyond that every step is a null just below alpha."""
    return World(f"band{c0}", lambda s: np.where(s >= 1 - c0, 1.0, B),
                 lambda t: (c0 + B * (1 - c0 - t)) if t < 1 - c0 else 1.0 - t)


PLATEAU = World("plateau", lambda s: np.where(s >= 0.3, 0.955, 0.6),    # TA 0.955 down to 70 %
                lambda t: 0.955 * (1 - t) if t >= 0.3 else 0.955 * 0.7 + 0.6 * (0.3 - t))


def _simulate_production_plan(world: World, reps: int, seed: int, n: int):
    from tracec.policy import Scored, certify_plan, l2d_decide, plan_family
    rng = np.random.default_rng(seed)
    bad = promoted = 0
    coverage = 0.0
    zeros = np.zeros(n, dtype=np.int64)
    for _ in range(reps):
        s_val, s_cal = rng.random(n), rng.random(n)
        a_val, a_cal = rng.random(n) < world.g(s_val), rng.random(n) < world.g(s_cal)
        val = Scored((~a_val).astype(np.int64), s_val.astype(np.float32))
        cal = Scored((~a_cal).astype(np.int64), s_cal.astype(np.float32))
        plan = plan_family("l2d", (), [val], zeros, n, ALPHA, DELTA, min_accept=44)
        cert, _ = certify_plan(plan, l2d_decide(cal), zeros, ALPHA, DELTA)
        if cert.passed:
            promoted += 1
            coverage += cert.chosen.coverage
            bad += world.ta(cert.tau) < ALPHA
    return bad / reps, promoted / reps, coverage / reps


@pytest.mark.parametrize("n", [240, 1000])
def test_planned_start_keeps_the_guarantee_with_ta_just_below_alpha_over_a_wide_band(n):
    reps = 300
    tol = _tolerance(DELTA, reps)
    for world in (FLAT, EDGE, _band(0.005), _band(0.02), _band(0.04), SMOOTH, PLATEAU):
        bad, promoted, coverage = _simulate_production_plan(world, reps, seed=9 + n, n=n)
        assert bad <= DELTA + tol, (world.name, n, bad)
        if world is PLATEAU:  # TA 0.955 over 70 % of traffic: the walk opens and gets far
            assert promoted >= (0.6 if n == 240 else 0.95) and coverage >= 0.4, (promoted, coverage)


@pytest.mark.slow
def test_planned_start_guarantee_large_simulation():
    for n in (240, 1000):
        for world in (FLAT, EDGE, _band(0.005), _band(0.02), _band(0.04), SMOOTH, PLATEAU):
            bad, promoted, coverage = _simulate_production_plan(world, 3000, seed=10 + n, n=n)
            print(n, world.name, bad, promoted, coverage)
            assert bad <= DELTA + _tolerance(DELTA, 3000), (world.name, n, bad)


def test_pass_probability_weighs_the_validation_evidence():
    from tracec.planning import pass_probability
    # the same 96 % agreement on 50 and on 400 validation rows, 100 vs 800 calibration rows
    pp = pass_probability(np.array([50, 400]), np.array([48, 384]), 1000, 2000, 0.9, 0.05)
    assert 0.0 < pp[0] < pp[1] <= 1.0
    # far below alpha: (almost) no chance; nothing handled: no chance
    assert pass_probability(np.array([400, 0]), np.array([300, 0]), 1000, 1000, 0.9, 0.05).max() < 1e-6
    # against Monte Carlo: TA ~ Beta(k + 1, n - k + 1), k_cal ~ Bin(m, TA), pass iff p <= delta
    rng = np.random.default_rng(11)
    ta = rng.beta(58 + 1, 2 + 1, 200_000)
    k = rng.binomial(120, ta)
    p = np.array([binom_sf_pvalue(int(x), 120, 0.9) for x in range(121)])[k]
    want = float(np.mean(p <= 0.05))
    got = pass_probability(np.array([60]), np.array([58]), 500, 1000, 0.9, 0.05)[0]
    assert got == pytest.approx(want, abs=0.005)


def test_betabinom_tail_matches_scipy_on_the_planners_range():
    from scipy import stats
    from tracec.planning import betabinom_tail
    rng = np.random.default_rng(5)
    n = rng.integers(0, 3000, 400)
    k = (rng.random(400) * (n + 3)).astype(np.int64)  # 0 .. n + 2: whole, partial and empty tails
    a, b = rng.random(400) * 800 + 1.0, rng.random(400) * 80 + 1.0
    want = stats.betabinom.sf(k - 1, n, a, b)
    assert np.allclose(betabinom_tail(k, n, a, b), want, rtol=0, atol=1e-10)
    assert np.allclose(betabinom_tail(k, n, a, b, cells=500), want, rtol=0, atol=1e-10)  # chunked

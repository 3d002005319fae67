"""tracec.gate: the shadow parity gate refuses on evidence against the policy, not on chance."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from tracec.calibration import cp_lower, cp_upper
from tracec.errors import ParameterError
from tracec.gate import shadow_gate

ALPHA, DELTA = 0.90, 0.05


def _shadow(rng, n_total: int, coverage: float, ta: float):
    handled = rng.random(n_total) < coverage
    agree = rng.random(n_total) < ta
    return handled, agree


def _tolerance(p: float, reps: int) -> float:
    # 3 binomial standard errors of a share estimated from `reps` independent draws.
    return 3.0 * math.sqrt(p * (1 - p) / reps)


@pytest.mark.parametrize("true_ta", [ALPHA, ALPHA + 0.002])
def test_valid_policy_at_the_edge_is_refused_at_most_delta_of_the_time(true_ta):
    rng = np.random.default_rng(11)
    reps, refused, trap = 3000, 0, 0
    for _ in range(reps):
        handled, agree = _shadow(rng, 2000, 0.4, true_ta)
        result = shadow_gate(handled, agree, ALPHA, DELTA)
        refused += not result.passed
        trap += result.ta_lower < ALPHA  # the re-test "CP lower bound >= alpha" on shadow
    assert refused / reps <= DELTA + _tolerance(DELTA, reps)
    # The trap this design avoids: re-testing the edge policy throws it away about half the time.
    assert trap / reps > 0.4


def test_clearly_bad_policy_is_refused_with_high_probability():
    rng = np.random.default_rng(12)
    reps, refused = 400, 0
    for _ in range(reps):
        handled, agree = _shadow(rng, 4000, 0.5, ALPHA - 0.05)
        result = shadow_gate(handled, agree, ALPHA, DELTA)
        if not result.passed:
            refused += 1
            (reason,) = result.reasons
            shown = float(re.search(r"upper bound ([0-9.]+)", reason).group(1))
            assert shown < ALPHA and shown == pytest.approx(result.ta_upper, abs=5e-4)
    assert refused / reps >= 0.99


def test_low_coverage_is_refused_even_with_perfect_agreement():
    handled = np.zeros(1000, bool)
    handled[:40] = True
    result = shadow_gate(handled, np.ones(1000, bool), ALPHA, DELTA)
    assert not result.passed and result.coverage == 0.04
    (reason,) = result.reasons
    assert "coverage 4.0%" in reason and "40 of 1,000" in reason and "5.0%" in reason
    handled[:60] = True
    assert shadow_gate(handled, np.ones(1000, bool), ALPHA, DELTA).passed
    assert shadow_gate(handled, np.ones(1000, bool), ALPHA, DELTA, min_coverage=0.1).passed is False


def test_nothing_handled_is_refused():
    result = shadow_gate(np.zeros(500, bool), np.ones(500, bool), ALPHA, DELTA)
    assert not result.passed and result.n_handled == 0 and result.ta == 0.0
    assert (result.ta_lower, result.ta_upper) == (0.0, 1.0)
    assert result.reasons and "none of the 500 shadow rows" in result.reasons[0]


def test_ta_refusal_explains_itself_with_the_measured_numbers():
    rng = np.random.default_rng(13)
    handled, agree = _shadow(rng, 3000, 0.45, 0.84)
    r = shadow_gate(handled, agree.astype(int), ALPHA, DELTA)
    assert not r.passed
    assert r.n_agree == int(np.sum(handled & agree)) and r.n_handled == int(handled.sum())
    assert r.ta_lower == cp_lower(r.n_agree, r.n_handled, DELTA)
    assert r.ta_upper == cp_upper(r.n_agree, r.n_handled, DELTA)
    (reason,) = r.reasons
    assert reason == (f"shadow TA {r.ta:.3f} on {r.n_handled:,} handled rows is below alpha=0.90 "
                      f"with confidence 95% (upper bound {r.ta_upper:.3f})")


def test_upper_bound_is_never_shown_rounded_up_to_alpha():
    # Find counts whose upper bound is just below alpha: 3 decimals would print "0.900".
    for n in range(1000, 3000):
        k = int(0.88 * n)
        while cp_upper(k + 1, n, DELTA) < ALPHA:
            k += 1
        if cp_upper(k, n, DELTA) < ALPHA <= round(cp_upper(k, n, DELTA), 3):
            break
    else:
        pytest.fail("no counts with an upper bound in [0.8995, 0.9)")
    handled = np.ones(n, bool)
    agree = np.arange(n) < k
    (reason,) = shadow_gate(handled, agree, ALPHA, DELTA).reasons
    shown = float(re.search(r"upper bound ([0-9.]+)", reason).group(1))
    assert shown < ALPHA


@pytest.mark.parametrize("kwargs", [
    dict(alpha=1.0), dict(alpha=0.0), dict(delta=1.2), dict(delta=True), dict(min_coverage=1.5),
    dict(agree=np.ones(9, bool)), dict(agree=np.full(10, 2)), dict(handled=np.array([], bool)),
    dict(handled=np.full(10, 0.5)),
])
def test_bad_parameters_raise_parameter_error(kwargs):
    args = dict(handled=np.ones(10, bool), agree=np.ones(10, bool), alpha=ALPHA, delta=DELTA)
    args.update(kwargs)
    with pytest.raises(ParameterError, match="shadow_gate must be"):
        shadow_gate(**args)

"""The gap decomposition's "valid oracle" (benchmarks/cert_oracle.py): its pass probability
agrees with a simulation of the Clopper-Pearson test tracec runs, and more calibration rows
never certify less."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.cert_oracle import k_min, pass_probability, ta_curve, valid_oracle
from tracec.calibration import cp_lower


@pytest.mark.parametrize("n,alpha", [(30, 0.8), (200, 0.9), (1000, 0.95)])
def test_k_min_is_the_smallest_count_whose_bound_clears_alpha(n, alpha):
    k = k_min(n, alpha, 0.05)
    assert cp_lower(k, n, 0.05) >= alpha
    assert k == 0 or cp_lower(k - 1, n, 0.05) < alpha


def test_pass_probability_matches_a_simulation_of_the_test():
    rng = np.random.default_rng(0)
    for n, p, alpha in [(150, 0.93, 0.9), (600, 0.87, 0.85)]:
        draws = rng.binomial(n, p, size=4000)
        simulated = np.mean([cp_lower(int(k), n, 0.05) >= alpha for k in draws])
        assert pass_probability(n, p, alpha, 0.05) == pytest.approx(simulated, abs=0.03)


def _curve(n: int = 5000, seed: int = 1):
    """Scores whose agreement falls from 1.0 to 0.6 as the threshold loosens."""
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    return score, rng.random(n) < 0.6 + 0.4 * score


def test_oracle_is_monotone_in_calibration_size_and_below_the_hindsight_point():
    score, correct = _curve()
    cov, ta = ta_curve(score, correct)
    hindsight = cov[ta >= 0.9].max()
    found = [valid_oracle(score, correct, 0.9, n)["coverage"] for n in (300, 600, 1500, 3000)]
    assert all(a <= b for a, b in zip(found, found[1:])), found
    assert 0 < found[0] < found[-1] <= hindsight
    chosen = valid_oracle(score, correct, 0.9, 600)
    assert chosen["ta"] >= 0.9 and chosen["pass_probability"] >= 0.5

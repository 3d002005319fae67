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


def test_idealised_bound_on_real_traces_is_under_hindsight_and_certifies_alpha():
    """benchmarks.ideal_oracle on 1,000 Banking77 traces (real LLM teacher): the bound never
    exceeds the hindsight threshold's coverage (it is a point of the same curve that must also
    pass a finite-sample test) and, where it certifies, its true TA clears alpha."""
    from benchmarks.ideal_oracle import bound
    from conftest import data_path
    e = bound(data_path(), "banking77_llm", 1000, (0.8, 0.9), seed=0)
    assert e["n"] == 1000 and [r["alpha"] for r in e["rows"]] == [0.8, 0.9]
    for r in e["rows"]:
        assert 0.0 <= r["ideal"] <= r["hindsight"] <= 1.0
        assert r["ideal"] == 0.0 or r["ideal_ta"] >= r["alpha"]
    assert any(r["ideal"] > 0 for r in e["rows"])  # not vacuous

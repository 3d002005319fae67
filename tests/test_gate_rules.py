"""tracec.gate_rules: the shadow gate re-checks the rules' floors and cap, at Bonferroni levels."""

from __future__ import annotations

import math

import numpy as np

from tracec.gate import shadow_gate
from tracec.gate_rules import gate_with_rules
from tracec.measure import Routed
from tracec.rules import RoutingRules

LABELS = ("a", "b", "c")
ALPHA, DELTA = 0.85, 0.1


def _shadow(rng, n: int, coverage: float, ta_by_label=(0.9, 0.9, 0.9), mix=(0.5, 0.3, 0.2)):
    label = rng.choice(3, size=n, p=mix)
    agree = rng.random(n) < np.asarray(ta_by_label)[label]
    teacher = np.where(agree, label, (label + 1) % 3)
    return Routed(label.astype(np.int64), rng.random(n).astype(np.float32),
                  rng.random(n) < coverage, teacher.astype(np.int64))


def test_without_rules_it_is_the_plain_gate():
    rng = np.random.default_rng(0)
    for rules in (None, RoutingRules(), RoutingRules(never_handle=["c"])):
        s = _shadow(rng, 800, 0.5, (0.8, 0.9, 0.9))
        plain = shadow_gate(s.handled, s.label == s.teacher, ALPHA, DELTA)
        assert gate_with_rules(s, ALPHA, DELTA, 0.05, rules, LABELS) == plain


def test_a_label_credibly_below_its_floor_is_refused_and_named():
    rng = np.random.default_rng(1)
    s = _shadow(rng, 3000, 0.6, ta_by_label=(0.97, 0.70, 0.95))  # overall about 0.90
    rules = RoutingRules(min_alpha={"b": 0.85})
    assert shadow_gate(s.handled, s.label == s.teacher, ALPHA, DELTA).passed
    result = gate_with_rules(s, ALPHA, DELTA, 0.05, rules, LABELS)
    assert not result.passed
    (reason,) = result.reasons
    assert reason.startswith("min_alpha.b: shadow TA 0.7") and "floor 0.85" in reason
    assert "confidence 95%" in reason  # delta 0.1 split over the overall test and one floor


def test_coverage_credibly_above_the_cap_is_refused():
    rng = np.random.default_rng(2)
    s = _shadow(rng, 2000, 0.7)
    rules = RoutingRules(max_handled_share=0.6)
    (reason,) = gate_with_rules(s, ALPHA, DELTA, 0.05, rules, LABELS).reasons
    assert reason.startswith("max_handled_share: shadow coverage 7") and "cap 60.0%" in reason
    assert gate_with_rules(_shadow(rng, 2000, 0.6), ALPHA, DELTA, 0.05, rules, LABELS).passed


def test_a_policy_meeting_every_rule_at_its_edge_is_refused_at_most_delta_of_the_time():
    rng = np.random.default_rng(3)
    rules = RoutingRules(min_alpha={"b": 0.88, "c": 0.85}, max_handled_share=0.5)
    reps, refused = 2000, 0
    for _ in range(reps):  # overall TA 0.5*.85 + .3*.88 + .2*.85 = 0.859 >= alpha; floors at the edge
        s = _shadow(rng, 1500, 0.5, ta_by_label=(0.85, 0.88, 0.85))
        refused += not gate_with_rules(s, ALPHA, DELTA, 0.05, rules, LABELS).passed
    assert refused / reps <= DELTA + 3 * math.sqrt(DELTA * (1 - DELTA) / reps)
    assert refused > 0  # the tests do run: at the edge some refusals are chance


def test_a_refusal_names_the_level_the_first_step_was_tested_at():
    from types import SimpleNamespace

    from tracec.calibration import Certification
    from tracec.emit import _level
    from tracec.rules import RuledCertification
    chosen = SimpleNamespace(delta_per_family=0.05)
    split = RuledCertification(False, None, (), None, 0.85, 0.05, "alpha", 0.05 / 3)
    unsplit = RuledCertification(False, None, (), None, 0.85, 0.05, "alpha", 0.05)  # never_handle only
    plain = Certification(passed=False, tau=None, steps=(), chosen=None, alpha=0.85, delta=0.05)
    assert _level(SimpleNamespace(certification=split), chosen) == "delta/(1+m) 0.0167"
    assert _level(SimpleNamespace(certification=unsplit), chosen) == "delta 0.05"
    assert _level(SimpleNamespace(certification=plain), chosen) == "delta 0.05"

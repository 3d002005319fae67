"""The shadow gate under routing rules: the floors and the cap re-checked on shadow rows.

Without rules this is ``gate.shadow_gate`` unchanged.  With ``min_alpha`` floors on m labels
(and a ``max_handled_share`` cap, counted as one more test), every test runs at
``delta / (1 + m [+ 1])`` (Bonferroni, as the certification's walk): a policy that meets all
its rules is refused with probability <= delta in total.  Each test refuses only on evidence
against the rule, as the overall one does (docs/guarantee.md, "Routing rules"):

* floor on label l: the one-sided upper bound on shadow TA of rows *predicted* l is below
  alpha_l (no handled row predicted l is no evidence: not refused here, the walk tested it);
* cap c: the one-sided lower bound on shadow coverage is above c.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from tracec.calibration import cp_lower, cp_upper
from tracec.gate import ShadowResult, _below, _level, shadow_gate
from tracec.measure import Routed


def gate_with_rules(shadow: Routed, alpha: float, delta: float, min_coverage: float,
                    rules, labels: Sequence[str]) -> ShadowResult:
    floors = dict(rules.min_alpha) if rules is not None else {}
    cap: Optional[float] = None if rules is None else rules.max_handled_share
    d = delta / (1 + len(floors) + (cap is not None))
    agree = shadow.label == shadow.teacher
    result = shadow_gate(shadow.handled, agree, alpha, d, min_coverage)
    if d == delta:
        return result
    conf = f"{100 * (1 - d):.4g}%"
    index = {name: i for i, name in enumerate(labels)}
    reasons = list(result.reasons)
    for name in sorted(floors):
        h = shadow.handled & (shadow.label == index[name])
        n_h, n_a = int(h.sum()), int((h & agree).sum())
        upper = cp_upper(n_a, n_h, d)
        if n_h and upper < floors[name]:
            reasons.append(f"min_alpha.{name}: shadow TA {n_a / n_h:.3f} on the {n_h:,} handled "
                           f"rows predicted '{name}' is below its floor {_level(floors[name])} "
                           f"with confidence {conf} (upper bound {_below(upper, floors[name])})")
    if cap is not None:
        n_total, n_handled = len(shadow.handled), int(shadow.handled.sum())
        lower = cp_lower(n_handled, n_total, d)
        if lower > cap:
            reasons.append(f"max_handled_share: shadow coverage {n_handled / n_total:.1%} "
                           f"({n_handled:,} of {n_total:,} rows) is above the cap {cap:.1%} "
                           f"with confidence {conf} (lower bound {lower:.3f})")
    return replace(result, passed=not reasons, reasons=tuple(reasons))

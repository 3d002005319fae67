"""Cost projection: LLM calls and money per day and year, with and without the bundle.

Coverage is the shadow split's (the gate's untouched data); a closed gate
handles nothing, so it saves nothing.  The conservative projection uses the
one-sided (1 - delta) Clopper-Pearson lower bound of shadow coverage.
Without cost or volume inputs, only the per-1,000-calls projection is filled.
"""

from __future__ import annotations

from typing import Optional

from tracec.artifacts.rows import CostInputs
from tracec.calibration import cp_lower
from tracec.manifest import dec

DAYS_PER_YEAR = 365


def _money(x: Optional[float]) -> Optional[str]:
    return None if x is None else dec(x, 4)


def projection(coverage: float, cost: CostInputs) -> dict:
    per_1k = 1000.0 * (1.0 - coverage)
    volume, price = cost.daily_volume, cost.teacher_cost_per_1k
    calls = None if volume is None else volume * (1.0 - coverage)
    per_day = None if calls is None or price is None else calls / 1000.0 * price
    full = None if volume is None or price is None else volume / 1000.0 * price
    saved = None if per_day is None else full - per_day
    return {"coverage": dec(coverage), "llm_calls_per_1k": dec(per_1k, 2),
            "calls_avoided_per_1k": dec(1000.0 - per_1k, 2),
            "llm_calls_per_day": None if calls is None else int(round(calls)),
            "cost_per_day": _money(per_day),
            "cost_per_year": _money(None if per_day is None else per_day * DAYS_PER_YEAR),
            "savings_per_day": _money(saved),
            "savings_per_year": _money(None if saved is None else saved * DAYS_PER_YEAR)}


def build_cost(manifest: dict, cost: CostInputs) -> dict:
    gate = "open" if (manifest.get("policy") or {}).get("gate") == "open" else "closed"
    shadow = manifest.get("shadow") or {}
    n_total, n_handled = int(shadow.get("n_total") or 0), int(shadow.get("n_handled") or 0)
    delta = float((manifest.get("policy") or {}).get("delta") or 0.05)
    if gate == "open" and n_total:
        coverage = n_handled / n_total
        lower = cp_lower(n_handled, n_total, delta)
        source = (f"shadow split: {n_handled:,} of {n_total:,} rows handled; conservative = "
                  f"one-sided {1 - delta:.0%} lower bound")
    else:
        coverage = lower = 0.0
        source = ("gate closed: the bundle defers every input" if gate == "closed"
                  else "no shadow rows were measured")
    missing = [name for name, v in (("--teacher-cost-per-1k", cost.teacher_cost_per_1k),
                                    ("--daily-volume", cost.daily_volume)) if v is None]
    note = ("Projection from shadow coverage; actual savings follow production traffic, which may "
            "differ from the traces.")
    if missing:
        note += f" Pass {' and '.join(missing)} to compile for per-day and per-year figures."
    return {"artifact": "cost", "version": "1", "gate": gate,
            "teacher_cost_per_1k": _money(cost.teacher_cost_per_1k),
            "daily_volume": None if cost.daily_volume is None else int(cost.daily_volume),
            "days_per_year": DAYS_PER_YEAR, "coverage_source": source,
            "without_bundle": projection(0.0, cost), "with_bundle": projection(coverage, cost),
            "with_bundle_conservative": projection(lower, cost), "note": note}

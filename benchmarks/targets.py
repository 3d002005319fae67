"""The targets table: each row a target, the measured value, and met / not met / n/a."""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmarks.validity import clear_violations


@dataclass(frozen=True)
class TargetRow:
    target: str
    measured: str
    met: bool | None  # None: could not be measured in this run


def _num(x) -> float:
    return math.nan if x is None else float(x)


def alpha_check(c: dict, t: dict | None, alpha: float) -> tuple[bool | None, str]:
    """One task at one alpha: tracec coverage >= TRACER's, tracec test TA >= alpha (vacuous
    when nothing is handled), and coverage >= 0.9 x oracle limit where that limit is < 1."""
    if "coverage" not in c:
        return None, "tracec not measured"
    cov, ta, oracle = _num(c["coverage"]), _num(c.get("teacher_agreement")), _num(c.get("oracle_limit"))
    fails = []
    if t is not None and "coverage" in t and cov < _num(t["coverage"]):
        t_ta = _num(t.get("teacher_agreement"))
        fails.append(f"coverage {cov:.3f} < TRACER {_num(t['coverage']):.3f}"
                     + (f" (whose TA {t_ta:.3f} < {alpha:g})" if t_ta < alpha else "")
                     + (f" (global: tracec's OOD gate defers the other {1 - cov:.1%}; TRACER's "
                        "numbers exclude its own OOD gate)" if c.get("family") == "global" else ""))
    if not math.isnan(ta) and ta < alpha:
        fails.append(f"TA {ta:.3f} < {alpha:g}")
    if not math.isnan(oracle) and oracle < 1 and cov < 0.9 * oracle:
        fails.append(f"coverage {cov:.3f} < 0.9 x oracle {oracle:.3f}")
    return not fails, "; ".join(fails)


def refusal_row(name: str, task: dict, alphas) -> TargetRow:
    """A negative control: the right answer is refusing (nothing handled); 0.9 x oracle does not
    apply.  TRACER's coverage and TA are shown beside it."""
    gates, notes = [], []
    for alpha in alphas:
        key = format(float(alpha), "g")
        c = task["tracec"]["alphas"].get(key, {})
        gates.append(c.get("gate"))
        t = (task["tracer"].get("alphas", {}) if isinstance(task["tracer"], dict) else {}).get(key)
        if t and "coverage" in t:
            ta = _num(t.get("teacher_agreement"))
            notes.append(f"TRACER at {key}: coverage {_num(t['coverage']):.3f}, "
                         + ("nothing handled" if math.isnan(ta) else f"TA {ta:.3f}"))
    refused = sum(g == "closed" for g in gates)
    met = None if None in gates else refused == len(gates)
    text = f"tracec refused at {refused}/{len(gates)} alphas" + (f" ({'; '.join(notes)})" if notes else "")
    return TargetRow(f"{name} (negative control): the gate refuses (0.9 x oracle does not apply)",
                     text, met)


def oracle_gaps(quality: dict) -> list[str]:
    """One line per (task, alpha) where tracec misses 0.9 x the oracle limit, with the hindsight
    baseline beside it: when a threshold chosen on the test set itself also misses, no
    confidence threshold on this surrogate reaches the target, and the gap is the surrogate's
    (its errors are not separable from its confidence), not the calibration's."""
    lines = []
    for name, task in quality["tasks"].items():
        if task.get("kind") == "negative control":
            continue
        base = (task.get("baseline") or {}).get("alphas", {}) if isinstance(task.get("baseline"), dict) else {}
        for alpha in quality["alphas"]:
            key = format(float(alpha), "g")
            c = task["tracec"]["alphas"].get(key, {})
            cov, oracle = _num(c.get("coverage")), _num(c.get("oracle_limit"))
            if math.isnan(cov) or math.isnan(oracle) or oracle >= 1 or cov >= 0.9 * oracle:
                continue
            b = _num((base.get(key) or {}).get("coverage"))
            verdict = ("also below" if b < 0.9 * oracle else "reaches it") if not math.isnan(b) else "n/a"
            lines.append(f"{name} at alpha {key}: tracec {cov:.1%} vs 0.9 x oracle {0.9 * oracle:.1%}; "
                         f"hindsight baseline {b:.1%} ({verdict})")
    return lines


def quality_rows(quality: dict) -> list[TargetRow]:
    rows = []
    for name, task in quality["tasks"].items():
        if task.get("kind") == "negative control":
            rows.append(refusal_row(name, task, quality["alphas"]))
            continue
        verdicts, notes = [], []
        for alpha in quality["alphas"]:
            key = format(float(alpha), "g")
            c = task["tracec"]["alphas"].get(key, {})
            t = task["tracer"].get("alphas", {}).get(key) if isinstance(task["tracer"], dict) else None
            ok, why = alpha_check(c, t, float(alpha))
            verdicts.append(ok)
            if why:
                notes.append(f"alpha {key}: {why}")
        measured = [v for v in verdicts if v is not None]
        met = None if not measured else all(measured) and len(measured) == len(verdicts)
        text = f"{sum(measured)}/{len(verdicts)} alphas" + (f" ({'; '.join(notes)})" if notes else "")
        if not isinstance(task["tracer"], dict) or "alphas" not in task["tracer"]:
            text += " [TRACER not measured]"
            met = None if met else met  # the comparison half is missing: no "met"
        kind = task.get("kind", "main")
        label = name if kind == "main" else f"{name} ({kind})"
        rows.append(TargetRow(f"{label}: coverage >= TRACER's, test TA >= alpha, "
                              f"coverage >= 0.9 x oracle limit (where < 1)", text, met))
    return rows


def validity_rows(validity: dict | None, delta: float) -> list[TargetRow]:
    if not validity:
        return [TargetRow(f"violation share <= delta ({delta:g})", "not measured", None)]
    rows = []
    for key, s in validity["tracec"].items():
        if not s["runs"]:
            rows.append(TargetRow(f"violation share <= {delta:g} at alpha {key}", "no runs", None))
            continue
        tr = validity["tracer"].get(key, {})
        n_test, a = validity.get("n_test", 0), float(key)
        other = (f"; TRACER {tr['violations']}/{tr['runs']} = {tr['violation_share']:.3f} "
                 f"({clear_violations(tr.get('per_run', []), a, n_test)} clear)"
                 if tr.get("runs") else "; TRACER not run")
        rows.append(TargetRow(f"violation share <= {delta:g} at alpha {key} (tracec)",
                              f"{s['violations']}/{s['runs']} = {s['violation_share']:.3f} "
                              f"({clear_violations(s.get('per_run', []), a, n_test)} clear, "
                              f"i.e. beyond test-sample noise){other}",
                              s["violation_share"] <= delta))
    return rows


def compile_row(quality: dict) -> TargetRow:
    task = quality["tasks"].get(quality.get("timed_task", ""), {})
    c = _num((task.get("tracec") or {}).get("compile_wall_s"))
    tracer = task.get("tracer") or {}
    t = _num(tracer.get("fit_seconds")) if not tracer.get("memo", True) else math.nan
    name = "compile time <= 0.25 x TRACER fit time on Banking77 and < 60 s"
    if math.isnan(c) or math.isnan(t):
        return TargetRow(name, f"tracec {c:.1f} s, TRACER {t:.1f} s", None)
    return TargetRow(name, f"tracec {c:.1f} s vs TRACER {t:.1f} s (ratio {c / t:.3f})",
                     c <= 0.25 * t and c < 60)


def runtime_rows(runtime: dict | None) -> list[TargetRow]:
    if not runtime or "tracec" not in runtime or "p50" not in runtime["tracec"]:
        return [TargetRow("runtime targets", "not measured", None)]
    c = runtime["tracec"]
    tracer_p50 = [r["p50"] for k, r in runtime.items() if k.startswith("tracer") and "p50" in r]
    fastest = min(tracer_p50) if tracer_p50 else math.nan
    speedup = fastest / c["p50"] if tracer_p50 else math.nan
    rows = [TargetRow("single decision p50 <= 25 us and >= 10x faster than TRACER (its fastest "
                      "variant)", f"{c['p50']:.1f} us vs {fastest:.1f} us ({speedup:.1f}x)",
                      None if math.isnan(speedup) else (c["p50"] <= 25 and speedup >= 10)),
            TargetRow(">= 200,000 decisions/s in batch on one thread",
                      f"{c['batch_decisions_per_s']:,.0f} /s", c["batch_decisions_per_s"] >= 200_000)]
    cold = c["cold"]
    rows.append(TargetRow("cold start <= 0.3 s and <= 60 MiB RSS",
                          f"{cold['median_s']:.3f} s, {cold['peak_rss_mib']:.1f} MiB",
                          cold["median_s"] <= 0.3 and cold["peak_rss_mib"] <= 60))
    return rows


def all_rows(results: dict) -> list[TargetRow]:
    q = results.get("quality") or {"tasks": {}, "alphas": [], "delta": 0.05}
    delta = q.get("delta", 0.05)
    return (quality_rows(q) + validity_rows(results.get("validity"), delta) + [compile_row(q)]
            + runtime_rows(results.get("runtime")))

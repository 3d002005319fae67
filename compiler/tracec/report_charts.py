"""Geometry of the report's inline SVG charts (the template draws them; no JS, no images).

Every function takes already-parsed JSON and returns plain numbers and
strings; text is escaped by the template, never assembled into markup here.
"""

from __future__ import annotations

import math
from typing import Any, Optional

FAMILY_COLORS = {"global": "#4c78a8", "l2d": "#e45756", "cascade": "#54a24b"}
OTHER_COLOR = "#9d755d"


def num(x: Any) -> Optional[float]:
    """A JSON decimal (string or number) as a finite float, else None."""
    if isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = (hi - lo) / (count - 1) if hi > lo else 0.0
    return [round(lo + i * step, 6) for i in range(count)]


def frontier_chart(frontier: Any, policy_alpha: Optional[float], width: int = 860,
                   height: int = 360) -> Optional[dict]:
    """Coverage (y) against the target alpha (x), one series per family, plus the oracle limit.

    A family is drawn only where it certified something: an alpha where it certified nothing
    is a gap in its line (never a drop to 0 %), and an alpha where no family certified
    anything carries a "nothing certified" note instead."""
    alphas = frontier.get("alphas") if isinstance(frontier, dict) else None
    points = []  # (alpha, family, coverage, passed, chosen)
    oracle = []
    for entry in alphas if isinstance(alphas, list) else []:
        a = num(entry.get("alpha")) if isinstance(entry, dict) else None
        if a is None:
            continue
        o = num(entry.get("oracle_limit"))
        if o is not None:
            oracle.append((a, min(max(o, 0.0), 1.0)))
        for fam in entry.get("families") or []:
            if not isinstance(fam, dict):
                continue
            passed = fam.get("passed") is True and num(fam.get("coverage")) is not None
            cov = num(fam.get("coverage")) if passed else 0.0
            points.append((a, str(fam.get("family", "?")), min(max(cov or 0.0, 0.0), 1.0), passed,
                           fam.get("family") == entry.get("chosen") and passed))
    if not points and not oracle:
        return None
    xs = [p[0] for p in points] + [o[0] for o in oracle]
    lo, hi = min(xs), max(xs)
    if hi - lo < 0.05:
        lo, hi = lo - 0.025, hi + 0.025
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    left, right, top, bottom = 56, 150, 16, 44
    pw, ph = width - left - right, height - top - bottom

    def sx(a: float) -> float:
        return round(left + (a - lo) / (hi - lo) * pw, 2)

    def sy(c: float) -> float:
        return round(top + (1.0 - c) * ph, 2)

    series = []
    families = sorted({p[1] for p in points}, key=lambda f: (f not in FAMILY_COLORS, f))
    for k, fam in enumerate(families):
        pts = sorted((p for p in points if p[1] == fam), key=lambda p: p[0])
        # earlier series are drawn wider, so a family hidden under an identical one still shows
        width_, radius = max(6.0 - 2.0 * k, 1.5), max(7.0 - 1.5 * k, 3.0)
        series.append({
            "family": fam, "color": FAMILY_COLORS.get(fam, OTHER_COLOR), "stroke": width_,
            "radius": radius,
            "paths": [" ".join(f"{sx(p[0])},{sy(p[2])}" for p in run) for run in _certified_runs(pts)],
            "markers": [{"x": sx(p[0]), "y": sy(p[2]), "passed": True, "chosen": p[4],
                         "title": f"{fam} at alpha {p[0]:g}: coverage {p[2]:.1%}"}
                        for p in pts if p[3]]})
    oracle.sort()
    bundle = None
    if policy_alpha is not None:
        chosen = [p for p in points if p[4] and abs(p[0] - policy_alpha) < 1e-9]
        if chosen:
            bundle = {"x": sx(chosen[0][0]), "y": sy(chosen[0][2])}
    distinct = sorted(set(xs))
    xticks = distinct if len(distinct) <= 8 else _ticks(lo + pad, hi - pad)
    return {"width": width, "height": height, "left": left, "top": top, "pw": pw, "ph": ph,
            "bottom_y": top + ph, "right_x": left + pw,
            "xticks": [{"x": sx(t), "label": f"{t:.3g}"} for t in xticks],
            "yticks": [{"y": sy(t), "label": f"{t:.0%}"} for t in _ticks(0.0, 1.0)],
            "series": series, "bundle": bundle,
            "oracle_path": " ".join(f"{sx(a)},{sy(c)}" for a, c in oracle),
            "oracle_markers": [{"x": sx(a), "y": sy(c), "label": f"{c:.0%}",
                                "title": f"oracle limit at alpha {a:g}: {c:.1%}"} for a, c in oracle],
            "uncertified": [{"x": sx(a), "y": sy(0.0) - 14, "text": "nothing certified"}
                            for a in sorted({p[0] for p in points})
                            if not any(q[3] for q in points if q[0] == a)],
            "legend_x": left + pw + 16}


def _certified_runs(pts: list[tuple]) -> list[list[tuple]]:
    """Maximal runs of consecutive (by alpha) certified points with at least two points."""
    runs, current = [], []
    for p in pts:
        if p[3]:
            current.append(p)
        else:
            runs, current = runs + [current], []
    runs.append(current)
    return [r for r in runs if len(r) >= 2]


#: Approximate width of one character of the 12px chart font, for sizing the label column.
CHAR_W = 6.8


def label_bars(per_label: Any, alpha: Optional[float], width: int = 1000,
               row_height: int = 20) -> Optional[dict]:
    """Horizontal bars of the handled rate per label, most traffic first; colour by TA vs alpha.

    The label column is as wide as the longest label (capped), so long intent
    names are shown whole; each value says how many rows the rate is based on.
    """
    items = []
    for entry in per_label if isinstance(per_label, list) else []:
        if not isinstance(entry, dict):
            continue
        rate = num(entry.get("handled_rate"))
        ta = num(entry.get("ta"))
        label = entry.get("label")
        n = entry.get("n") if isinstance(entry.get("n"), int) else None
        items.append({"label": "(not a training label)" if label is None else str(label), "n": n,
                      "rate": min(max(rate or 0.0, 0.0), 1.0), "ta": ta})
    if not items:
        return None
    items.sort(key=lambda i: (-(i["n"] or 0), i["label"]))
    longest = max(len(i["label"]) + (len(str(i["n"])) + 3 if i["n"] is not None else 0)
                  for i in items)
    label_w = int(math.ceil(min(max(120.0, longest * CHAR_W + 16), 420.0)))
    max_chars = longest if longest * CHAR_W + 16 <= label_w else int((label_w - 16) / CHAR_W)
    value_w = 280
    bar_w = width - label_w - value_w
    rows = []
    for k, it in enumerate(items):
        if it["ta"] is None:
            color, status = "#bab0ac", "no TA"
        elif alpha is not None and it["ta"] < alpha:
            color, status = "#f58518", f"TA {it['ta']:.0%} < alpha"
        else:
            color, status = "#54a24b", f"TA {it['ta']:.0%}"
        handled = f" ({round(it['rate'] * it['n'])}/{it['n']})" if it["n"] else ""
        rows.append({**it, "y": k * row_height, "w": round(it["rate"] * bar_w, 2), "color": color,
                     "value": f"{it['rate']:.0%} handled{handled} · {status}"})
    return {"width": width, "height": len(rows) * row_height + 24, "row_height": row_height,
            "label_w": label_w, "max_chars": max_chars, "bar_w": bar_w,
            "value_x": label_w + bar_w + 8, "rows": rows,
            "grid": [{"x": round(label_w + f * bar_w, 2), "label": f"{f:.0%}"}
                     for f in (0.0, 0.25, 0.5, 0.75, 1.0)],
            "axis_y": len(rows) * row_height + 14}

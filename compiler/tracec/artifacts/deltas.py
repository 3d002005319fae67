"""(D) Deltas against a previous bundle's manifest: what this compile gained or lost.

Both sides are read from manifests (the previous one verified by the caller),
so the comparison uses the same held-out measurements each bundle signed.
Changes are ``now - previous``: positive means coverage (or TA) gained.
Missing or malformed fields in an older manifest become nulls, never errors.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from tracec.manifest import dec


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _num(x: Any) -> Optional[float]:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _dec_or_none(x: Any) -> Optional[str]:
    v = _num(x)
    return None if v is None else dec(v)


def _diff(now: Any, prev: Any) -> Optional[str]:
    a, b = _num(now), _num(prev)
    return None if a is None or b is None else dec(a - b)


def _str(x: Any) -> Optional[str]:
    return x if isinstance(x, str) else None


def summary(m: dict) -> dict:
    return {"gate": _str(_get(m, "policy", "gate")), "family": _str(_get(m, "policy", "family")),
            "alpha": _dec_or_none(_get(m, "policy", "alpha")),
            "delta": _dec_or_none(_get(m, "policy", "delta")),
            "model_name": _str(_get(m, "policy", "model_name")),
            "embedder": _str(_get(m, "embedder", "id")),
            "traces_sha256": _str(_get(m, "inputs", "traces_sha256")),
            "config_fingerprint": _str(_get(m, "config_fingerprint"))}


def _per_label(m: dict) -> dict[str, dict]:
    out = {}
    for entry in _get(m, "per_label") or []:
        if isinstance(entry, dict) and isinstance(entry.get("label"), str):
            out[entry["label"]] = entry
    return out


def _int(x: Any) -> Optional[int]:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _warnings(now: dict, prev: dict, added: list, removed: list) -> list[str]:
    out = []
    for key, what in (("embedder", "embedder"), ("alpha", "alpha"), ("delta", "delta")):
        if now[key] != prev[key]:
            out.append(f"The {what} changed ({prev[key]} -> {now[key]}): "
                       "coverage is not directly comparable.")
    if now["gate"] != prev["gate"]:
        out.append(f"The gate changed from {prev['gate']} to {now['gate']}.")
    if added or removed:
        out.append(f"The label set changed: {len(added)} label(s) added, {len(removed)} removed.")
    return out


def build_deltas(manifest: dict, previous: Optional[dict]) -> dict:
    now = summary(manifest)
    if previous is None:
        return {"artifact": "deltas", "version": "1", "now": now, "previous": None, "overall": [],
                "per_label": [], "labels_added": [], "labels_removed": [], "warnings": [],
                "note": "No previous bundle was given (compile with --previous OLD_BUNDLE)."}
    prev = summary(previous)
    overall = []
    for split in ("calibration", "shadow"):
        c_now, c_prev = _get(manifest, split, "coverage"), _get(previous, split, "coverage")
        t_now, t_prev = _get(manifest, split, "ta"), _get(previous, split, "ta")
        overall.append({"split": split, "coverage_previous": _dec_or_none(c_prev),
                        "coverage_now": _dec_or_none(c_now), "coverage_change": _diff(c_now, c_prev),
                        "ta_previous": _dec_or_none(t_prev), "ta_now": _dec_or_none(t_now),
                        "ta_change": _diff(t_now, t_prev)})
    pl_now, pl_prev = _per_label(manifest), _per_label(previous)
    rows = []
    for label in sorted(set(pl_now) | set(pl_prev)):
        a, b = pl_now.get(label, {}), pl_prev.get(label, {})
        rows.append({"label": label, "n_previous": _int(b.get("n")), "n_now": _int(a.get("n")),
                     "handled_rate_previous": _dec_or_none(b.get("handled_rate")),
                     "handled_rate_now": _dec_or_none(a.get("handled_rate")),
                     "change": _diff(a.get("handled_rate"), b.get("handled_rate")),
                     "ta_previous": _dec_or_none(b.get("ta")), "ta_now": _dec_or_none(a.get("ta"))})
    rows.sort(key=lambda r: (r["change"] is None, -abs(float(r["change"] or 0)), r["label"]))
    labels_now = [x for x in _get(manifest, "labels") or [] if isinstance(x, str)]
    labels_prev = [x for x in _get(previous, "labels") or [] if isinstance(x, str)]
    added = sorted(set(labels_now) - set(labels_prev))
    removed = sorted(set(labels_prev) - set(labels_now))
    return {"artifact": "deltas", "version": "1", "now": now, "previous": prev, "overall": overall,
            "per_label": rows, "labels_added": added, "labels_removed": removed,
            "warnings": _warnings(now, prev, added, removed),
            "note": "Changes are now minus previous: positive means coverage (or TA) was gained."}

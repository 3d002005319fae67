"""Refusal explanation: why the gate is closed, and which labels hold coverage back.

Written for open bundles too: the blocking labels are where more traces would
most raise coverage.  A label's impact is the share of all held-out traffic
that is deferred from it *and* that the surrogate gets wrong there: deferred
rows the surrogate already answers right need a better acceptor, not data;
deferred wrong rows need the surrogate to learn the label.
"""

from __future__ import annotations

from typing import Optional

from tracec.artifacts.rows import Rows, rate
from tracec.manifest import dec

N_BLOCKING = 10
METHOD = ("labels ranked by impact = (deferred rows of the label that the surrogate gets wrong) / "
          "(all held-out rows), i.e. deferred share x (1 - agreement on its deferred rows)")


def blocking_labels(rows: Rows, top: int = N_BLOCKING) -> list[dict]:
    out = []
    for label, idx in rows.groups():
        deferred = idx[~rows.handled[idx]]
        n_wrong = int((~rows.agree[deferred]).sum())
        if n_wrong == 0:
            continue
        out.append({"label": label, "n": len(idx), "n_deferred": len(deferred),
                    "deferred_share": dec(len(deferred) / rows.n),
                    "ta_deferred": rate(len(deferred) - n_wrong, len(deferred)),
                    "ta_full_coverage": dec(float(rows.agree[idx].mean())),
                    "impact": dec(n_wrong / rows.n), "_wrong": n_wrong})
    out.sort(key=lambda b: (-b["_wrong"], b["label"] is None, b["label"] or ""))
    return [{k: v for k, v in b.items() if k != "_wrong"} for b in out[:top]]


def _fmt(x: Optional[str]) -> str:
    return "none" if x is None else x


def build_refusal(rows: Rows, manifest: dict) -> dict:
    policy = manifest.get("policy") or {}
    gate = "open" if policy.get("gate") == "open" else "closed"
    alpha, delta = str(policy.get("alpha", "0")), str(policy.get("delta", "0"))
    refusal = manifest.get("refusal") or None
    if refusal and refusal.get("best_ta_full_coverage") is not None:
        best, best_src = str(refusal["best_ta_full_coverage"]), "manifest (calibration split)"
    else:
        best = dec(float(rows.agree.mean())) if rows.n else "0"
        best_src = "held-out rows (calibration + shadow)"
    if refusal is not None:
        hpa = refusal.get("highest_passing_alpha")
        hpa_src = "manifest (calibration split)"
    else:
        hpa, hpa_src = None, "not computed for an open gate (the chosen alpha passed)"
    reasons = list((refusal or {}).get("reasons") or [])
    if gate == "closed" and not reasons:
        reasons = list((manifest.get("shadow") or {}).get("reasons") or [])
    blocking = blocking_labels(rows)
    names = ", ".join(f"'{b['label']}'" if b["label"] is not None else "(labels not seen in training)"
                      for b in blocking[:3])
    if gate == "closed":
        text = (f"The gate is closed at alpha {alpha}: every input defers to the LLM. The surrogate "
                f"agrees with the teacher on {best} of rows at full coverage; the highest alpha "
                f"that would pass at delta {delta} is {_fmt(hpa and str(hpa))}.")
    else:
        text = f"The gate is open at alpha {alpha}."
    if blocking:
        text += (f" Deferred traffic the surrogate gets wrong is concentrated in {names}: more traces "
                 "for these labels would raise coverage most.")
    return {"artifact": "refusal", "version": "1", "gate": gate, "alpha": alpha, "delta": delta,
            "reasons": [str(r) for r in reasons], "best_ta_full_coverage": best,
            "best_ta_full_coverage_source": best_src,
            "highest_passing_alpha": None if hpa is None else str(hpa),
            "highest_passing_alpha_source": hpa_src,
            "gap_to_alpha": dec(float(alpha) - float(best)),
            "manifest_blocking_labels": [str(x) for x in (refusal or {}).get("blocking_labels") or []],
            "blocking_method": METHOD, "blocking_labels": blocking, "summary": text}

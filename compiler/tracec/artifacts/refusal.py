"""Refusal explanation: why the gate is closed, and which labels hold coverage back.

Written for open bundles too: the blocking labels are where more traces would
most raise coverage, unless the surrogate is near chance (no better than
always answering the teacher's most common label), when data is not the
problem.  A label's impact is the share of all held-out traffic
that is deferred from it *and* that the surrogate gets wrong there: deferred
rows the surrogate already answers right need a better acceptor, not data;
deferred wrong rows need the surrogate to learn the label.
"""

from __future__ import annotations

from typing import Optional

from tracec.artifacts.rows import NEAR_CHANCE_MARGIN, Rows, majority_baseline, rate
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


def _quoted(label: Optional[str]) -> str:
    return "(labels not seen in training)" if label is None else f"'{label}'"


def _summary(gate: str, alpha: str, delta: str, best: float, best_src: str, hpa: Optional[str],
             majority: tuple[Optional[str], float], near_chance: bool, blocking: list[dict]) -> str:
    gap = (float(alpha) - best) * 100
    if gate == "closed":
        text = (f"The gate is closed at alpha {alpha}: every input defers to the LLM. At full "
                f"coverage the surrogate agrees with the teacher on {best:.1%} of rows "
                f"({best_src}), " + (f"{gap:.1f} points short of alpha." if gap > 0 else
                                     f"{-gap:.1f} points above alpha, yet nothing was certified "
                                     "(see the reasons)."))
        text += (f" No alpha could be certified at delta {delta} with this acceptor." if hpa is None
                 else f" The highest alpha that could be certified at this delta is {hpa}"
                      + (": a lower target would let the bundle answer some traffic locally."
                         if float(hpa) < float(alpha) else "."))
    else:
        text = (f"The gate is open at alpha {alpha}. At full coverage the surrogate would agree "
                f"with the teacher on {best:.1%} of rows ({best_src}); the acceptor defers the "
                "inputs it is least sure of.")
    names = ", ".join(_quoted(b["label"]) for b in blocking[:3])
    if near_chance:
        text += (f" That is no better than always answering the teacher's most common label, "
                 f"{_quoted(majority[0])} ({majority[1]:.1%} of held-out rows): the embeddings carry "
                 "almost nothing of what the teacher decides on, so more traces of the same kind are "
                 "unlikely to help. Keep this task on the LLM, or try an embedder that represents "
                 "what the task depends on.")
        if blocking:
            text += f" The blocking labels ({names}) show where the errors fall, not a data shortage."
    elif blocking:
        text += (f" Deferred traffic the surrogate gets wrong is concentrated in {names}: more traces "
                 "for these labels would raise coverage most.")
    return text


def build_refusal(rows: Rows, manifest: dict) -> dict:
    policy = manifest.get("policy") or {}
    gate = "open" if policy.get("gate") == "open" else "closed"
    alpha, delta = str(policy.get("alpha", "0")), str(policy.get("delta", "0"))
    refusal = manifest.get("refusal") or None
    if refusal and refusal.get("best_ta_full_coverage") is not None:
        best, best_src = str(refusal["best_ta_full_coverage"]), "calibration split"
    else:
        best = dec(float(rows.agree.mean())) if rows.n else "0"
        best_src = "held-out rows: calibration + shadow"
    if refusal is not None:
        hpa = refusal.get("highest_passing_alpha")
        hpa_src = "manifest (calibration split)"
    else:
        hpa, hpa_src = None, "not computed for an open gate (the chosen alpha passed)"
    hpa = None if hpa is None else str(hpa)
    reasons = list((refusal or {}).get("reasons") or [])
    if gate == "closed" and not reasons:
        reasons = list((manifest.get("shadow") or {}).get("reasons") or [])
    blocking = blocking_labels(rows)
    majority = majority_baseline(rows)
    near_chance = rows.n > 0 and float(best) <= majority[1] + NEAR_CHANCE_MARGIN
    return {"artifact": "refusal", "version": "1", "gate": gate, "alpha": alpha, "delta": delta,
            "reasons": [str(r) for r in reasons], "best_ta_full_coverage": best,
            "best_ta_full_coverage_source": best_src, "highest_passing_alpha": hpa,
            "highest_passing_alpha_source": hpa_src,
            "gap_to_alpha": dec(float(alpha) - float(best)),
            "majority_label": majority[0], "majority_share": dec(majority[1]),
            "near_chance": bool(near_chance),
            "manifest_blocking_labels": [str(x) for x in (refusal or {}).get("blocking_labels") or []],
            "blocking_method": METHOD, "blocking_labels": blocking,
            "summary": _summary(gate, alpha, delta, float(best), best_src, hpa, majority,
                                bool(near_chance), blocking)}

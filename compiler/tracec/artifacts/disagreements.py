"""(E) Disagreement cards: where the surrogate and the teacher disagree, grouped by prediction.

One card per predicted label with disagreements: how often that prediction is
wrong, which teacher labels it is confused with, and examples (handled wrong
answers first: those are the errors a deployment would serve).  The artifact
also checks for collapse: a surrogate that puts far more traffic on one or a
few labels than the teacher does, the usual cause of a refused bundle.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from tracec.artifacts.rows import NEAR_CHANCE_MARGIN, Rows, majority_baseline, rate
from tracec.manifest import dec

N_EXAMPLES = 3
N_CONFUSIONS = 5
#: Collapse: the predictions use at most this fraction of the teacher's effective classes, or ...
COLLAPSE_EFFECTIVE_RATIO = 0.5
#: ... the top predicted label takes at least this much more traffic than the teacher gives it.
COLLAPSE_EXCESS_SHARE = 0.25


def _distribution(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys, counts = np.unique(values, return_counts=True)
    order = np.lexsort((keys, -counts))
    return keys[order], counts[order]


def effective_classes(counts: np.ndarray) -> float:
    """exp(Shannon entropy) of a count vector: 1 for one class, k for k equal classes."""
    p = counts[counts > 0] / counts.sum()
    return float(math.exp(-(p * np.log(p)).sum())) if len(p) else 0.0


def collapse(rows: Rows) -> dict:
    n = rows.n
    if n == 0:
        return {"detected": False, "top_pred_label": None, "top_pred_share": "0",
                "teacher_share_of_top": "0", "teacher_top_label": None, "teacher_top_share": "0",
                "n_distinct_pred": 0, "n_distinct_teacher": 0, "pred_effective_classes": "0",
                "teacher_effective_classes": "0", "explanation": "There are no held-out rows."}
    pk, pc = _distribution(rows.pred)
    tk, tc = _distribution(rows.teacher)
    top = int(pk[0])
    top_share, t_share_top = pc[0] / n, float(np.mean(rows.teacher == top))
    eff_p, eff_t = effective_classes(pc), effective_classes(tc)
    detected = (eff_p <= COLLAPSE_EFFECTIVE_RATIO * eff_t
                or top_share - t_share_top >= COLLAPSE_EXCESS_SHARE)
    name = rows.name(top)
    if detected:
        text = (f"The surrogate has collapsed: it predicts '{name}' for {top_share:.1%} of held-out "
                f"rows, while the teacher gives '{name}' to {t_share_top:.1%}. Its predictions "
                f"spread over {eff_p:.1f} effective labels ({len(pk)} distinct) against the "
                f"teacher's {eff_t:.1f} ({len(tk)} distinct), so most rows of the other labels "
                "are answered wrongly and no threshold can certify them.")
    else:
        text = (f"No collapse: the surrogate's predictions spread over {eff_p:.1f} effective labels "
                f"({len(pk)} distinct) against the teacher's {eff_t:.1f} ({len(tk)} distinct); its "
                f"most frequent prediction, '{name}', takes {top_share:.1%} of rows "
                f"(teacher: {t_share_top:.1%}).")
    return {"detected": bool(detected), "top_pred_label": name, "top_pred_share": dec(top_share),
            "teacher_share_of_top": dec(t_share_top), "teacher_top_label": rows.name(int(tk[0])),
            "teacher_top_share": dec(tc[0] / n), "n_distinct_pred": len(pk),
            "n_distinct_teacher": len(tk), "pred_effective_classes": dec(eff_p, 3),
            "teacher_effective_classes": dec(eff_t, 3), "explanation": text}


def _card(rows: Rows, k: int, wrong: np.ndarray) -> dict:
    predicted = rows.pred == k
    idx = np.flatnonzero(predicted & wrong)
    keys, counts = _distribution(rows.teacher[idx])
    # handled first, then by score (high first), then by row index
    order = np.lexsort((idx, -rows.score[idx], ~rows.handled[idx]))
    return {"pred": rows.labels[k], "n_pred": int(predicted.sum()), "n_disagree": len(idx),
            "disagree_rate": rate(len(idx), int(predicted.sum())),
            "n_disagree_handled": int(rows.handled[idx].sum()),
            "confused_with": [{"teacher": rows.name(int(t)), "count": int(c)}
                              for t, c in zip(keys[:N_CONFUSIONS], counts[:N_CONFUSIONS])],
            "examples": [rows.ref(int(i)) for i in idx[order][:N_EXAMPLES]]}


def _summary(rows: Rows, wrong: np.ndarray, col: dict, cards: list[dict],
             gate: Optional[str]) -> list[str]:
    n, nw = rows.n, int(wrong.sum())
    nwh = int((wrong & rows.handled).sum())
    out = [f"The surrogate disagrees with the teacher on {nw:,} of {n:,} held-out rows "
           f"({nw / max(n, 1):.1%}); {nwh:,} of those were handled (answered locally and wrong by "
           f"the teacher's standard), the other {nw - nwh:,} were deferred."]
    unseen = int((rows.teacher < 0).sum())
    if unseen:
        out.append(f"{unseen:,} rows carry a teacher label that never occurred in training; the "
                   "surrogate cannot produce it, so they always disagree.")
    if col["detected"] or gate == "closed":
        out.append(col["explanation"])
    if gate == "closed" and n:
        agree = 1.0 - nw / n
        top, share = majority_baseline(rows)
        name = f"'{top}'" if top is not None else "(a label not seen in training)"
        line = (f"The surrogate agrees with the teacher on {agree:.1%} of held-out rows; always "
                f"answering the teacher's most common label, {name}, would agree on {share:.1%}.")
        if agree <= share + NEAR_CHANCE_MARGIN:
            line += (" It has learned almost nothing the teacher decides on from these embeddings: "
                     "that, more than missing data, is why no threshold could be certified.")
        out.append(line)
    if gate == "closed" and cards:
        c = max(cards, key=lambda card: card["n_disagree"])  # first of the largest
        t = c["confused_with"][0]
        out.append(f"The largest source of disagreement is predicting '{c['pred']}' ({c['n_disagree']:,} "
                   f"wrong rows); most often the teacher said "
                   f"'{t['teacher'] if t['teacher'] is not None else '(label not seen in training)'}' "
                   f"({t['count']:,}).")
    return out


def build_disagreements(rows: Rows, manifest: dict) -> dict:
    wrong = ~rows.agree
    cards = [_card(rows, k, wrong) for k in np.unique(rows.pred[wrong])]
    cards.sort(key=lambda c: (-c["n_disagree_handled"], -c["n_disagree"], c["pred"]))
    col = collapse(rows)
    gate = (manifest.get("policy") or {}).get("gate")
    return {"artifact": "disagreements", "version": "1", "n_total": rows.n,
            "n_disagree": int(wrong.sum()), "n_disagree_handled": int((wrong & rows.handled).sum()),
            "n_unseen_teacher": int((rows.teacher < 0).sum()),
            "disagree_rate": rate(int(wrong.sum()), rows.n) or "0", "collapse": col,
            "summary": _summary(rows, wrong, col, cards, gate), "cards": cards}

"""(A) Slices: traffic share, handled rate and TA per teacher label and per input length."""

from __future__ import annotations

from typing import Optional

import numpy as np

from tracec.artifacts.rows import Rows, rate
from tracec.manifest import dec

#: Word-count bins (inclusive bounds; None = no upper bound).  Empty texts fall in the first bin.
LENGTH_BINS: tuple[tuple[int, Optional[int]], ...] = ((0, 5), (6, 10), (11, 20), (21, 40), (41, None))


def word_counts(texts: list[str]) -> np.ndarray:
    return np.array([len(t.split()) for t in texts], dtype=np.int64)


def bin_name(lo: int, hi: Optional[int]) -> str:
    return f"{lo}+" if hi is None else f"{lo}-{hi}"


def _stats(rows: Rows, mask: np.ndarray) -> dict:
    n = int(mask.sum())
    h = mask & rows.handled
    n_handled = int(h.sum())
    n_agree = int((h & rows.agree).sum())
    return {"n": n, "share": dec(n / rows.n) if rows.n else "0", "n_handled": n_handled,
            "handled_rate": rate(n_handled, n), "n_agree_handled": n_agree,
            "ta_handled": rate(n_agree, n_handled)}


def routing_note(rows: Rows, manifest: dict) -> Optional[str]:
    gate = (manifest.get("policy") or {}).get("gate")
    if gate == "closed" and rows.handled.any():
        return ("The gate is closed: the bundle defers every input. 'Handled' here is what the "
                "candidate policy would have handled had it been promoted.")
    if gate == "closed":
        return "The gate is closed: the bundle defers every input, so nothing is handled."
    return None


def build_slices(rows: Rows, manifest: dict) -> dict:
    by_label = []
    for k in list(range(len(rows.labels))) + [-1]:
        mask = rows.teacher == k
        if k == -1 and not mask.any():
            continue
        by_label.append({"label": rows.name(k), **_stats(rows, mask)})
    by_label.sort(key=lambda s: (-s["n"], s["label"] is None, s["label"] or ""))
    words = word_counts(rows.texts)
    by_length = []
    for lo, hi in LENGTH_BINS:
        mask = words >= lo if hi is None else (words >= lo) & (words <= hi)
        by_length.append({"bin": bin_name(lo, hi), "min_words": lo, "max_words": hi,
                          **_stats(rows, mask)})
    return {"artifact": "slices", "version": "1", "n_total": rows.n,
            "n_handled": int(rows.handled.sum()), "routing_note": routing_note(rows, manifest),
            "by_label": by_label, "by_length": by_length}

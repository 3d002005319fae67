"""(C) Contrastive boundary pairs: two inputs of the same teacher label, routed oppositely.

Per label we take the handled row and the deferred row that are closest to
each other in embedding space (highest cosine similarity).  This minimal pair
shows what small difference flips the routing decision; the alternative (the
highest-scoring handled row against the lowest-scoring deferred one) mostly
pairs the label's most prototypical input with an outlier, which says little
about where the threshold sits.  Both rows' scores are reported against tau.
"""

from __future__ import annotations

import numpy as np

from tracec.artifacts.rows import Rows
from tracec.manifest import dec

#: At most this many rows per side are searched (an evenly spaced subsample beyond it).
MAX_SIDE = 2000
_BLOCK = 512

METHOD = ("for each teacher label, the (handled, deferred) pair of its rows with the highest cosine "
          "similarity between their embeddings; ties go to the lowest row indices")


def _subsample(idx: np.ndarray) -> np.ndarray:
    if len(idx) <= MAX_SIDE:
        return idx
    return idx[np.linspace(0, len(idx) - 1, MAX_SIDE).round().astype(np.int64)]


def closest_pair(unit: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """(row in ``a``, row in ``b``, cosine) of the most similar cross pair, scanned in blocks."""
    best = (-1, -1, -np.inf)
    ub = unit[b].astype(np.float64)
    for start in range(0, len(a), _BLOCK):
        block = a[start:start + _BLOCK]
        sims = unit[block].astype(np.float64) @ ub.T
        flat = int(np.argmax(sims))
        i, j = divmod(flat, len(b))
        if sims[i, j] > best[2]:
            best = (int(block[i]), int(b[j]), float(sims[i, j]))
    return best


def build_boundary_pairs(rows: Rows, manifest: dict) -> dict:
    pairs, without = [], []
    for label, idx in rows.groups():
        handled = idx[rows.handled[idx]]
        deferred = idx[~rows.handled[idx]]
        if not len(handled) or not len(deferred):
            without.append(label)
            continue
        hs, ds = _subsample(handled), _subsample(deferred)
        i, j, sim = closest_pair(rows.unit, hs, ds)
        pairs.append({"label": label, "similarity": dec(sim), "handled": rows.ref(i),
                      "deferred": rows.ref(j), "n_handled": len(handled),
                      "n_deferred": len(deferred),
                      "exhaustive": len(hs) == len(handled) and len(ds) == len(deferred)})
    pairs.sort(key=lambda p: (-float(p["similarity"]), p["label"] is None, p["label"] or ""))
    note = None
    if not rows.handled.any():
        note = "Nothing is handled on the held-out rows, so no label has a pair."
    elif rows.handled.all():
        note = "Every held-out row is handled, so no label has a deferred row to pair."
    elif not pairs:
        note = "No label has both handled and deferred rows."
    tau = str((manifest.get("policy") or {}).get("tau", "inf"))
    return {"artifact": "boundary_pairs", "version": "1", "method": METHOD, "tau": tau,
            "pairs": pairs, "labels_without_pair": without, "note": note}

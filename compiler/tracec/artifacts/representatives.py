"""(B) Representatives: per teacher label, the typical handled and the typical deferred input.

Each is the row closest (cosine) to the centroid of its own subgroup (label x
routing), so the two show what handled and what deferred traffic of a label
usually looks like.  Ties go to the lowest row index.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from tracec.artifacts.rows import Rows
from tracec.manifest import dec

METHOD = ("for each teacher label and each routing (handled / deferred), the row with the highest "
          "cosine similarity to the mean of that subgroup's L2-normalised embeddings")


def nearest_to_centroid(unit: np.ndarray, idx: np.ndarray) -> tuple[int, float]:
    """(row index, cosine similarity) of the member of ``idx`` closest to their centroid."""
    centroid = unit[idx].astype(np.float64).mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    sims = unit[idx].astype(np.float64) @ (centroid / norm if norm > 0 else centroid)
    j = int(np.argmax(sims))
    return int(idx[j]), float(sims[j])


def _pick(rows: Rows, idx: np.ndarray) -> Optional[dict]:
    if not len(idx):
        return None
    i, sim = nearest_to_centroid(rows.unit, idx)
    return {"example": rows.ref(i), "similarity": dec(sim)}


def build_representatives(rows: Rows) -> dict:
    out = []
    for label, idx in rows.groups():
        handled = idx[rows.handled[idx]]
        deferred = idx[~rows.handled[idx]]
        out.append({"label": label, "n": len(idx), "n_handled": len(handled),
                    "n_deferred": len(deferred), "handled": _pick(rows, handled),
                    "deferred": _pick(rows, deferred)})
    out.sort(key=lambda r: (-r["n"], r["label"] is None, r["label"] or ""))
    return {"artifact": "representatives", "version": "1", "method": METHOD, "labels": out}

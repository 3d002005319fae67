"""Measure a written bundle through the runtime: the manifest's numbers come from here.

The compiler loads its own staged bundle with ``tracec_runtime.Router`` and
routes the held-out splits, so coverage and TA describe the exported graph as
a deployment will run it, not the scikit-learn objects it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracec.calibration import cp_lower, cp_upper
from tracec.manifest import LabelStat, Measured, dec


@dataclass(frozen=True)
class Routed:
    """Graph outputs on one split, as the runtime computed them (ignoring the gate)."""

    label: np.ndarray    # int64
    score: np.ndarray    # float32
    handled: np.ndarray  # bool
    teacher: np.ndarray  # int64


def route_split(router, X: np.ndarray, teacher: np.ndarray) -> Routed:
    batch = router.route_batch(X)
    return Routed(np.asarray(batch.label_index, dtype=np.int64), np.asarray(batch.score),
                  np.asarray(batch.handled, dtype=bool), np.asarray(teacher, dtype=np.int64))


def measured(r: Routed, delta: float) -> Measured:
    n_handled = int(r.handled.sum())
    n_agree = int((r.handled & (r.label == r.teacher)).sum())
    ta = n_agree / n_handled if n_handled else 0.0
    return Measured(n_total=len(r.teacher), n_handled=n_handled, n_agree=n_agree,
                    coverage=dec(n_handled / max(len(r.teacher), 1)), ta=dec(ta),
                    ta_lower=dec(cp_lower(n_agree, n_handled, delta)),
                    ta_upper=dec(cp_upper(n_agree, n_handled, delta)))


def concat(parts: list[Routed]) -> Routed:
    return Routed(*(np.concatenate([getattr(p, f) for p in parts])
                    for f in ("label", "score", "handled", "teacher")))


def per_label(r: Routed, labels: list[str]) -> list[LabelStat]:
    """Handled rate and TA per teacher label on held-out rows (labels with no rows are omitted)."""
    stats = []
    for k, name in enumerate(labels):
        rows = r.teacher == k
        n = int(rows.sum())
        if n == 0:
            continue
        h = r.handled & rows
        nh = int(h.sum())
        ta = dec(float(np.mean(r.label[h] == k))) if nh else None
        stats.append(LabelStat(label=name, n=n, handled_rate=dec(nh / n), ta=ta))
    return stats


def blocking_labels(r: Routed, labels: list[str], top: int = 5) -> list[str]:
    """Labels holding coverage back: most deferred or disagreeing held-out rows."""
    cost = np.zeros(len(labels))
    lost = ~r.handled | (r.label != r.teacher)
    np.add.at(cost, r.teacher[lost], 1)
    order = np.argsort(-cost, kind="stable")
    return [labels[k] for k in order[:top] if cost[k] > 0]

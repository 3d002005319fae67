"""A learning curve of selective teacher agreement, measured on subsamples of the traces.

The compile's own split (``splits.split_rows``, auto fractions) holds out calibration + shadow;
a cheap surrogate (one pool member, ``logreg_c0.5``: standardise + L2 logistic regression,
confidence = the top class probability) is fitted on 25 %, 50 % and 100 % of the
train + validation rows (the rows the shipped stage is refit on), ``REPEATS`` seeded subsamples
per fraction below 100 %.  Each fit is scored on the same held-out rows: the agreement of its
``c`` most confident share of them, on a coverage grid ``c = 0.02, 0.04, ..., 1``.  That curve
moves smoothly with the data size even where nothing can be certified yet, which is what a
projection needs (``tracec.projection``).  The per-label table says which teacher labels the
surrogate gets wrong most often (the labels to collect traces of).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FRACTIONS = (0.25, 0.5, 1.0)
REPEATS = 3
GRID = np.arange(1, 51) / 50.0          # coverage levels 0.02 .. 1.0
MODEL = "logreg_c0.5 (standardise + logistic regression C=0.5; confidence = top probability)"
MIN_HELDOUT = 100                       # fewer held-out rows: the curve is noise, no projection
MIN_SUBSAMPLE = 50                      # fewer rows in the 25 % subsample: no projection


@dataclass(frozen=True)
class Point:
    fraction: float
    repeat: int
    train_rows: int
    agreement: np.ndarray               # selective agreement on GRID (held-out rows)
    pred: np.ndarray                    # predicted teacher index per held-out row


@dataclass(frozen=True)
class Curve:
    points: tuple[Point, ...]
    heldout_y: np.ndarray
    train_rows: int                     # train + validation rows of the full data
    heldout_rows: int

    @property
    def too_small(self) -> bool:
        return self.heldout_rows < MIN_HELDOUT or FRACTIONS[0] * self.train_rows < MIN_SUBSAMPLE

    def full(self) -> Point:
        return next(p for p in self.points if p.fraction == 1.0)


def measure_curve(X: dict, y: dict, seed: int, fractions=FRACTIONS,
                  repeats: int = REPEATS) -> Curve:
    """``X``/``y``: the compile's splits by name (train, validation, calibration, shadow)."""
    X_fit = np.concatenate([X["train"], X["validation"]]).astype(np.float32)
    y_fit = np.concatenate([y["train"], y["validation"]])
    X_out = np.concatenate([X["calibration"], X["shadow"]]).astype(np.float32)
    y_out = np.concatenate([y["calibration"], y["shadow"]])
    points = []
    for fraction in fractions:
        for rep in range(1 if fraction >= 1.0 else repeats):
            rows = _subsample(len(y_fit), fraction, seed, rep)
            pred, conf = _fit_predict(X_fit[rows], y_fit[rows], X_out, seed)
            points.append(Point(float(fraction), rep, len(rows),
                                selective_agreement(conf, pred == y_out), pred))
    return Curve(tuple(points), y_out, len(y_fit), len(y_out))


def selective_agreement(conf: np.ndarray, agree: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """Agreement among the ``ceil(c * n)`` most confident rows, for each ``c`` in ``grid``."""
    order = np.argsort(-conf, kind="stable")
    running = np.cumsum(agree[order].astype(np.float64))
    k = np.maximum(1, np.ceil(grid * len(agree) - 1e-9).astype(np.int64))
    return running[k - 1] / k


def _subsample(n: int, fraction: float, seed: int, rep: int) -> np.ndarray:
    if fraction >= 1.0:
        return np.arange(n)
    order = np.random.default_rng([seed, rep, int(round(fraction * 1000))]).permutation(n)
    return np.sort(order[:max(2, int(np.floor(fraction * n)))])


def _fit_predict(X: np.ndarray, y: np.ndarray, X_out: np.ndarray, seed: int):
    if len(np.unique(y)) < 2:  # one label only: the constant answer, fully confident
        return np.full(len(X_out), y[0], dtype=np.int64), np.ones(len(X_out))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=300,
                                                               random_state=seed))
    model.fit(X, y)
    probs = model.predict_proba(X_out)
    classes = np.asarray(model.classes_)
    return classes[probs.argmax(axis=1)].astype(np.int64), probs.max(axis=1)


def label_table(curve: Curve, labels: list, counts: np.ndarray, top: int = 10) -> list[dict]:
    """Teacher labels ranked by error share: held-out rows of the label the full-data
    surrogate gets wrong, over all held-out rows.  ``agreement_half`` is the mean over the
    50 % subsamples: a label whose agreement rises with data is one more traces would help."""
    full = curve.full()
    halves = [p for p in curve.points if p.fraction == 0.5]
    y, n = curve.heldout_y, curve.heldout_rows
    rows = []
    for k in np.unique(y):
        mask = y == k
        wrong = int((full.pred[mask] != k).sum())
        if wrong == 0:
            continue
        half = float(np.mean([np.mean(p.pred[mask] == k) for p in halves])) if halves else None
        rows.append({"label": labels[int(k)], "traces": int(counts[int(k)]),
                     "heldout": int(mask.sum()),
                     "agreement": round(float(np.mean(full.pred[mask] == k)), 4),
                     "agreement_half_data": None if half is None else round(half, 4),
                     "error_share": round(wrong / n, 4), "_wrong": wrong})
    rows.sort(key=lambda r: (-r["_wrong"], r["traces"], r["label"]))
    return [{k: v for k, v in r.items() if k != "_wrong"} for r in rows[:top]]

"""Experiments behind docs/benchmarks.md "A pool chosen for certified coverage" (issue 13):
primary-stage rankings and acceptor feature sets compared on one trained pool.  Nothing here
ships; ``benchmarks.certify_sweep --select ... / --features ...`` runs it.

Every ranking reads train/validation rows only (and the calibration split's *size*, as the
planner does), never calibration or shadow labels: that is what keeps the fixed sequence
fixed in advance (docs/guarantee.md).

Feature sets (acceptor, l2d/global families only, scored in float64 numpy, not the graph):

* ``base``: top-1, top-2, margin, entropy (what ships; the control of this experiment);
* ``centroid``: + cosine of the embedding to the training centroid of the predicted label;
* ``knn``: + share of the 10 nearest training traces (cosine) whose teacher label is the
  predicted label;
* ``all``: both.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from tracec.calibration import threshold_grid
from tracec.candidates import RANKINGS, rank_pool
from tracec.config import FAMILIES
from tracec.features import acceptor_features
from tracec.frontier import Context, certify_alpha, first_step_size
from tracec.planning import pass_probability
from tracec.policy import Scored, l2d_decide, make_primary, score_shipped, _counts

K_NEAREST = 10


def compare(pool, X, y, X_test, y_test, ship, alphas, delta, seed, base, selects, features):
    from benchmarks.certify_sweep import _route, rows_of

    n_cal = len(y["calibration"])
    out = {}
    for select in selects:
        ordered = rank(pool, select, X, y, n_cal, alphas, delta, seed)
        primary = make_primary(ordered[0], X["validation"], y["validation"], seed)
        if features and select == selects[0]:  # feature sets: on the first ranking only
            for fs in features.split(","):
                results, route = _numpy_certify(ordered, primary, ship, X, y, alphas, delta, seed, fs)
                out[f"{select}+{fs}"] = {"primary": ordered[0].name,
                                         "rows": rows_of(results, X, y, X_test, y_test, base,
                                                         delta, route)}
        scored = score_shipped(primary, ship(primary), X_test.shape[1],
                               {k: X[k] for k in ("validation", "calibration")})
        ctx = Context(ordered, primary, scored, X, y, FAMILIES, delta, 100, seed, X_test.shape[1],
                      lambda _m: None, 5_000_000, ship)
        results = [certify_alpha(ctx, a) for a in alphas]
        out[select] = {"primary": ordered[0].name,
                       "rows": rows_of(results, X, y, X_test, y_test, base, delta, _route)}
    return out


def rank(pool, select, X, y, n_cal, alphas, delta, seed) -> list:
    if select in RANKINGS:
        return rank_pool(pool, select)
    if select == "aurc":  # area under the risk-coverage curve of the top-1 probability
        crit = {c.name: aurc(c.estimator, X["validation"], y["validation"]) for c in pool}
        return sorted(pool, key=lambda c: (crit[c.name], c.name))
    if select != "predcov":
        raise ValueError(f"unknown ranking {select!r}")
    # mean over alphas of max_j P(step j passes) * coverage(j): smooth in the validation rows
    crit = {}
    for cand in pool:
        stage = make_primary(cand, X["validation"], y["validation"], seed)
        probs = cand.estimator.predict_proba(X["validation"])
        s = Scored(np.asarray(cand.estimator.classes_)[probs.argmax(axis=1)],
                   stage.acceptor.score(probs).astype(np.float32))
        vals = []
        for a in alphas:
            grid = threshold_grid(s.score, n_cal, min_accept=first_step_size(100, a, delta))
            nh, na = map(np.array, _counts(grid, l2d_decide(s), y["validation"]))
            pp = pass_probability(nh, na, len(s.score), n_cal, a, delta)
            vals.append(float(np.max(pp * nh / len(s.score))))
        crit[cand.name] = float(np.mean(vals))
    return sorted(pool, key=lambda c: (-crit[c.name], c.name))


def aurc(est, X, y) -> float:
    """Mean disagreement rate of the rows accepted by a top-1-probability threshold, averaged
    over every coverage 1/n .. 1 (lower is better; ties in probability kept in row order)."""
    probs = est.predict_proba(X.astype(np.float64))
    pred = np.asarray(est.classes_)[probs.argmax(axis=1)]
    order = np.argsort(-probs.max(axis=1), kind="stable")
    wrong = (pred != y)[order].astype(np.float64)
    return float(np.mean(np.cumsum(wrong) / np.arange(1, len(wrong) + 1)))


class _Feats:
    """Acceptor features from a model's probabilities and the embedding (reference: train)."""

    def __init__(self, kind: str, X_ref: np.ndarray, y_ref: np.ndarray):
        self.kind = kind
        self.X_ref, self.y_ref = X_ref.astype(np.float32), y_ref
        labels = np.unique(y_ref)
        cent = np.zeros((int(y_ref.max()) + 1, X_ref.shape[1]), dtype=np.float64)
        for lab in labels:
            cent[lab] = X_ref[y_ref == lab].mean(axis=0)
        self.cent = cent / np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)

    def __call__(self, probs, label, X) -> np.ndarray:
        cols = [acceptor_features(probs)]
        if self.kind in ("centroid", "all"):
            safe = np.minimum(label, len(self.cent) - 1)
            xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
            cols.append(np.sum(xn * self.cent[safe], axis=1)[:, None])
        if self.kind in ("knn", "all"):
            share = np.zeros(len(X))
            for i in range(0, len(X), 1024):
                sims = X[i:i + 1024].astype(np.float32) @ self.X_ref.T
                near = np.argpartition(-sims, K_NEAREST, axis=1)[:, :K_NEAREST]
                share[i:i + 1024] = np.mean(self.y_ref[near] == label[i:i + 1024, None], axis=1)
            cols.append(share[:, None])
        return np.hstack(cols)


class _Acceptor:
    def __init__(self, feats: np.ndarray, agree: np.ndarray, seed: int):
        self.mean, self.scale = feats.mean(axis=0), feats.std(axis=0)
        self.scale[self.scale < 1e-12] = 1.0
        self.model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
        self.model.fit((feats - self.mean) / self.scale, agree.astype(np.int64))

    def score(self, feats: np.ndarray) -> np.ndarray:
        return self.model.predict_proba((feats - self.mean) / self.scale)[:, 1].astype(np.float32)


def _predict(est, X):
    probs = est.predict_proba(X.astype(np.float64))
    return probs, np.asarray(est.classes_)[probs.argmax(axis=1)]


def _numpy_certify(pool, primary, ship, X, y, alphas, delta, seed, kind):
    """The l2d/global families with an acceptor over ``kind``'s features, scored in numpy."""
    feats = _Feats(kind, X["train"], y["train"])
    probs, label = _predict(primary.candidate.estimator, X["validation"])
    acc = _Acceptor(feats(probs, label, X["validation"]), label == y["validation"], seed)
    shipped = ship(primary).candidate.estimator

    def scored(est, Xs):
        p, lab = _predict(est, Xs)
        return Scored(lab, acc.score(feats(p, lab, Xs)))

    sc = {"validation": Scored(label, acc.score(feats(probs, label, X["validation"]))),
          "calibration": scored(shipped, X["calibration"])}
    ctx = Context(pool, primary, sc, X, y, ("global", "l2d"), delta, 100, seed,
                  X["train"].shape[1], lambda _m: None, 5_000_000, ship)

    def route(w, _dim, Xs, tau):
        s = scored(shipped, Xs)
        return s.label, s.score >= np.float32(tau)

    return [certify_alpha(ctx, a) for a in alphas], route

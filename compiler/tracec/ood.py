"""The out-of-distribution gate: inputs unlike the training traces defer.

A few unit-length prototypes per teacher label (spherical k-means of the
training embeddings of that label) and one cosine threshold.  A row is *in
distribution* when its cosine similarity to the nearest prototype is at least
the threshold; the policy handles a row only when it is in distribution and its
acceptor score clears tau (``tracec.export.compose``, ``fastpath``).

Both the prototypes and the threshold are functions of the **train split
only**: the threshold is the ``quantile`` of out-of-fold similarities (each
training row scored against prototypes fit on the other folds), so it reflects
how close *unseen* in-distribution rows come.  Calibration and shadow rows never
enter the gate, so the gate is one more fixed part of the policy and the
certificate on gated traffic is exact (docs/guarantee.md).  Cost per request:
one ``[M, D]`` mat-vec, independent of the number of traces.  Deterministic
given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracec.errors import ParameterError

METHOD = "prototype-cosine"
DEFAULT_PER_LABEL = 1
DEFAULT_QUANTILE = 0.005
_FOLDS = 3
_ITERATIONS = 30
_EPS = 1e-12


@dataclass(frozen=True)
class OODGate:
    """Prototypes (float32 ``[M, D]``, unit rows) and the float32 cosine threshold."""

    prototypes: np.ndarray
    threshold: np.float32
    quantile: float
    per_label: int
    method: str = METHOD

    def similarity(self, X: np.ndarray) -> np.ndarray:
        """Cosine to the nearest prototype, float32 (as the graph computes it, up to rounding)."""
        X = np.asarray(X, dtype=np.float32)
        norm = np.maximum(np.sqrt(np.einsum("ij,ij->i", X, X)), np.float32(_EPS))
        return (X @ self.prototypes.T).max(axis=1) / norm

    def inside(self, X: np.ndarray) -> np.ndarray:
        return self.similarity(X) >= self.threshold


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), _EPS)


def _spherical_kmeans(Z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``min(k, len(Z))`` unit centroids of unit rows ``Z`` (k-means++ seeding, cosine)."""
    k = min(k, len(Z))
    centers = [Z[int(rng.integers(len(Z)))]]
    for _ in range(1, k):
        gap = np.clip(1.0 - (Z @ np.array(centers).T).max(axis=1), 0.0, None)
        total = gap.sum()
        pick = int(rng.choice(len(Z), p=gap / total)) if total > 0 else int(rng.integers(len(Z)))
        centers.append(Z[pick])
    C = np.array(centers)
    for _ in range(_ITERATIONS):
        assign = (Z @ C.T).argmax(axis=1)
        new = C.copy()
        for j in range(k):
            s = Z[assign == j].sum(axis=0)
            n = np.linalg.norm(s)
            if n > _EPS:
                new[j] = s / n
        if np.array_equal(new, C):
            break
        C = new
    return C


def _prototypes(Z: np.ndarray, y: np.ndarray, per_label: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([_spherical_kmeans(Z[y == lab], per_label, rng)
                           for lab in np.unique(y)])


def fit_ood(X_train: np.ndarray, y_train: np.ndarray, *, seed: int,
            per_label: int = DEFAULT_PER_LABEL, quantile: float = DEFAULT_QUANTILE) -> OODGate:
    """Fit the gate on training rows only (see the module docstring)."""
    if not isinstance(per_label, (int, np.integer)) or isinstance(per_label, bool) or per_label < 1:
        raise ParameterError("ood_per_label", "compile", "a positive int", per_label)
    if not 0.0 <= float(quantile) < 1.0:
        raise ParameterError("ood_quantile", "compile", "a float in [0, 1)", quantile)
    Z, y = _unit(X_train), np.asarray(y_train)
    fold = np.random.default_rng(seed).permutation(len(Z)) % _FOLDS
    oof = np.full(len(Z), -1.0)
    for f in range(_FOLDS):
        fit, held = fold != f, fold == f
        P = _prototypes(Z[fit], y[fit], per_label, seed + 1 + f)
        oof[held] = (Z[held] @ P.T).max(axis=1)
    threshold = np.float32(np.quantile(oof, float(quantile), method="lower")) if quantile > 0 \
        else np.float32(-1.0)
    P = _prototypes(Z, y, per_label, seed).astype(np.float32)
    return OODGate(np.ascontiguousarray(P), threshold, float(quantile), int(per_label))


def manifest_record(gate: OODGate) -> dict:
    """What the manifest records about the gate (strings and ints only)."""
    from tracec.manifest import dec
    from tracec_runtime.canonical import f32_str

    return {"method": gate.method, "n_prototypes": int(gate.prototypes.shape[0]),
            "per_label": gate.per_label, "threshold": f32_str(float(gate.threshold)),
            "quantile": dec(gate.quantile), "fit_on": "train"}

"""What one stage of a policy graph is made of, and the checks shared by the
graph builder and its numpy reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tracec.errors import ParameterError

MODES = ("global", "l2d", "cascade", "closed")
STAGE_COUNTS = {"global": (1,), "l2d": (1,), "cascade": (2,), "closed": (1, 2)}


@dataclass(frozen=True)
class StageGraphSpec:
    """A fitted surrogate and its acceptor.

    ``classes[j]`` is the global label index of probability column ``j``;
    ``acceptor_coef`` (4,) and ``acceptor_intercept`` act on the raw features of
    ``tracec.features.acceptor_features`` (any scaling already folded in).
    """

    estimator: object
    classes: np.ndarray
    acceptor_coef: np.ndarray
    acceptor_intercept: float


def check_policy(stages: Sequence[StageGraphSpec], tau: float, mode: str,
                 owner: str) -> np.float32:
    """Validate mode, stage count, acceptor shapes and tau; return tau as float32."""
    if mode not in MODES:
        raise ParameterError("mode", owner, f"one of {', '.join(MODES)}", mode)
    if len(stages) not in STAGE_COUNTS[mode]:
        want = " or ".join(str(n) for n in STAGE_COUNTS[mode])
        raise ParameterError("stages", owner, f"a sequence of {want} stage(s) for mode {mode!r}",
                             f"{len(stages)} stage(s)")
    for i, st in enumerate(stages):
        coef = np.asarray(st.acceptor_coef, dtype=np.float64)
        if coef.shape != (4,) or not np.all(np.isfinite(coef)):
            raise ParameterError(f"stages[{i}].acceptor_coef", owner,
                                 "a finite array of shape (4,)", coef.tolist())
        if not np.isfinite(float(st.acceptor_intercept)):
            raise ParameterError(f"stages[{i}].acceptor_intercept", owner, "a finite float",
                                 st.acceptor_intercept)
        est_classes = np.asarray(getattr(st.estimator, "classes_", []))
        if not np.array_equal(np.asarray(st.classes), est_classes):
            raise ParameterError(f"stages[{i}].classes", owner, "equal to the estimator's "
                                 "classes_", np.asarray(st.classes).tolist())
    try:
        t32 = np.float32(tau)
    except (TypeError, ValueError):
        raise ParameterError("tau", owner, "a float32-representable number", tau) from None
    if np.isnan(t32) or float(t32) != float(tau):
        raise ParameterError("tau", owner, "a float32-representable number (inf allowed)", tau)
    return t32


def check_ood(ood, n_features: int, owner: str):
    """``None``, or ``(prototypes float32 [M, D], threshold float32)`` of an OOD gate (an object
    with ``prototypes`` and ``threshold``, e.g. ``tracec.ood.OODGate``)."""
    if ood is None:
        return None
    P = np.asarray(getattr(ood, "prototypes", None), dtype=np.float32)
    if P.ndim != 2 or P.shape[0] < 1 or P.shape[1] != n_features or not np.all(np.isfinite(P)):
        raise ParameterError("ood.prototypes", owner, f"a finite float32 array [M, {n_features}]",
                             f"shape {P.shape}")
    t = np.float32(getattr(ood, "threshold", np.nan))
    if not np.isfinite(t) or float(t) != float(ood.threshold):
        raise ParameterError("ood.threshold", owner, "a finite float32-representable number",
                             ood.threshold)
    return np.ascontiguousarray(P), t

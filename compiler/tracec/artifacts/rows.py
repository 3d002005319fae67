"""The artifacts' inputs: held-out rows as routed by the graph, and cost assumptions.

Also the small helpers every artifact shares (label names, example rows,
unit embeddings), so each artifact module holds one concept only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from tracec.errors import ParameterError, TracecError
from tracec.manifest import dec

#: Longest input text copied into an artifact (longer texts are cut and end with "…").
MAX_TEXT_CHARS = 1000
#: "Near chance": agreement at most this far above always answering the teacher's top label.
NEAR_CHANCE_MARGIN = 0.05


class ArtifactError(TracecError):
    """An artifact could not be built (a compiler bug: exit code 4)."""


class ArtifactInputError(ArtifactError):
    """The rows handed to ``build_artifacts`` are inconsistent."""

    def __init__(self, field: str, expected: str, found: str):
        self.field, self.expected, self.found = field, expected, found
        super().__init__(f"EvalRows.{field} must be {expected}. Got {found} instead.")


@dataclass(frozen=True)
class EvalRows:
    """Held-out rows (calibration + shadow) as routed by the exported graph through the runtime."""

    texts: Sequence[str]
    teacher: np.ndarray     # int64 index into labels; -1 if the teacher label never occurred in training
    pred: np.ndarray        # int64 surrogate label index
    handled: np.ndarray     # bool
    score: np.ndarray       # float32 acceptor score
    embeddings: np.ndarray  # float32 [N, D]
    labels: Sequence[str]


@dataclass(frozen=True)
class CostInputs:
    """What one teacher call costs and how many calls a day the deployment sees (either may be None)."""

    teacher_cost_per_1k: Optional[float] = None
    daily_volume: Optional[int] = None


@dataclass(frozen=True)
class Rows:
    """Validated, typed view of ``EvalRows`` plus derived arrays used by several artifacts."""

    texts: list[str]
    teacher: np.ndarray
    pred: np.ndarray
    handled: np.ndarray
    score: np.ndarray
    unit: np.ndarray        # float32 [N, D], each row L2-normalised (zero rows stay zero)
    labels: list[str]
    with_text: bool

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def agree(self) -> np.ndarray:
        return self.pred == self.teacher

    def name(self, k: int) -> Optional[str]:
        """Label name of index ``k``; None for -1 (a teacher label never seen in training)."""
        return self.labels[k] if k >= 0 else None

    def text(self, i: int) -> Optional[str]:
        if not self.with_text:
            return None
        t = self.texts[i]
        return t if len(t) <= MAX_TEXT_CHARS else t[:MAX_TEXT_CHARS - 1] + "…"

    def ref(self, i: int) -> dict:
        """One held-out row as an artifact example (text is null with --no-examples)."""
        return {"row": int(i), "text": self.text(i), "teacher": self.name(int(self.teacher[i])),
                "pred": self.name(int(self.pred[i])), "score": dec(float(self.score[i])),
                "handled": bool(self.handled[i]), "agrees": bool(self.agree[i])}

    def groups(self) -> list[tuple[Optional[str], np.ndarray]]:
        """(teacher label name, row indices) for every teacher label with rows; unseen (-1) last."""
        out = []
        for k in list(range(len(self.labels))) + [-1]:
            idx = np.flatnonzero(self.teacher == k)
            if len(idx):
                out.append((self.name(k), idx))
        return out


def rate(num: int, den: int) -> Optional[str]:
    """``num / den`` as a decimal string; None when ``den`` is 0."""
    return dec(num / den) if den else None


def majority_baseline(rows: Rows) -> tuple[Optional[str], float]:
    """The teacher's most frequent held-out label and its share (TA of always answering it)."""
    if rows.n == 0:
        return None, 0.0
    keys, counts = np.unique(rows.teacher, return_counts=True)
    k = int(np.argmax(counts))  # first of the largest: the lowest label index
    return rows.name(int(keys[k])), float(counts[k] / rows.n)


def validate(rows: EvalRows, no_examples: bool) -> Rows:
    n = len(rows.texts)
    labels = [str(x) for x in rows.labels]
    if not labels:
        raise ArtifactInputError("labels", "a non-empty list of label names", "an empty list")
    if any(not isinstance(t, str) for t in rows.texts):
        raise ArtifactInputError("texts", "a sequence of str", "a non-str element")
    arrays = {}
    for field, kind in (("teacher", "iu"), ("pred", "iu"), ("handled", "b"), ("score", "f")):
        arr = np.asarray(getattr(rows, field))
        if arr.shape != (n,) or arr.dtype.kind not in kind:
            raise ArtifactInputError(field, f"a 1-D array of {n} values of kind {kind!r}",
                                     f"shape {arr.shape} and dtype {arr.dtype}")
        arrays[field] = arr
    teacher = arrays["teacher"].astype(np.int64)
    pred = arrays["pred"].astype(np.int64)
    if n and (teacher.min() < -1 or teacher.max() >= len(labels)):
        raise ArtifactInputError("teacher", f"indices in [-1, {len(labels) - 1}]",
                                 f"values from {teacher.min()} to {teacher.max()}")
    if n and (pred.min() < 0 or pred.max() >= len(labels)):
        raise ArtifactInputError("pred", f"indices in [0, {len(labels) - 1}]",
                                 f"values from {pred.min()} to {pred.max()}")
    score = arrays["score"].astype(np.float64)
    if not np.all(np.isfinite(score)):
        raise ArtifactInputError("score", "finite everywhere", "non-finite values")
    emb = np.asarray(rows.embeddings)
    if emb.ndim != 2 or emb.shape[0] != n or emb.dtype.kind != "f":
        raise ArtifactInputError("embeddings", f"a float array of shape ({n}, D)",
                                 f"shape {emb.shape} and dtype {emb.dtype}")
    emb = emb.astype(np.float32)
    if not np.all(np.isfinite(emb)):
        raise ArtifactInputError("embeddings", "finite everywhere", "non-finite values")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = emb / np.where(norms > 0, norms, 1.0)
    return Rows(list(rows.texts), teacher, pred, arrays["handled"].astype(bool), score, unit,
                labels, not no_examples)


def validate_cost(cost: Optional[CostInputs]) -> CostInputs:
    if cost is None:
        return CostInputs()
    c = cost.teacher_cost_per_1k
    if c is not None and (isinstance(c, bool) or not isinstance(c, (int, float))
                          or not math.isfinite(c) or c < 0):
        raise ParameterError("teacher_cost_per_1k", "build_artifacts", "a finite number >= 0", c)
    v = cost.daily_volume
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
        raise ParameterError("daily_volume", "build_artifacts", "an int >= 0", v)
    return cost

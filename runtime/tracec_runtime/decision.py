"""Routing decisions: one row (:class:`Decision`) or a batch (:class:`BatchDecision`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

__all__ = ["Decision", "BatchDecision", "reason"]

CLOSED_REASON = "deferred: gate closed (bundle refused by the parity gate)"


@dataclass(frozen=True)
class Decision:
    """The routing decision for one embedding.

    ``label`` is the surrogate's answer when ``handled``; when deferred it is
    ``None``, or the fallback's return value if a fallback was given.
    ``surrogate_label`` is what the local graph would have answered either way.
    """

    label: Optional[str]
    handled: bool
    score: float
    reason: str
    surrogate_label: str


def _pair(score: float, tau: float) -> tuple[str, str]:
    """Score and tau with >= 3 decimals, more if needed so unequal values print differently."""
    for digits in range(3, 10):
        s, t = f"{score:.{digits}f}", f"{tau:.{digits}f}"
        if s != t or score == tau:
            return s, t
    return format(score, ".9g"), format(tau, ".9g")


def reason(handled: bool, score: float, tau: float, gate_open: bool) -> str:
    """Why a row was handled or deferred, e.g. ``"handled: score 0.912 >= tau 0.734"``."""
    if not gate_open:
        return CLOSED_REASON
    s, t = _pair(score, tau)
    op = ">=" if score >= tau else "<"
    return f"{'handled' if handled else 'deferred'}: score {s} {op} tau {t}"


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class BatchDecision:
    """Decisions for N embeddings, as arrays.

    ``label_index`` (int64) is the surrogate's answer for every row, handled or
    not; ``labels`` holds the label name for handled rows and ``None`` for
    deferred ones.  Arrays are read-only.
    """

    label_index: np.ndarray
    handled: np.ndarray
    score: np.ndarray
    labels: list
    label_names: tuple
    tau: float
    gate_open: bool

    @classmethod
    def build(cls, label_index: np.ndarray, handled: np.ndarray, score: np.ndarray,
              label_names: tuple, tau: float, gate_open: bool) -> "BatchDecision":
        labels = [label_names[k] if h else None
                  for k, h in zip(label_index.tolist(), handled.tolist())]
        return cls(_frozen(label_index), _frozen(handled), _frozen(score), labels,
                   tuple(label_names), tau, gate_open)

    def __len__(self) -> int:
        return int(self.handled.shape[0])

    def __getitem__(self, i: int) -> Decision:
        handled, score = bool(self.handled[i]), float(self.score[i])
        surrogate = self.label_names[int(self.label_index[i])]
        return Decision(surrogate if handled else None, handled, score,
                        reason(handled, score, self.tau, self.gate_open), surrogate)

    def __iter__(self) -> Iterator[Decision]:
        return (self[i] for i in range(len(self)))

    @property
    def coverage(self) -> float:
        """Fraction of rows handled locally (0.0 for an empty batch)."""
        return float(self.handled.mean()) if len(self) else 0.0

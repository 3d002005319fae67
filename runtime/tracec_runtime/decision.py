"""Routing decisions: one row (:class:`Decision`) or a batch (:class:`BatchDecision`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator, Optional

import numpy as np

__all__ = ["Decision", "BatchDecision", "reason"]

CLOSED_REASON = "deferred: gate closed (bundle refused by the parity gate)"
# Text-in routing (``Router.route_text``): a ``flag`` on the decision.  "empty" and
# "invalid_text" rows are always deferred; a "truncated" row is routed on its first
# max_tokens tokens, and its reason says so.
FLAG_REASONS = {
    "empty": "deferred: empty (the text is empty or only whitespace)",
    "invalid_text": "deferred: invalid_text (the string holds unpaired surrogates: not valid Unicode)",
}
TRUNCATED_NOTE = "; input truncated at the embedder's maximum sequence length (embedder.text.max_tokens)"
RULE_REASON = ("deferred: rule:never_handle (the surrogate's label is in the bundle's "
               "never_handle rule)")
OOD_REASON = "deferred: out_of_distribution (the input is unlike the compile-time traces)"


@dataclass(frozen=True, init=False)
class Decision:
    """The routing decision for one embedding.

    ``label`` is the surrogate's answer when ``handled``; when deferred it is
    ``None``, or the fallback's return value if a fallback was given.
    ``surrogate_label`` is what the local graph would have answered either way.
    ``reason`` is formatted from ``score``, ``tau`` and ``gate_open`` only when read.
    ``flag``: ``None``, ``"rule:never_handle"`` (a handled row deferred by the bundle's
    ``never_handle`` rule), or (text-in only) ``"empty"``, ``"invalid_text"``, ``"truncated"``.
    ``in_distribution`` is false when the bundle's out-of-distribution gate deferred the
    row (always true for bundles without a gate).
    """

    label: Optional[Any]
    handled: bool
    score: float
    surrogate_label: str
    tau: float
    gate_open: bool
    flag: Optional[str]
    in_distribution: bool

    def __init__(self, label: Optional[Any], handled: bool, score: float,
                 surrogate_label: str, tau: float, gate_open: bool, flag: Optional[str] = None,
                 in_distribution: bool = True):
        # Frozen, but built by filling __dict__ directly: about twice as fast as the
        # generated __init__ (one object.__setattr__ per field) on the routing hot path.
        d = self.__dict__
        d["label"], d["handled"], d["score"] = label, handled, score
        d["surrogate_label"], d["tau"], d["gate_open"] = surrogate_label, tau, gate_open
        d["flag"], d["in_distribution"] = flag, in_distribution

    @property
    def reason(self) -> str:
        """Why, e.g. ``"handled: score 0.912 >= tau 0.734"``."""
        return reason(self.handled, self.score, self.tau, self.gate_open, self.flag,
                      self.in_distribution)


def _pair(score: float, tau: float) -> tuple[str, str]:
    """Score and tau with >= 3 decimals, more if needed so unequal values print differently."""
    for digits in range(3, 10):
        s, t = f"{score:.{digits}f}", f"{tau:.{digits}f}"
        if s != t or score == tau:
            return s, t
    return format(score, ".9g"), format(tau, ".9g")


def reason(handled: bool, score: float, tau: float, gate_open: bool,
           flag: Optional[str] = None, in_distribution: bool = True) -> str:
    """Why a row was handled or deferred, e.g. ``"handled: score 0.912 >= tau 0.734"``."""
    if flag in FLAG_REASONS:
        return FLAG_REASONS[flag]
    if not gate_open:
        return CLOSED_REASON
    if not in_distribution:
        return OOD_REASON
    if flag == "rule:never_handle":
        return RULE_REASON
    s, t = _pair(score, tau)
    op = ">=" if score >= tau else "<"
    note = TRUNCATED_NOTE if flag == "truncated" else ""
    return f"{'handled' if handled else 'deferred'}: score {s} {op} tau {t}{note}"


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class BatchDecision:
    """Decisions for N embeddings, as arrays.

    ``label_index`` (int64) is the surrogate's answer for every row, handled or
    not; ``labels`` holds the label name for handled rows and ``None`` for
    deferred ones (built on first access).  Arrays are read-only.  ``flags``
    (text-in only) holds each row's :class:`Decision` flag, or is empty.
    ``in_distribution``
    is the out-of-distribution gate's flag per row, ``None`` for bundles without a gate.
    """

    label_index: np.ndarray
    handled: np.ndarray
    score: np.ndarray
    label_names: tuple
    tau: float
    gate_open: bool
    flags: tuple = ()
    in_distribution: Optional[np.ndarray] = None

    @classmethod
    def build(cls, label_index: np.ndarray, handled: np.ndarray, score: np.ndarray,
              label_names: tuple, tau: float, gate_open: bool,
              flags: tuple = (), in_distribution: Optional[np.ndarray] = None) -> "BatchDecision":
        return cls(_frozen(label_index), _frozen(handled), _frozen(score),
                   tuple(label_names), tau, gate_open, tuple(flags),
                   None if in_distribution is None else _frozen(in_distribution))

    @cached_property
    def labels(self) -> list:
        """Label name per row for handled rows, ``None`` for deferred ones."""
        names = self.label_names
        return [names[k] if h else None
                for k, h in zip(self.label_index.tolist(), self.handled.tolist())]

    def __len__(self) -> int:
        return int(self.handled.shape[0])

    def __getitem__(self, i: int) -> Decision:
        handled, score = bool(self.handled[i]), float(self.score[i])
        surrogate = self.label_names[int(self.label_index[i])]
        inside = True if self.in_distribution is None else bool(self.in_distribution[i])
        return Decision(surrogate if handled else None, handled, score, surrogate,
                        self.tau, self.gate_open, self.flags[i] if self.flags else None, inside)

    def __iter__(self) -> Iterator[Decision]:
        return (self[i] for i in range(len(self)))

    @property
    def ood_share(self) -> float:
        """Fraction of rows the out-of-distribution gate deferred (0.0 without a gate)."""
        if self.in_distribution is None or not len(self):
            return 0.0
        return float(1.0 - self.in_distribution.mean())

    @property
    def coverage(self) -> float:
        """Fraction of rows handled locally (0.0 for an empty batch)."""
        return float(self.handled.mean()) if len(self) else 0.0

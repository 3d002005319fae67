"""The one small IR every emitter reads: a policy of stages, each a model node + acceptor.

Built from verified bundle bytes only: the numpy fast path (``fastpath.json`` +
``fastpath.bin``, the exact reference of linear and MLP policies) or, when a
bundle has no fast path, the policy graph ``model.onnx`` (tree ensembles; see
``tracec.codegen.onnx_trees``).  Node kinds:

* ``dense``: layers ``(W [out, in], b [out])`` float32, hidden activation, output
  head (``softmax``, ``ovr``, ``logistic``); acceptor arithmetic as the fast path
  (features float32, logit and sigmoid float64).
* ``trees``: a flat tree ensemble (``BRANCH_LEQ``) summed in float32 in tree order,
  then ``NONE`` or ``SOFTMAX``; acceptor arithmetic as the ONNX graph (float32).

An emitter that meets a kind it does not know refuses (``UnsupportedStageError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = ["Dense", "Trees", "Stage", "Policy", "NODE_KINDS", "ACCEPTOR_PRECISION"]

NODE_KINDS = ("dense", "trees")
ACCEPTOR_PRECISION = {"dense": "f64", "trees": "f32"}


@dataclass(frozen=True)
class Dense:
    layers: tuple            # ((W float32 [out, in], b float32 [out]), ...)
    hidden: str              # relu | tanh | logistic | identity
    output: str              # softmax | ovr | logistic
    kind: str = field(default="dense", init=False)

    @property
    def n_outputs(self) -> int:
        return int(self.layers[-1][0].shape[0])


@dataclass(frozen=True)
class Trees:
    """Nodes of every tree back to back; a leaf has ``feature == -1`` and its weights at
    ``wclass[left:left + right]`` / ``wvalue[...]`` (column index, float32 weight)."""

    n_classes: int
    post: str                # NONE | SOFTMAX
    base: Optional[np.ndarray]   # float32 [K] added after the trees, or None
    roots: np.ndarray        # int32 [T]
    feature: np.ndarray      # int32 [M]
    threshold: np.ndarray    # float32 [M]
    left: np.ndarray         # int32 [M]  (true branch: x <= threshold)
    right: np.ndarray        # int32 [M]
    wclass: np.ndarray       # int32 [W]
    wvalue: np.ndarray       # float32 [W]
    kind: str = field(default="trees", init=False)


@dataclass(frozen=True)
class Stage:
    model: object            # Dense | Trees
    classes: np.ndarray      # int64 [K]: global label index of column j
    coef: np.ndarray         # float32 [4] over (top1, top2, margin, entropy)
    intercept: np.float32

    @property
    def precision(self) -> str:
        return ACCEPTOR_PRECISION[self.model.kind]


@dataclass(frozen=True)
class Policy:
    mode: str                # global | l2d | cascade | closed
    tau: np.float32
    dim: int
    labels: tuple            # label strings; index = global label index
    gate_open: bool
    stages: tuple            # 1 or 2 Stage
    source: str              # "fastpath" | "graph"
    bundle_digest: str       # sha256 of the bundle's signed envelope

    @property
    def defers_all(self) -> bool:
        return self.mode == "closed" or not self.gate_open

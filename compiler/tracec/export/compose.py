"""Compose stage graphs and the acceptor into the one policy graph of a bundle.

Input ``embedding`` float32 ``[N, D]``; outputs ``label`` int64 ``[N]``,
``score`` float32 ``[N]``, ``handled`` bool ``[N]`` (docs/bundle-format.md); with an
out-of-distribution gate (``tracec.ood``) also ``in_distribution`` bool ``[N]``, and
``handled`` is the policy's flag AND ``in_distribution``.
Each stage is exported by ``tracec.export.convert`` under its own prefix
(``s1_``, ``s2_``); the acceptor (features, MatMul, Add, Sigmoid) and the
routing (GreaterOrEqual, Max, Where) are plain ONNX nodes.  A cascade's score is
stage 1's when stage 1 clears tau (stage 2 then decides nothing, and the runtime
need not evaluate it), otherwise the larger of the two.  The bytes are a
function of the inputs only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tracec.errors import ExportError, ParameterError
from tracec.export.convert import INPUT_NAME, IR_VERSION, PRODUCER, TARGET_OPSETS, surrogate_to_onnx
from tracec.export.spec import StageGraphSpec, check_ood, check_policy
from tracec.features import PROB_FLOOR

DEFAULT_SIZE_BUDGET = 5_000_000
OUTPUTS = ("label", "score", "handled")
OOD_OUTPUT = "in_distribution"
OOD_EPS = 1e-12   # the norm floor: a zero embedding has similarity 0


def build_policy_graph(stages: Sequence[StageGraphSpec], *, n_features: int, tau: float,
                       mode: str, max_bytes: int = DEFAULT_SIZE_BUDGET, ood=None) -> bytes:
    """Serialised, checked ONNX policy graph; ``ExportError`` if larger than ``max_bytes``.

    ``ood``: an out-of-distribution gate (``prototypes``, ``threshold``) or None."""
    t32 = check_policy(stages, tau, mode, "build_policy_graph")
    if not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ParameterError("n_features", "build_policy_graph", "a positive int", n_features)
    gate = check_ood(ood, int(n_features), "build_policy_graph")
    n_labels = 1 + max(int(np.max(st.classes)) for st in stages)
    nodes, inits = [], []
    heads = []
    for i, st in enumerate(stages, start=1):
        prefix = f"s{i}_"
        sub = surrogate_to_onnx(st.estimator, int(n_features), n_labels, prefix)
        nodes += list(sub.graph.node)
        inits += list(sub.graph.initializer)
        n_cols = len(np.asarray(st.classes))
        heads.append(_acceptor_nodes(prefix, n_cols, st, nodes, inits))
    inits.append(numpy_helper.from_array(np.array(t32, dtype=np.float32), "tau"))
    _route(mode, heads, nodes, "handled" if gate is None else "policy_handled")
    outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
               helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]),
               helper.make_tensor_value_info("handled", TensorProto.BOOL, ["N"])]
    if gate is not None:
        _ood_nodes(*gate, nodes, inits)
        outputs.append(helper.make_tensor_value_info(OOD_OUTPUT, TensorProto.BOOL, ["N"]))
    graph = helper.make_graph(
        nodes, f"tracec_policy_{mode}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", int(n_features)])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v)
                                                    for d, v in sorted(TARGET_OPSETS.items())])
    model.ir_version = IR_VERSION
    model.producer_name, model.producer_version = PRODUCER
    data = model.SerializeToString()
    if len(data) > max_bytes:
        raise ExportError(f"The {mode} policy graph is {len(data)} bytes; the size budget is "
                          f"{max_bytes} bytes. Choose a smaller surrogate.")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ExportError(f"The composed {mode} policy graph failed onnx.checker: {exc}") from exc
    return data


def _const(name: str, value, dtype, inits: list) -> str:
    inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
    return name


def _acceptor_nodes(p: str, n_cols: int, st: StageGraphSpec, nodes: list,
                    inits: list) -> tuple[str, str]:
    """Append the acceptor of stage ``p``; return (label edge, score edge)."""
    n = helper.make_node
    probs = f"{p}probs"
    if n_cols == 1:   # features (p, 0, p, 0)
        pattern = _const(f"{p}single_pattern", [[1.0, 0.0, 1.0, 0.0]], np.float32, inits)
        nodes.append(n("Mul", [probs, pattern], [f"{p}features"], name=f"{p}features"))
    else:
        k2 = _const(f"{p}k2", [2], np.int64, inits)
        lo = _const(f"{p}floor", PROB_FLOOR, np.float32, inits)
        hi = _const(f"{p}one", 1.0, np.float32, inits)
        axis1 = _const(f"{p}axis1", [1], np.int64, inits)
        logk = _const(f"{p}log_k", np.log(n_cols), np.float32, inits)
        s0, s1, s2 = (_const(f"{p}at{j}", [j], np.int64, inits) for j in range(3))
        nodes += [
            n("TopK", [probs, k2], [f"{p}top", f"{p}top_idx"], name=f"{p}topk", axis=1,
              largest=1, sorted=1),
            n("Slice", [f"{p}top", s0, s1, axis1], [f"{p}top1"], name=f"{p}top1"),
            n("Slice", [f"{p}top", s1, s2, axis1], [f"{p}top2"], name=f"{p}top2"),
            n("Sub", [f"{p}top1", f"{p}top2"], [f"{p}margin"], name=f"{p}margin"),
            n("Clip", [probs, lo, hi], [f"{p}clipped"], name=f"{p}clip"),
            n("Log", [f"{p}clipped"], [f"{p}log"], name=f"{p}log"),
            n("Mul", [probs, f"{p}log"], [f"{p}plogp"], name=f"{p}plogp"),
            n("ReduceSum", [f"{p}plogp", axis1], [f"{p}sum_plogp"], name=f"{p}sum_plogp",
              keepdims=1),
            n("Neg", [f"{p}sum_plogp"], [f"{p}neg_entropy"], name=f"{p}neg_entropy"),
            n("Div", [f"{p}neg_entropy", logk], [f"{p}entropy"], name=f"{p}entropy"),
            n("Concat", [f"{p}top1", f"{p}top2", f"{p}margin", f"{p}entropy"],
              [f"{p}features"], name=f"{p}features", axis=1),
        ]
    coef = _const(f"{p}acceptor_coef", np.asarray(st.acceptor_coef, dtype=np.float64),
                  np.float32, inits)
    bias = _const(f"{p}acceptor_intercept", float(st.acceptor_intercept), np.float32, inits)
    nodes += [
        n("MatMul", [f"{p}features", coef], [f"{p}logit_w"], name=f"{p}logit_w"),
        n("Add", [f"{p}logit_w", bias], [f"{p}logit"], name=f"{p}logit"),
        n("Sigmoid", [f"{p}logit"], [f"{p}score"], name=f"{p}score"),
    ]
    return f"{p}label", f"{p}score"


def _ood_nodes(prototypes: np.ndarray, threshold: np.float32, nodes: list, inits: list) -> None:
    """Append the gate: cosine to the nearest prototype >= threshold, AND the policy's flag."""
    n = helper.make_node
    protos = _const("ood_prototypes_t", prototypes.T, np.float32, inits)
    eps = _const("ood_eps", OOD_EPS, np.float32, inits)
    thr = _const("ood_threshold", threshold, np.float32, inits)
    nodes += [
        n("MatMul", [INPUT_NAME, protos], ["ood_dots"], name="ood_dots"),
        n("ReduceMax", ["ood_dots"], ["ood_best"], name="ood_best", axes=[1], keepdims=0),
        n("ReduceL2", [INPUT_NAME], ["ood_norm"], name="ood_norm", axes=[1], keepdims=0),
        n("Max", ["ood_norm", eps], ["ood_norm_safe"], name="ood_norm_safe"),
        n("Div", ["ood_best", "ood_norm_safe"], ["ood_similarity"], name="ood_similarity"),
        n("GreaterOrEqual", ["ood_similarity", thr], [OOD_OUTPUT], name=OOD_OUTPUT),
        n("And", ["policy_handled", OOD_OUTPUT], ["handled"], name="handled"),
    ]


def _route(mode: str, heads: list[tuple[str, str]], nodes: list, handled: str) -> None:
    """Append the nodes writing ``label``, ``score`` and the policy's flag ``handled``."""
    n = helper.make_node
    if len(heads) == 1:
        (label, score), = heads
    else:
        (y1, s1), (y2, s2) = heads
        nodes += [n("GreaterOrEqual", [s1, "tau"], ["s1_handled"], name="s1_handled"),
                  n("Where", ["s1_handled", y1, y2], ["cascade_label"], name="cascade_label"),
                  n("Max", [s1, s2], ["either_score"], name="either_score"),
                  n("Where", ["s1_handled", s1, "either_score"], ["cascade_score"],
                    name="cascade_score")]
        label, score = "cascade_label", "cascade_score"
    nodes += [n("Identity", [label], ["label"], name="label"),
              n("Identity", [score], ["score"], name="score")]
    if mode in ("global", "closed"):
        flag = helper.make_tensor("flag", TensorProto.BOOL, [1], [mode == "global"])
        nodes += [n("Shape", ["score"], ["n_rows"], name="n_rows"),
                  n("ConstantOfShape", ["n_rows"], [handled], name=handled, value=flag)]
    else:
        nodes.append(n("GreaterOrEqual", ["score", "tau"], [handled], name=handled))

"""Fast-path bundles for the runtime tests, built here (not by the compiler).

:func:`policy_graph` writes the same policy as the compiler's composed graph
for linear softmax stages (MatMul + Add + Softmax, then the acceptor on
top-1, top-2, margin and normalised entropy, then the routing), in plain ONNX;
:func:`fastpath_files` writes ``fastpath.json`` + ``fastpath.bin`` for the
same weights, following ``tracec_runtime.fastpath_format``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tracec_runtime.canonical import canonical_file_bytes, f32_str
from tracec_runtime.envelope import seal

from .conftest import make_manifest

ALIGN = 64
FLOOR = 1e-12


@dataclass(frozen=True)
class LinearStage:
    """A softmax linear head (``weight`` [K, D], ``bias`` [K]) and its acceptor."""

    weight: np.ndarray
    bias: np.ndarray
    classes: np.ndarray
    coef: np.ndarray
    intercept: float


def random_stage(d: int, n_labels: int, seed: int, scale: float = 3.0) -> LinearStage:
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=scale, size=(n_labels, d)).astype(np.float32)
    b = rng.normal(scale=0.5, size=n_labels).astype(np.float32)
    coef = np.array([4.0, -2.0, 1.5, -3.0], np.float32)
    return LinearStage(w, b, np.arange(n_labels, dtype=np.int64), coef, 0.25)


def _acceptor(p: str, st: LinearStage, nodes: list, inits: list) -> tuple[str, str]:
    def const(name, value, dtype):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), p + name))
        return p + name

    n = helper.make_node
    wt = const("wt", st.weight.T, np.float32)
    b = const("b", st.bias, np.float32)
    cls = const("classes", st.classes, np.int64)
    k2, axis1 = const("k2", [2], np.int64), const("axis1", [1], np.int64)
    lo, hi = const("floor", FLOOR, np.float32), const("one", 1.0, np.float32)
    logk = const("log_k", np.log(len(st.classes)), np.float32)
    s0, s1, s2 = (const(f"at{j}", [j], np.int64) for j in range(3))
    coef, bias = const("coef", st.coef, np.float32), const("intercept", st.intercept, np.float32)
    nodes += [
        n("MatMul", ["embedding", wt], [p + "mm"]), n("Add", [p + "mm", b], [p + "logits"]),
        n("Softmax", [p + "logits"], [p + "probs"], axis=1),
        n("ArgMax", [p + "probs"], [p + "argmax"], axis=1, keepdims=0, select_last_index=0),
        n("Gather", [cls, p + "argmax"], [p + "label"], axis=0),
        n("TopK", [p + "probs", k2], [p + "top", p + "top_idx"], axis=1, largest=1, sorted=1),
        n("Slice", [p + "top", s0, s1, axis1], [p + "top1"]),
        n("Slice", [p + "top", s1, s2, axis1], [p + "top2"]),
        n("Sub", [p + "top1", p + "top2"], [p + "margin"]),
        n("Clip", [p + "probs", lo, hi], [p + "clipped"]),
        n("Log", [p + "clipped"], [p + "log"]),
        n("Mul", [p + "probs", p + "log"], [p + "plogp"]),
        n("ReduceSum", [p + "plogp", axis1], [p + "sum_plogp"], keepdims=1),
        n("Neg", [p + "sum_plogp"], [p + "neg_entropy"]),
        n("Div", [p + "neg_entropy", logk], [p + "entropy"]),
        n("Concat", [p + "top1", p + "top2", p + "margin", p + "entropy"], [p + "features"],
          axis=1),
        n("MatMul", [p + "features", coef], [p + "logit_w"]),
        n("Add", [p + "logit_w", bias], [p + "logit"]),
        n("Sigmoid", [p + "logit"], [p + "score"]),
    ]
    return p + "label", p + "score"


def policy_graph(stages: Sequence[LinearStage], tau: str, mode: str) -> bytes:
    """The ONNX policy graph (``embedding`` -> ``label``, ``score``, ``handled``)."""
    nodes, inits = [], [numpy_helper.from_array(np.array(np.float32(tau)), "tau")]
    heads = [_acceptor(f"s{i}_", st, nodes, inits) for i, st in enumerate(stages, 1)]
    n = helper.make_node
    if len(heads) == 1:
        (label, score), = heads
    else:
        (y1, s1), (y2, s2) = heads
        nodes += [n("GreaterOrEqual", [s1, "tau"], ["s1_handled"]),
                  n("Where", ["s1_handled", y1, y2], ["cascade_label"]),
                  n("Max", [s1, s2], ["either_score"]),
                  n("Where", ["s1_handled", s1, "either_score"], ["cascade_score"])]
        label, score = "cascade_label", "cascade_score"
    nodes += [n("Identity", [label], ["label"]), n("Identity", [score], ["score"])]
    if mode in ("global", "closed"):
        flag = helper.make_tensor("flag", TensorProto.BOOL, [1], [mode == "global"])
        nodes += [n("Shape", ["score"], ["n_rows"]),
                  n("ConstantOfShape", ["n_rows"], ["handled"], value=flag)]
    else:
        nodes.append(n("GreaterOrEqual", ["score", "tau"], ["handled"]))
    d = stages[0].weight.shape[1]
    graph = helper.make_graph(
        nodes, f"fixture_policy_{mode}",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", d])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info("handled", TensorProto.BOOL, ["N"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="tracec-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def fastpath_files(stages: Sequence[LinearStage], tau: str, mode: str) -> dict[str, bytes]:
    """``{"fastpath.json": ..., "fastpath.bin": ...}`` for the same policy."""
    blob, tensors, docs = bytearray(), {}, []

    def put(name: str, arr: np.ndarray, dtype: str) -> str:
        a = np.ascontiguousarray(arr, dtype=np.dtype(dtype))
        blob.extend(b"\0" * (-len(blob) % ALIGN))
        tensors[name] = {"dtype": dtype, "shape": list(a.shape), "offset": len(blob),
                         "length": a.nbytes}
        blob.extend(a.tobytes())
        return name

    for i, st in enumerate(stages):
        docs.append({"head": "linear", "output": "softmax",
                     "layers": [{"weight": put(f"s{i}.w", st.weight, "<f4"),
                                 "bias": put(f"s{i}.b", st.bias, "<f4")}],
                     "classes": put(f"s{i}.classes", st.classes, "<i8"),
                     "acceptor_coef": put(f"s{i}.coef", st.coef, "<f4"),
                     "acceptor_intercept": f32_str(st.intercept)})
    doc = {"format": "tracec-fastpath/1", "mode": mode, "tau": tau,
           "n_features": int(stages[0].weight.shape[1]), "stages": docs, "tensors": tensors}
    return {"fastpath.json": canonical_file_bytes(doc), "fastpath.bin": bytes(blob)}


IDENTICAL = {"present": True, "rows_checked": 500, "decision_mismatches": 0,
             "max_score_diff": "5.96046448e-08"}


def make_fastpath_bundle(root: Path, signing_key=None, *, stages: Sequence[LinearStage],
                         tau: str, mode: str = "l2d", fastpath: Optional[dict] = IDENTICAL,
                         with_files: bool = True, gate: str = "open",
                         labels: Optional[list] = None,
                         fast_files: Optional[dict] = None,
                         rules: Optional[dict] = None) -> Path:
    """A sealed bundle with ``model.onnx`` and (``with_files``) the fast-path files
    (``fast_files`` replaces them); ``fastpath`` is the manifest's record (``None``
    leaves the key out); ``rules`` is the manifest's ``rules`` record (compile --rules)."""
    files = {"model.onnx": policy_graph(stages, tau, mode)}
    if with_files:
        files.update(fast_files or fastpath_files(stages, tau, mode))
    n_labels = 1 + max(int(st.classes.max()) for st in stages)
    # As the compiler writes it: a global policy handles every row, policy.tau "-inf"
    # (the graph's and the fast path's own tau are then unused).
    manifest = make_manifest(files, gate=gate, tau="-inf" if mode == "global" else tau,
                             dimension=int(stages[0].weight.shape[1]),
                             labels=labels or [f"label_{k}" for k in range(n_labels)])
    if fastpath is not None:
        manifest["fastpath"] = fastpath
    if rules is not None:
        manifest["rules"] = rules
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "manifest.json").write_bytes(canonical_file_bytes(manifest))
    seal(root, signing_key)
    return root


__all__ = ["LinearStage", "random_stage", "policy_graph", "fastpath_files", "IDENTICAL",
           "make_fastpath_bundle"]

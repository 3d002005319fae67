"""A policy graph without a fast path -> IR, for tree-ensemble stages.

Each stage ``s{i}_`` of ``model.onnx`` must be exactly one
``TreeEnsembleClassifier`` on ``embedding`` (skl2onnx's export of the
compiler's tree candidates) followed by the composer's ArgMax/Gather and
acceptor nodes; anything else is refused with :class:`UnsupportedStageError`.
"""

from __future__ import annotations

import numpy as np

from tracec.codegen.errors import UnsupportedStageError
from tracec.codegen.ir import Stage, Trees

__all__ = ["policy_from_graph"]

_ROUTE_OPS = {"GreaterOrEqual", "Where", "Max", "Identity", "Shape", "ConstantOfShape"}


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _trees(node, k: int, where: str) -> Trees:
    a = _attrs(node)
    post = a.get("post_transform", b"NONE").decode()
    if post not in ("NONE", "SOFTMAX"):
        raise UnsupportedStageError(f"{where}.post_transform", "NONE or SOFTMAX", post)
    modes = [m.decode() for m in a["nodes_modes"]]
    bad = sorted(set(modes) - {"BRANCH_LEQ", "LEAF"})
    if bad:
        raise UnsupportedStageError(f"{where}.nodes_modes", "BRANCH_LEQ or LEAF", bad)
    if "nodes_values_as_tensor" in a or "class_weights_as_tensor" in a:
        raise UnsupportedStageError(where, "float (not tensor) attributes", "tensor attributes")
    keys = list(zip(a["nodes_treeids"], a["nodes_nodeids"]))
    index = {key: i for i, key in enumerate(keys)}
    m = len(keys)
    feature = np.array(a["nodes_featureids"], np.int32)
    threshold = np.array(a["nodes_values"], np.float32)
    left, right = np.zeros(m, np.int32), np.zeros(m, np.int32)
    leaf = np.array([md == "LEAF" for md in modes])
    for i, (t, _) in enumerate(keys):
        if not leaf[i]:
            left[i] = index[(t, a["nodes_truenodeids"][i])]
            right[i] = index[(t, a["nodes_falsenodeids"][i])]
    feature[leaf] = -1
    weights: dict[int, list] = {}
    for t, n, c, w in zip(a["class_treeids"], a["class_nodeids"], a["class_ids"],
                          a["class_weights"]):
        if not 0 <= c < k:
            raise UnsupportedStageError(f"{where}.class_ids", f"column indices in [0, {k})", c)
        weights.setdefault(index[(t, n)], []).append((c, w))
    wclass, wvalue = [], []
    for i in range(m):
        if leaf[i]:
            ws = weights.get(i, [])
            left[i], right[i] = len(wclass), len(ws)
            wclass += [c for c, _ in ws]
            wvalue += [w for _, w in ws]
    tree_ids = sorted(set(a["nodes_treeids"]))
    roots = np.array([index[(t, 0)] for t in tree_ids], np.int32)
    base = a.get("base_values")
    base = None if not base else np.array(base, np.float32)
    if base is not None and base.shape != (k,):
        raise UnsupportedStageError(f"{where}.base_values", f"{k} values", base.shape)
    return Trees(k, post, base, roots, feature, threshold, left, right,
                 np.array(wclass, np.int32), np.array(wvalue, np.float32))


def policy_from_graph(graph_bytes: bytes):
    """``(mode, tau float32, dimension, stages)`` of a tree-ensemble policy graph."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(graph_bytes)
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    dim = g.input[0].type.tensor_type.shape.dim[1].dim_value
    n_stages = 2 if "s2_classes" in inits else 1
    stages = []
    for i in range(1, n_stages + 1):
        p, where = f"s{i}_", f"model.onnx stage s{i}_"
        classes = np.asarray(inits[f"{p}classes"], np.int64)
        models = [n for n in g.node if any(o.startswith(p + "sk_") for o in n.output)]
        if len(models) != 1 or models[0].op_type != "TreeEnsembleClassifier" \
                or list(models[0].input) != [g.input[0].name]:
            raise UnsupportedStageError(f"{where} (no fast path in the bundle)",
                                        "one TreeEnsembleClassifier on the embedding",
                                        [n.op_type for n in models])
        tree = models[0]
        if list(_attrs(tree).get("classlabels_int64s", [])) != classes.tolist() \
                or len(classes) < 3:
            raise UnsupportedStageError(f"{where}.classlabels_int64s",
                                        "the stage's classes (K >= 3)", len(classes))
        stages.append(Stage(_trees(tree, len(classes), where), classes,
                            np.asarray(inits[f"{p}acceptor_coef"], np.float32).reshape(4),
                            np.float32(inits[f"{p}acceptor_intercept"])))
    stage_ops = {n.op_type for n in g.node if not n.name.startswith(("s1_", "s2_"))}
    if stage_ops - _ROUTE_OPS:
        raise UnsupportedStageError("model.onnx routing nodes", f"only {sorted(_ROUTE_OPS)}",
                                    sorted(stage_ops - _ROUTE_OPS))
    handled = next(n for n in g.node if "handled" in n.output)
    if handled.op_type == "ConstantOfShape":
        flag = bool(numpy_helper.to_array(handled.attribute[0].t).reshape(-1)[0])
        mode = "global" if flag else "closed"
    else:
        mode = "cascade" if n_stages == 2 else "l2d"
    if mode == "global" and n_stages == 2:
        raise UnsupportedStageError("model.onnx", "1 stage in a global policy", n_stages)
    tau = np.float32(inits["tau"])
    return mode, tau, int(dim), tuple(stages)

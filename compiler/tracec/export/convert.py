"""One fitted scikit-learn classifier -> one ONNX graph of its probabilities.

The graph reads ``embedding`` (float32 ``[N, D]``) and writes
``{prefix}probs`` (float32 ``[N, K_s]``, columns in ``estimator.classes_``
order) and ``{prefix}label`` (int64 ``[N]``, the global label index of the
first arg-max column).  Every other name in the graph carries the prefix, so
several stages can live in one graph.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from tracec.errors import ExportError
from tracec.export.shims import drop_zero_leaf_weights, hist_gb_export, ovr_log_proba, pin_opsets

INPUT_NAME = "embedding"
TARGET_OPSETS = {"": 17, "ai.onnx.ml": 3}   # pinned: onnxruntime 1.32 + skl2onnx 1.20
IR_VERSION = 8                              # the IR version of opset 17
PRODUCER = ("tracec", "1")                  # fixed: no tool versions or timestamps in the bytes


def global_classes(estimator, n_labels: int) -> np.ndarray:
    """``estimator.classes_`` as int64 global label indices; checked to be a sorted
    subset of ``arange(n_labels)``."""
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise ExportError(f"{type(estimator).__name__} is not fitted: it has no classes_.")
    arr = np.asarray(classes)
    ok = (arr.ndim == 1 and arr.size >= 1 and np.issubdtype(arr.dtype, np.integer)
          and bool(np.all(np.diff(arr) > 0)) and int(arr.min()) >= 0
          and int(arr.max()) < n_labels)
    if not ok:
        raise ExportError(f"The classes_ of {type(estimator).__name__} must be a sorted subset of "
                          f"the integers 0..{n_labels - 1}. Got {arr[:10].tolist()!r} instead.")
    return arr.astype(np.int64)


def surrogate_to_onnx(estimator, n_features: int, n_labels: int, prefix: str) -> onnx.ModelProto:
    """Export ``estimator`` (fitted, no ZipMap) as described in the module docstring."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    classes = global_classes(estimator, n_labels)
    if not prefix or not prefix.replace("_", "").isalnum():
        raise ExportError(f"The prefix of a stage graph must be a non-empty identifier. "
                          f"Got {prefix!r} instead.")
    final = _final_step(estimator)
    is_hgb = type(final).__name__ == "HistGradientBoostingClassifier"
    ovr_log = type(final).__name__ == "SGDClassifier" and final.loss == "log_loss"
    options = {type(final): {"zipmap": False, "raw_scores": True}} if ovr_log else {"zipmap": False}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with hist_gb_export() if is_hgb else contextlib.nullcontext():
                raw = to_onnx(estimator,
                              initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                              target_opset=dict(TARGET_OPSETS), options=options)
    except Exception as exc:  # skl2onnx raises many unrelated types
        raise ExportError(f"skl2onnx could not export {type(estimator).__name__}: "
                          f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    probs_name = _probabilities_output(raw, estimator, len(classes))
    return _finish(raw, probs_name, classes, prefix, ovr_log)


def _final_step(estimator):
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def _probabilities_output(model: onnx.ModelProto, estimator, n_cols: int) -> str:
    """The name of skl2onnx's probability output, checked to have ``n_cols`` columns."""
    outputs = {o.name: o for o in model.graph.output}
    if "probabilities" not in outputs:
        raise ExportError(f"The skl2onnx graph of {type(estimator).__name__} has outputs "
                          f"{sorted(outputs)}; expected one named 'probabilities'.")
    dims = outputs["probabilities"].type.tensor_type.shape.dim
    if len(dims) != 2 or dims[1].dim_value not in (0, n_cols):   # 0: not declared
        found = [d.dim_value or d.dim_param or "?" for d in dims]
        raise ExportError(f"The skl2onnx probabilities of {type(estimator).__name__} have shape "
                          f"{found}; expected [N, {n_cols}] (one column per class).")
    return "probabilities"


def _finish(raw: onnx.ModelProto, probs_name: str, classes: np.ndarray, prefix: str,
            ovr_log: bool) -> onnx.ModelProto:
    """Keep only the probability output, add the global label, pin opsets, prefix names."""
    g = compose.add_prefix_graph(raw.graph, "sk_", rename_inputs=False)  # no clash with ours
    probs_name = "sk_" + probs_name
    nodes = list(g.node)
    if ovr_log:
        probs_name = ovr_log_proba(nodes, probs_name)
    nodes += [
        helper.make_node("ArgMax", [probs_name], ["argmax"], name="argmax", axis=1, keepdims=0,
                         select_last_index=0),
        helper.make_node("Gather", ["classes", "argmax"], ["label"], name="label_gather", axis=0),
    ]
    nodes.append(helper.make_node("Identity", [probs_name], ["probs"], name="probs_identity"))
    initializers = list(g.initializer) + [numpy_helper.from_array(classes, "classes")]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", len(classes)]),
               helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])]
    nodes, initializers = _prune(nodes, initializers, {"probs", "label"})
    inp = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                        ["N", g.input[0].type.tensor_type.shape.dim[1].dim_value])
    graph = helper.make_graph(nodes, "stage", [inp], outputs, initializers)
    model = helper.make_model(graph, opset_imports=list(raw.opset_import))
    try:
        pin_opsets(model, TARGET_OPSETS)
    except ValueError as exc:
        raise ExportError(f"The exported stage graph cannot be pinned: {exc}.") from exc
    _pin(model)
    drop_zero_leaf_weights(model)
    return compose.add_prefix(model, prefix, rename_inputs=False)


def _pin(model: onnx.ModelProto) -> None:
    model.ir_version = IR_VERSION
    model.producer_name, model.producer_version = PRODUCER
    model.domain = ""
    model.model_version = 0
    model.doc_string = ""
    model.graph.doc_string = ""


def _prune(nodes: list, initializers: list, wanted: set[str]) -> tuple[list, list]:
    """Drop nodes (and initializers) that do not feed ``wanted``; order kept."""
    needed = set(wanted)
    keep = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    return keep, [t for t in initializers if t.name in needed]

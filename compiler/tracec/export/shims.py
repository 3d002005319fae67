"""Small, tested work-arounds for known skl2onnx 1.20 / onnx 1.23 traps.

* ``dedupe_opsets`` / ``pin_opsets``: skl2onnx writes the default-domain
  opset twice for pipelines and imports ``ai.onnx.ml`` 1 whatever the target.
  ``onnx.compose.merge_models`` copies every entry into the merged model and
  refuses to merge with a graph that imports the pinned versions ("different
  operator set ids for a given domain") until the imports are de-duplicated
  and pinned.
* ``hist_gb_export``: skl2onnx's HistGradientBoosting converter passes Python
  bools (and numpy uint8) as ``nodes_missing_value_tracks_true``, which onnx
  1.23 rejects ("Expected an int, got a boolean"); it also writes the float64
  split thresholds rounded to nearest float32, which sends a float32 input
  lying between the threshold and its rounding down the wrong branch.
* ``drop_zero_leaf_weights``: skl2onnx writes one class weight per class per
  leaf, zeros included (forests export to hundreds of MB); zeros add nothing.

* ``ovr_log_proba``: for a log-loss SGDClassifier skl2onnx computes
  ``sigmoid(s) / sum(sigmoid(s))`` with ``1 / (1 + exp(-s))``; in float32
  ``exp`` overflows once every score is below about -88, all sigmoids become
  0 and the graph answers a uniform distribution where scikit-learn (float64)
  does not.  We export the raw scores and compute the same quantity as
  ``softmax(-softplus(-s))`` (log-space, no overflow).

Isotonic calibration is never used: it does not export exactly.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import onnx
from onnx import helper

_TREE_CLASSIFIERS = ("TreeEnsembleClassifier",)


def dedupe_opsets(model: onnx.ModelProto) -> onnx.ModelProto:
    """One opset entry per domain (the highest version), sorted by domain; in place."""
    versions: dict[str, int] = {}
    for entry in model.opset_import:
        versions[entry.domain] = max(versions.get(entry.domain, 0), int(entry.version))
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(versions.items()))
    return model


def pin_opsets(model: onnx.ModelProto, target: dict[str, int]) -> onnx.ModelProto:
    """De-duplicate, then import exactly ``target`` (sorted by domain); in place.

    Raises ``ValueError`` if the model needs a domain or version beyond ``target``
    (raising a version is safe only upwards: the operators used keep their schema).
    """
    dedupe_opsets(model)
    for entry in model.opset_import:
        if entry.domain not in target or entry.version > target[entry.domain]:
            raise ValueError(f"the graph imports opset {entry.domain or 'ai.onnx'} "
                             f"{entry.version}; the pinned opsets are {target}")
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(target.items()))
    return model


@contextlib.contextmanager
def hist_gb_export() -> Iterator[None]:
    """While active, skl2onnx's tree ``add_node`` writes int missing-value flags and
    float32 thresholds t' with ``x <= t  <=>  x <= t'`` for every float32 x.

    Only wrap HistGradientBoosting conversions in it (other tree converters
    already adjust their thresholds).  Not thread-safe: it patches a module global.
    """
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def patched(attr_pairs, is_classifier, tree_id, tree_weight, node_id, feature_id, mode,
                value, *args, nodes_missing_value_tracks_true=0, **kwargs):
        if mode != "LEAF":
            value = float(float32_floor(float(value)))
        return original(attr_pairs, is_classifier, tree_id, tree_weight, node_id, feature_id,
                        mode, value, *args,
                        nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true),
                        **kwargs)

    tree_ensemble.add_node = patched
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def float32_floor(value: float) -> np.float32:
    """The largest float32 that is <= ``value``."""
    f = np.float32(value)
    if float(f) > value:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


def drop_zero_leaf_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove zero leaf class weights from every multi-class TreeEnsembleClassifier; in place.

    Exact: an absent (tree, leaf, class) entry contributes 0.  Every class id keeps at
    least one entry so the operator sees the same set of classes.
    """
    for node in model.graph.node:
        if node.op_type not in _TREE_CLASSIFIERS:
            continue
        attrs = {a.name: a for a in node.attribute}
        if "class_weights" not in attrs or _n_class_labels(attrs) <= 2:
            continue
        tree_ids = list(attrs["class_treeids"].ints)
        node_ids = list(attrs["class_nodeids"].ints)
        class_ids = list(attrs["class_ids"].ints)
        weights = list(attrs["class_weights"].floats)
        seen: set[int] = set()
        keep = []
        for i, (cid, w) in enumerate(zip(class_ids, weights)):
            if w != 0.0 or cid not in seen:
                keep.append(i)
                seen.add(cid)
        if len(keep) == len(weights):
            continue
        _set_ints(attrs["class_treeids"], [tree_ids[i] for i in keep])
        _set_ints(attrs["class_nodeids"], [node_ids[i] for i in keep])
        _set_ints(attrs["class_ids"], [class_ids[i] for i in keep])
        del attrs["class_weights"].floats[:]
        attrs["class_weights"].floats.extend(weights[i] for i in keep)
    return model


def _n_class_labels(attrs: dict) -> int:
    for name in ("classlabels_int64s", "classlabels_strings"):
        if name in attrs:
            a = attrs[name]
            return len(a.ints) if name.endswith("int64s") else len(a.strings)
    return 0


def _set_ints(attr: onnx.AttributeProto, values: list[int]) -> None:
    del attr.ints[:]
    attr.ints.extend(values)


def ovr_log_proba(nodes: list, scores: str) -> str:
    """Append ``softmax(-softplus(-scores))`` over axis 1; return the new edge name.

    Equal to one-vs-rest sigmoids normalised to sum 1.  skl2onnx's binary raw
    scores are the columns ``[-s, s]``, for which the same formula gives
    ``[1 - sigmoid(s), sigmoid(s)]``, scikit-learn's binary ``predict_proba``.
    """
    nodes += [
        helper.make_node("Neg", [scores], ["ovr_neg"], name="ovr_neg"),
        helper.make_node("Softplus", ["ovr_neg"], ["ovr_softplus"], name="ovr_softplus"),
        helper.make_node("Neg", ["ovr_softplus"], ["ovr_log_sigmoid"], name="ovr_log_sigmoid"),
        helper.make_node("Softmax", ["ovr_log_sigmoid"], ["ovr_probs"], name="ovr_probs", axis=1),
    ]
    return "ovr_probs"

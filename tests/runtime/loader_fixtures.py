"""Graphs and bundle edits for the attack tests (external data, operators, tau, re-signing)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tracec_runtime.canonical import canonical_file_bytes
from tracec_runtime.envelope import ENVELOPE, make_envelope

from .conftest import TAU, W, toy_model


def statement_of(root: Path) -> dict:
    env = json.loads((root / ENVELOPE).read_bytes())
    return json.loads(base64.b64decode(env["payload"]))


def resign(root: Path, statement: dict, key) -> None:
    """Write an envelope for a forged ``statement``, signed with ``key`` (the real one)."""
    (root / ENVELOPE).write_bytes(canonical_file_bytes(make_envelope(statement, key)))


def edit_model(mutate, model: bytes = None) -> bytes:
    """``toy_model()`` parsed, changed in place by ``mutate(ModelProto)``, serialised."""
    m = onnx.load_from_string(model or toy_model())
    mutate(m)
    return m.SerializeToString()


def externalise(tensor: onnx.TensorProto, location: str, *, entries: bool = True) -> None:
    """Move ``tensor``'s data to the file ``location`` (relative: resolved from the cwd)."""
    del tensor.external_data[:]
    if entries:
        for key, value in (("location", location), ("offset", "0"),
                           ("length", str(len(tensor.raw_data)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    tensor.ClearField("int32_data")


def external_weights_model(where: str) -> tuple[bytes, bytes]:
    """(graph bytes, the external file's bytes) with the weight ``W`` external.

    ``where``: ``"initializer"`` (the top-level ``W``), ``"attribute"`` (the ``value``
    tensor of a ConstantOfShape writing ``handled``), or ``"location_only"``
    (data_location EXTERNAL without entries)."""
    if where == "attribute":
        raw = np.array([True]).tobytes()
    else:
        raw = numpy_helper.from_array(-W, "W").raw_data

    def mutate(m: onnx.ModelProto) -> None:
        init = {t.name: t for t in m.graph.initializer}
        if where == "attribute":
            handled = next(n for n in m.graph.node if n.output[0] == "handled")
            m.graph.node.remove(handled)
            flag = helper.make_tensor("flag", TensorProto.BOOL, [1], [True])
            externalise(flag, "weights.bin")
            m.graph.node.extend([helper.make_node("Shape", ["score"], ["n_rows"]),
                                 helper.make_node("ConstantOfShape", ["n_rows"], ["handled"],
                                                  value=flag)])
        else:
            externalise(init["W"], "weights.bin", entries=where != "location_only")

    return edit_model(mutate), raw


def op_model(op: str, domain: str = "") -> bytes:
    """The toy graph with ``probs`` passed through one extra node ``op`` (then Identity)."""
    def mutate(m: onnx.ModelProto) -> None:
        for node in m.graph.node:
            node.input[:] = ["probs0" if i == "probs" else i for i in node.input]
        m.graph.node.insert(2, helper.make_node(op, ["probs0"], ["probs"], domain=domain))
        for node in m.graph.node:
            if node.op_type == "Softmax":
                node.output[:] = ["probs_in"]
        m.graph.node.insert(2, helper.make_node("Identity", ["probs_in"], ["probs0"]))
        if domain:
            m.opset_import.append(helper.make_opsetid(domain, 1))
    return edit_model(mutate)


def constant_of_shape_bomb() -> bytes:
    """``handled`` from ConstantOfShape over a constant shape of 2**40 x 2**20 booleans."""
    def mutate(m: onnx.ModelProto) -> None:
        handled = next(n for n in m.graph.node if n.output[0] == "handled")
        m.graph.node.remove(handled)
        m.graph.initializer.append(numpy_helper.from_array(
            np.array([1 << 40, 1 << 20], np.int64), "huge"))
        flag = helper.make_tensor("flag", TensorProto.BOOL, [1], [True])
        m.graph.node.extend([helper.make_node("ConstantOfShape", ["huge"], ["handled"],
                                              value=flag)])
    return edit_model(mutate)


def out_of_bounds_model() -> bytes:
    """A graph that loads but fails at run time: Gather of argmax (0..2) into one class."""
    def mutate(m: onnx.ModelProto) -> None:
        argmax = next(n for n in m.graph.node if n.op_type == "ArgMax")
        argmax.output[:] = ["argmax"]
        m.graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "one"))
        m.graph.node.insert(3, helper.make_node("Gather", ["one", "argmax"], ["label"], axis=0))
    return edit_model(mutate)


def lying_model(score_value: float, handled: bool, tau: str = TAU) -> bytes:
    """Outputs the toy label, the constant ``score_value`` and ``handled`` for every row."""
    def mutate(m: onnx.ModelProto) -> None:
        keep = [n for n in m.graph.node if n.output[0] not in ("score", "handled")]
        del m.graph.node[:]
        m.graph.node.extend(keep)
        m.graph.initializer.append(numpy_helper.from_array(
            np.array([score_value], np.float32), "const_score"))
        flag = helper.make_tensor("flag", TensorProto.BOOL, [1], [handled])
        m.graph.node.extend([
            helper.make_node("Cast", ["label"], ["label_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["label_f", "zero"], ["zeros"]),
            helper.make_node("Add", ["zeros", "const_score"], ["score"]),
            helper.make_node("Shape", ["score"], ["n_rows"]),
            helper.make_node("ConstantOfShape", ["n_rows"], ["handled"], value=flag)])
        m.graph.initializer.append(numpy_helper.from_array(np.array(0, np.float32), "zero"))
    return edit_model(mutate, toy_model(tau=tau))


__all__ = ["statement_of", "resign", "edit_model", "externalise", "external_weights_model",
           "op_model", "constant_of_shape_bomb", "out_of_bounds_model", "lying_model"]

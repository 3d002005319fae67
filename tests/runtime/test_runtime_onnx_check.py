"""The ONNX scan (tracec_runtime.onnx_check): protobuf edge cases and the operator set."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tracec_runtime.errors import ModelContractError
from tracec_runtime.limits import MAX_ONNX_DEPTH
from tracec_runtime.onnx_check import POLICY_OPS, check_onnx_bytes

from .conftest import toy_model
from .loader_fixtures import edit_model, external_weights_model, externalise


def test_toy_graph_scan():
    scan = check_onnx_bytes(toy_model(tau="0.25"), "m.onnx")
    assert ("", "MatMul") in scan.ops and scan.ops <= POLICY_OPS
    assert scan.scalar_f32("tau") == np.float32(0.25) and scan.scalar_f32("W") is None


@pytest.mark.parametrize("data, words", [
    (b"", "no graph"),
    (b"\x3a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "varint longer than 10 bytes"),
    (b"\x3a\x80", "truncated varint"),
    (b"\x3a\x10abc", "runs past its message"),
    (b"\x3b", "groups are not used"),
    (b"\x38\x01", "ModelProto.graph has wire type 0"),
    (b"\x00\x01", "field number 0"),
])
def test_malformed_protobuf(data, words):
    with pytest.raises(ModelContractError, match=words) as info:
        check_onnx_bytes(data, "x/model.onnx")
    assert "x/model.onnx: not a valid ONNX model" in str(info.value)


def test_a_second_graph_field_is_scanned_too():
    """Protobuf merges repeated occurrences of a message field: none may hide a tensor."""
    evil = external_weights_model("initializer")[0]
    extra = onnx.load_from_string(evil).graph.SerializeToString()
    data = toy_model() + b"\x3a" + _varint(len(extra)) + extra
    with pytest.raises(ModelContractError, match="external data"):
        check_onnx_bytes(data, "m.onnx")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _nested(depth: int, external: bool = False) -> bytes:
    """A graph with ``depth`` levels of If subgraphs (allowed_ops=None)."""
    def level(d: int) -> onnx.GraphProto:
        inits = [numpy_helper.from_array(np.ones(2, np.float32), f"c{d}")]
        if external and d == depth:
            externalise(inits[0], "x.bin")
        nodes = [helper.make_node("Identity", [f"c{d}"], [f"o{d}"])]
        if d < depth:
            sub = level(d + 1)
            nodes = [helper.make_node("If", ["cond"], [f"o{d}"], then_branch=sub, else_branch=sub)]
        return helper.make_graph(nodes, f"g{d}", [], [helper.make_tensor_value_info(
            f"o{d}", TensorProto.FLOAT, [2])], inits)
    return helper.make_model(level(0)).SerializeToString()


def test_subgraphs_are_scanned_and_bounded():
    check_onnx_bytes(_nested(3), "m.onnx", None)
    with pytest.raises(ModelContractError, match="external data"):
        check_onnx_bytes(_nested(3, external=True), "m.onnx", None)
    with pytest.raises(ModelContractError, match=f"deeper than {MAX_ONNX_DEPTH}"):
        check_onnx_bytes(_nested(MAX_ONNX_DEPTH + 1), "m.onnx", None)
    with pytest.raises(ModelContractError, match="operator 'If'"):
        check_onnx_bytes(_nested(1), "m.onnx")


@pytest.mark.parametrize("field", ["functions", "training_info"])
def test_functions_and_training_info_are_refused(field):
    def mutate(m):
        if field == "functions":
            m.functions.append(helper.make_function("local", "f", ["a"], ["b"],
                                                    [helper.make_node("Identity", ["a"], ["b"])],
                                                    [helper.make_opsetid("", 17)]))
        else:
            m.training_info.add().algorithm.CopyFrom(m.graph)
    with pytest.raises(ModelContractError, match=field.replace("_", " ").replace(
            "functions", "model-local functions")):
        check_onnx_bytes(edit_model(mutate), "m.onnx", None)


def test_allowed_ops_is_extendable_and_domains_normalised():
    def mutate(m):
        for node in m.graph.node:
            if node.op_type == "Softmax":
                node.domain = "ai.onnx"
    data = edit_model(mutate)
    check_onnx_bytes(data, "m.onnx")   # "ai.onnx" is the default domain ""
    with pytest.raises(ModelContractError, match="'MatMul'"):
        check_onnx_bytes(data, "m.onnx", POLICY_OPS - {("", "MatMul")})
    check_onnx_bytes(data, "m.onnx", [("ai.onnx", op) for _, op in POLICY_OPS])


def test_the_compiler_emits_only_policy_ops():
    """Every candidate of the pool (trees too, at K = 3 only: they are slow to export),
    K = 2 and 3, cascade (two stages, routing) and closed (ConstantOfShape) graphs."""
    pytest.importorskip("skl2onnx")
    from tracec.candidates import candidate_specs
    from tracec.export import StageGraphSpec, build_policy_graph

    rng = np.random.default_rng(0)
    used = set()
    for k in (2, 3):
        X, y = rng.normal(size=(90, 6)), np.arange(90) % k
        for spec in candidate_specs(include_trees=k == 3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = spec.make(0).fit(X, y)
            st = StageGraphSpec(est, est.classes_, np.array([1.0, 0.5, 0.2, -0.1]), 0.1)
            for mode, stages in (("cascade", [st, st]), ("closed", [st])):
                graph = build_policy_graph(stages, n_features=6, tau=0.5, mode=mode,
                                           max_bytes=1 << 30)
                used |= check_onnx_bytes(graph, f"{spec.name}/{mode}").ops
    assert used <= POLICY_OPS
    assert {("", "ConstantOfShape"), ("ai.onnx.ml", "TreeEnsembleClassifier")} <= used

"""A bounded scan of ONNX bytes before any onnxruntime session exists (no ``onnx`` package).

:func:`check_onnx_bytes` walks the protobuf wire format of a ``ModelProto``
(graph -> nodes -> attributes -> tensors and nested graphs) and refuses:

* any tensor whose data lives outside the file (``TensorProto.external_data``
  entries or ``data_location = EXTERNAL``): onnxruntime would read it from a
  path relative to the working directory, bytes no signature covers;
* any operator outside ``allowed_ops`` (``(domain, op_type)`` pairs, ``""`` =
  ``ai.onnx``; ``None`` checks no operator);
* a ``ConstantOfShape`` whose shape is not the output of a ``Shape`` node (its
  output is then as large as an existing tensor, never an attacker's number);
* model-local functions and training info (the compiler writes neither), and
  malformed or truncated protobuf, or graphs nested deeper than ``MAX_ONNX_DEPTH``.

Every protobuf occurrence is scanned (repeated singular fields are merged by
protobuf, so none may hide).  Problems are a ``ModelContractError`` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

import numpy as np

from tracec_runtime.errors import ModelContractError
from tracec_runtime.limits import MAX_ONNX_DEPTH

__all__ = ["POLICY_OPS", "OnnxScan", "check_onnx_bytes"]

# What tracec.export emits for every candidate of the pool, every mode and K = 2..5
# (collected by building the graphs; tests/runtime/test_runtime_onnx_check.py re-checks it).
POLICY_OPS = frozenset({("", op) for op in (
    "Add", "ArgMax", "Cast", "Clip", "Concat", "ConstantOfShape", "Div", "Gather",
    "GreaterOrEqual", "Identity", "Log", "MatMul", "Max", "Mul", "Neg", "ReduceSum", "Relu",
    "And", "ReduceL2", "ReduceMax",  # the OOD gate (export/compose.py _ood_nodes)
    "Shape", "Sigmoid", "Slice", "Softmax", "Softplus", "Sub", "Tanh", "TopK", "Where")}
    | {("ai.onnx.ml", op) for op in (
        "LinearClassifier", "Normalizer", "Scaler", "TreeEnsembleClassifier")})

_FLOAT, _EXTERNAL = 1, 1
# Field numbers (onnx/onnx.proto3).
_MODEL_GRAPH, _MODEL_TRAINING, _MODEL_FUNCTIONS = 7, 20, 25
_GRAPH_NODE, _GRAPH_NAME, _GRAPH_INIT, _GRAPH_SPARSE = 1, 2, 5, 15
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP, _NODE_ATTR, _NODE_DOMAIN = 1, 2, 3, 4, 5, 7
_ATTR_TENSORS = (5, 10)          # t, tensors
_ATTR_GRAPHS = (6, 11)           # g, graphs
_ATTR_SPARSE = (22, 23)          # sparse_tensor, sparse_tensors
_T_DIMS, _T_TYPE, _T_NAME, _T_RAW, _T_EXT, _T_LOC = 1, 2, 8, 9, 13, 14


class _Malformed(Exception):
    pass


@dataclass
class OnnxScan:
    """What the scan saw: operators used, and the top-level graph's float32 scalars."""

    ops: set = field(default_factory=set)
    scalars: dict = field(default_factory=dict)   # name -> np.float32 (top-level initializers)

    def scalar_f32(self, name: str) -> Optional[np.float32]:
        return self.scalars.get(name)


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    for _ in range(10):
        if pos >= end:
            raise _Malformed("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    raise _Malformed("varint longer than 10 bytes")


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, object]]:
    """``(field, wire type, value)``: an int (varint), ``(start, end)`` (bytes) or None."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise _Malformed("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield num, wire, value
            continue
        if wire == 2:
            n, pos = _varint(buf, pos, end)
            if n > end - pos:
                raise _Malformed("a length-delimited field runs past its message")
            yield num, wire, (pos, pos + n)
            pos += n
            continue
        size = {1: 8, 5: 4}.get(wire)
        if size is None:
            raise _Malformed(f"wire type {wire} (groups are not used by ONNX)")
        if size > end - pos:
            raise _Malformed("a fixed-size field runs past its message")
        yield num, wire, None
        pos += size


def _span(wire: int, value: object, what: str) -> tuple[int, int]:
    if wire != 2:
        raise _Malformed(f"{what} has wire type {wire}, not a message")
    return value  # type: ignore[return-value]


def _text(buf: memoryview, span: tuple[int, int]) -> str:
    try:
        return bytes(buf[span[0]:span[1]]).decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed("a string field is not UTF-8") from None


class _Scanner:
    def __init__(self, data: bytes, allowed: Optional[frozenset]):
        self.buf, self.allowed, self.scan = memoryview(data), allowed, OnnxScan()

    def model(self) -> None:
        graphs = 0
        for num, wire, value in _fields(self.buf, 0, len(self.buf)):
            if num == _MODEL_GRAPH:
                graphs += 1
                self.graph(_span(wire, value, "ModelProto.graph"), 1, "the main graph")
            elif num in (_MODEL_TRAINING, _MODEL_FUNCTIONS):
                what = "training info" if num == _MODEL_TRAINING else "model-local functions"
                raise ModelContractError(f"it holds {what}, which bundle graphs never use")
        if graphs == 0:
            raise _Malformed("no graph")

    def graph(self, span: tuple[int, int], depth: int, where: str) -> None:
        if depth > MAX_ONNX_DEPTH:
            raise ModelContractError(f"graphs nest deeper than {MAX_ONNX_DEPTH} levels")
        shapes, fills = set(), []
        for num, wire, value in _fields(self.buf, *span):
            if num == _GRAPH_NODE:
                op, inputs, outputs = self.node(_span(wire, value, "node"), depth, where)
                if op == ("", "Shape"):
                    shapes.update(outputs)
                elif op == ("", "ConstantOfShape"):
                    fills.append(inputs[:1])
            elif num == _GRAPH_INIT:
                self.tensor(_span(wire, value, "initializer"), f"initializer of {where}",
                            top=depth == 1)
            elif num == _GRAPH_SPARSE:
                self.sparse(_span(wire, value, "sparse_initializer"), where)
        for inputs in fills:
            if not inputs or inputs[0] not in shapes:
                raise ModelContractError(f"{where}: ConstantOfShape must take its shape from a "
                                         f"Shape node; found input {inputs[:1]!r}")

    def node(self, span, depth: int, where: str) -> tuple[tuple, list, list]:
        op_type = domain = name = ""
        inputs, outputs, attrs = [], [], []
        for num, wire, value in _fields(self.buf, *span):
            if wire != 2:
                continue
            if num == _NODE_OP:
                op_type = _text(self.buf, value)
            elif num == _NODE_DOMAIN:
                domain = _text(self.buf, value)
            elif num == _NODE_NAME:
                name = _text(self.buf, value)
            elif num == _NODE_INPUT:
                inputs.append(_text(self.buf, value))
            elif num == _NODE_OUTPUT:
                outputs.append(_text(self.buf, value))
            elif num == _NODE_ATTR:
                attrs.append(value)
        op = ("" if domain == "ai.onnx" else domain, op_type)
        label = f"node {name or op_type!r} of {where}"
        if self.allowed is not None and op not in self.allowed:
            shown = f"{op[0]}:{op[1]}" if op[0] else op[1]
            raise ModelContractError(f"{label} uses the operator {shown!r}, which is not one "
                                     f"the compiler emits (allowed: {_ops_text(self.allowed)})")
        self.scan.ops.add(op)
        for attr in attrs:
            self.attribute(attr, depth, label)
        return op, inputs, outputs

    def attribute(self, span, depth: int, where: str) -> None:
        for num, wire, value in _fields(self.buf, *span):
            if num in _ATTR_TENSORS:
                self.tensor(_span(wire, value, "attribute tensor"), f"attribute of {where}")
            elif num in _ATTR_GRAPHS:
                self.graph(_span(wire, value, "attribute graph"), depth + 1,
                           f"a subgraph of {where}")
            elif num in _ATTR_SPARSE:
                self.sparse(_span(wire, value, "attribute sparse tensor"), where)

    def sparse(self, span, where: str) -> None:
        for num, wire, value in _fields(self.buf, *span):
            if num in (1, 2):   # values, indices
                self.tensor(_span(wire, value, "sparse tensor part"), f"sparse tensor of {where}")

    def tensor(self, span, where: str, top: bool = False) -> None:
        name, external, dtype, dims, raw = "", None, 0, [], None
        for num, wire, value in _fields(self.buf, *span):
            if num == _T_EXT:
                external = self._location(value) if wire == 2 else "?"
            elif num == _T_LOC and (wire != 0 or value == _EXTERNAL):
                external = external or "?"
            elif num == _T_LOC and value != 0:
                raise _Malformed(f"data_location {value}")
            elif num == _T_NAME and wire == 2:
                name = _text(self.buf, value)
            elif top and num == _T_TYPE and wire == 0:
                dtype = value
            elif top and num == _T_DIMS:
                dims.append(value)
            elif top and num == _T_RAW and wire == 2:
                raw = bytes(self.buf[value[0]:value[1]])
        if external is not None:
            raise ModelContractError(f"tensor {name!r} ({where}) keeps its data outside the file "
                                     f"(external data, location {external!r}); bundle graphs "
                                     f"must be self-contained")
        if top and dtype == _FLOAT and not dims and raw is not None and len(raw) == 4:
            self.scan.scalars[name] = np.frombuffer(raw, dtype="<f4")[0]

    def _location(self, span) -> str:
        key = val = ""
        for num, wire, value in _fields(self.buf, *span):
            if wire == 2 and num == 1:
                key = _text(self.buf, value)
            elif wire == 2 and num == 2:
                val = _text(self.buf, value)
        return val if key == "location" else f"{key}={val}"


def _ops_text(ops: Iterable) -> str:
    return ", ".join(f"{d}:{o}" if d else o for d, o in sorted(ops))


def check_onnx_bytes(data: bytes, where: str,
                     allowed_ops: Optional[Iterable[tuple[str, str]]] = POLICY_OPS) -> OnnxScan:
    """Scan the ONNX ``data`` (``where`` names it in errors); return what was seen.

    ``allowed_ops``: ``(domain, op_type)`` pairs (``""`` for ``ai.onnx``), e.g.
    ``POLICY_OPS | {("", "Erf")}`` for another graph; ``None`` allows every operator
    (external data and structure are still checked).  ``ModelContractError`` otherwise.
    """
    allowed = None if allowed_ops is None else frozenset(
        ("" if d == "ai.onnx" else d, o) for d, o in allowed_ops)
    scanner = _Scanner(data, allowed)
    try:
        scanner.model()
    except _Malformed as exc:
        raise ModelContractError(f"{where}: not a valid ONNX model ({exc})") from None
    except ModelContractError as exc:
        raise ModelContractError(f"{where}: {exc}") from None
    except RecursionError:  # pragma: no cover - depth is bounded above
        raise ModelContractError(f"{where}: graphs nest too deeply") from None
    return scanner.scan

"""The packaged int8 graph, rewritten so that building its session needs less memory.

The packaged all-MiniLM-L6-v2 file stores every weight as ``Cast(int8) * scale``.
onnxruntime's constant folding turns each into an fp32 initializer when it
builds the session, keeping the Cast's fp32 output and the product alive at once:
the embedder's peak RSS was 305 MiB.  :func:`rewrite` changes two patterns:

* a table that only feeds a ``Gather`` (word and position embeddings, 30,522 x
  384 and 512 x 384, per-row scale ``[rows, 1]``) is gathered first and the
  selected rows dequantised per call:
  ``Gather(Cast(q) * s, ids) -> Cast(Gather(q, ids)) * Gather(s, ids)``;
  the 47 MB fp32 word table never exists;
* a weight with a per-column scale ``[1, N]`` (every MatMul) becomes one
  ``DequantizeLinear(q, s, axis=1)``, which constant folding turns into the
  same fp32 initializer in one step.  The runtime's session disables the QDQ
  fusions (``session.disable_quant_qdq``), which would otherwise turn it into
  ``MatMulNBits`` with int8 activations (median cosine 0.9998 to this graph).

Both compute ``float(q) * s`` for every element used, so the embeddings are
bit-identical to the packaged graph's (tests/test_minilm_graph.py).  The result
uses only Gather, Cast, Mul and DequantizeLinear, already in the runtime's
operator allow-list; it is the graph the compiler embeds with and the bundle
carries (its bytes are signed).  Deterministic: the same bytes in give the same
bytes out, and rewriting the result again changes nothing.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper, numpy_helper


def _consumers(graph) -> dict:
    out: dict = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _row_scale(init, rows: int) -> bool:
    return init.data_type == TensorProto.FLOAT and list(init.dims) == [rows, 1]


def _column_scale(init, columns: int) -> bool:
    return init.data_type == TensorProto.FLOAT and list(init.dims) == [1, columns]


def _dequantised(inits, producer, users, mul):
    """``(cast, q, s)`` when ``mul`` is ``Cast(q int8 initializer) * s initializer``."""
    cast = producer.get(mul.input[0]) if mul.op_type == "Mul" and mul.domain == "" else None
    if cast is None or cast.op_type != "Cast" or len(users.get(mul.input[0], [])) != 1:
        return None
    q, s = cast.input[0], mul.input[1]
    if q not in inits or inits[q].data_type != TensorProto.INT8 or s not in inits:
        return None
    return cast, inits[q], inits[s]


def rewrite(model: bytes) -> bytes:
    """``model`` with int8 tables gathered before dequantising and weights as DequantizeLinear."""
    proto = onnx.load_from_string(model)
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    users = _consumers(graph)
    replace, drop, scales, unused = {}, set(), [], set()
    for node in graph.node:
        if node.op_type == "Gather" and node.domain == "" and node.input[0] in producer:
            found = _dequantised(inits, producer, users, producer[node.input[0]])
            if (found is None or len(users[node.input[0]]) != 1
                    or any(a.name == "axis" and a.i != 0 for a in node.attribute)
                    or not _row_scale(found[2], found[1].dims[0])):
                continue
            cast, q, s = found
            ids, out, name = node.input[1], node.output[0], node.name
            replace[id(node)] = [
                helper.make_node("Gather", [q.name, ids], [f"{out}_q"], name=f"{name}_q", axis=0),
                helper.make_node("Gather", [s.name, ids], [f"{out}_scale"], name=f"{name}_s",
                                 axis=0),
                helper.make_node("Cast", [f"{out}_q"], [f"{out}_f"], name=f"{name}_f",
                                 to=TensorProto.FLOAT),
                helper.make_node("Mul", [f"{out}_f", f"{out}_scale"], [out], name=name)]
            drop |= {id(cast), id(producer[node.input[0]])}
    for mul in graph.node:
        found = None if id(mul) in drop else _dequantised(inits, producer, users, mul)
        if (found is None or len(found[1].dims) != 2
                or not _column_scale(found[2], found[1].dims[1])):
            continue
        cast, q, s = found
        column = numpy_helper.from_array(numpy_helper.to_array(s).reshape(-1), f"{s.name}_column")
        scales.append(column)
        unused |= {s.name} if len(users[s.name]) == 1 else set()
        replace[id(mul)] = [helper.make_node("DequantizeLinear", [q.name, column.name],
                                             [mul.output[0]], name=mul.name, axis=1)]
        drop.add(id(cast))
    nodes = []
    for node in graph.node:
        if id(node) not in drop:
            nodes.extend(replace.get(id(node), [node]))
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [i for i in graph.initializer if i.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept + scales)
    return proto.SerializeToString(deterministic=True)

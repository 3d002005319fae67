"""The packaged int8 graph, rewritten so its embedding tables stay int8 in memory.

The packaged all-MiniLM-L6-v2 file stores every weight as ``Cast(int8) * scale``.
onnxruntime's constant folding turns each into an fp32 initializer when it builds
the session; for the word-embedding table (30,522 x 384) that is 47 MB of fp32,
the largest part of the embedder's peak RSS.  :func:`gather_int8_tables` moves
the dequantisation of every table that only feeds a ``Gather`` after the gather:

    Gather(Cast(q) * s, ids)  ->  Cast(Gather(q, ids)) * Gather(s, ids)

with ``s`` a per-row scale ``[rows, 1]``.  Both sides compute the same product
of the same two float32 numbers for every selected element, so the embeddings
are bit-identical; only the rows a text uses are dequantised, per call.  The
MatMul weights are left to constant folding (dequantising them per call costs
several times the latency).  The rewritten graph uses only ``Gather``, ``Cast``
and ``Mul``, already in the runtime's operator allow-list, and it is the graph
the compiler embeds with and the bundle carries (its bytes are signed).
Deterministic: the same input bytes give the same output bytes.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def _consumers(graph) -> dict:
    out: dict = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _row_scale(init, rows: int) -> bool:
    return init.data_type == TensorProto.FLOAT and list(init.dims) == [rows, 1]


def gather_int8_tables(model: bytes) -> bytes:
    """``model`` with every ``Gather`` over a dequantised int8 table done on the int8 table."""
    proto = onnx.load_from_string(model)
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    users = _consumers(graph)
    replace, drop = {}, set()
    for gather in graph.node:
        table = gather.input[0] if gather.op_type == "Gather" and gather.domain == "" else None
        mul = producer.get(table)
        if (mul is None or mul.op_type != "Mul" or len(users.get(table, [])) != 1
                or any(a.name == "axis" and a.i != 0 for a in gather.attribute)):
            continue
        cast = producer.get(mul.input[0])
        q, s = (cast.input[0] if cast is not None else None), mul.input[1]
        if (cast is None or cast.op_type != "Cast" or len(users.get(mul.input[0], [])) != 1
                or q not in inits or inits[q].data_type != TensorProto.INT8
                or s not in inits or not _row_scale(inits[s], inits[q].dims[0])):
            continue
        ids, out = gather.input[1], gather.output[0]
        replace[id(gather)] = [
            helper.make_node("Gather", [q, ids], [f"{out}_q"], name=f"{gather.name}_q", axis=0),
            helper.make_node("Gather", [s, ids], [f"{out}_scale"], name=f"{gather.name}_s", axis=0),
            helper.make_node("Cast", [f"{out}_q"], [f"{out}_f"], name=f"{gather.name}_f",
                             to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{out}_f", f"{out}_scale"], [out], name=gather.name)]
        drop |= {id(cast), id(mul)}
    nodes = []
    for node in graph.node:
        if id(node) not in drop:
            nodes.extend(replace.get(id(node), [node]))
    del graph.node[:]
    graph.node.extend(nodes)
    return proto.SerializeToString(deterministic=True)

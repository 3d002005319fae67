"""The bundle's embedder graph (tracec.minilm_graph.rewrite) against the pinned packaged file.

The rewrite only moves the int8 dequantisation (after the embedding Gathers; one
DequantizeLinear per weight) so onnxruntime builds the session with less memory.
Through the runtime's own TextEmbedder it must give the pinned graph's embeddings
bit for bit, which also needs the session's ``session.disable_quant_qdq`` entry.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from conftest import REPO
from tracec import minilm
from tracec.minilm_graph import rewrite
from tracec_runtime.embedder import TextEmbedder
from tracec_runtime.embedder.fingerprint import CANARIES
from tracec_runtime.embedder.session import DISABLE_QDQ, EMBEDDER_OPS
from tracec_runtime.onnx_check import check_onnx_bytes


@pytest.fixture(scope="module")
def pinned() -> bytes:
    data = minilm._read(minilm.MODEL_PACKAGE, minilm.MODEL_FILE)
    assert data is not None
    return data


def _embedder(model: bytes) -> TextEmbedder:
    return TextEmbedder(model, minilm.packaged_files().tokenizer, max_tokens=minilm.MAX_TOKENS,
                        dimension=minilm.DIMENSION, where="model.onnx")


def test_rewritten_graph_embeds_bit_for_bit_like_the_pinned_file(pinned):
    holdout = (REPO / "examples" / "holdout.jsonl").read_text("utf-8").splitlines()
    texts = list(CANARIES) + [json.loads(line)["input"] for line in holdout[:150]]
    new = _embedder(minilm.packaged_files().model)
    assert new.session.get_session_options().get_session_config_entry(DISABLE_QDQ) == "1"
    X, flags = new.embed_many(texts)
    Y, flags_pinned = _embedder(pinned).embed_many(texts)
    assert flags == flags_pinned and "truncated" in flags
    np.testing.assert_array_equal(X, Y)


def test_rewrite_keeps_weights_int8_deterministic_and_allowed(pinned):
    out = minilm.packaged_files().model
    assert out != pinned and rewrite(pinned) == out and rewrite(out) == out
    check_onnx_bytes(out, "embedder/model.onnx", EMBEDDER_OPS)
    graph = onnx.load_from_string(out).graph
    int8 = {i.name for i in graph.initializer if i.data_type == TensorProto.INT8}
    consumers = {(n.op_type, i) for n in graph.node for i in n.input if i in int8}
    # every int8 weight is read by a Gather (2 tables) or a DequantizeLinear (36 MatMul weights),
    # none by the Cast that constant folding turned into a second fp32 copy
    assert {op for op, _ in consumers} == {"Gather", "DequantizeLinear"}
    assert len(int8) == len(consumers) == 38

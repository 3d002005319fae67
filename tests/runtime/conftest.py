"""Tiny bundles for the runtime tests, built here (not by the compiler).

The toy graph obeys the graph contract: ``embedding`` float32 [N, 4] ->
MatMul(W) -> Softmax -> ``label`` = ArgMax, ``score`` = the top-1 probability (TopK, ReduceSum),
``handled`` = score >= tau.  :func:`reference` is its numpy twin.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from tracec_runtime.canonical import canonical_file_bytes, f32_str
from tracec_runtime.envelope import MEDIA_TYPE, seal
from tracec_runtime.keys import generate_keypair

D = 4
LABELS = ["billing", "card", "refund"]
TAU = f32_str(0.6)
W = np.random.default_rng(7).normal(scale=2.0, size=(D, len(LABELS))).astype(np.float32)
FILES = ["artifacts/labels.json", "frontier.json", "manifest.json", "model.onnx"]


def toy_model(w: np.ndarray = W, tau: str = TAU, *, drop_output: Optional[str] = None) -> bytes:
    """The toy policy graph as ONNX bytes (``drop_output`` breaks the graph contract)."""
    out = {
        "label": helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        "score": helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]),
        "handled": helper.make_tensor_value_info("handled", TensorProto.BOOL, ["N"]),
    }
    nodes = [
        helper.make_node("MatMul", ["embedding", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        helper.make_node("ArgMax", ["probs"], ["label"], axis=1, keepdims=0),
        helper.make_node("TopK", ["probs", "k1"], ["top", "top_idx"], axis=1),
        helper.make_node("ReduceSum", ["top", "axis1"], ["score"], keepdims=0),
        helper.make_node("GreaterOrEqual", ["score", "tau"], ["handled"]),
    ]
    graph = helper.make_graph(
        nodes, "toy_policy",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", w.shape[0]])],
        [v for k, v in out.items() if k != drop_output],
        [numpy_helper.from_array(w, "W"),
         numpy_helper.from_array(np.array([1], np.int64), "k1"),
         numpy_helper.from_array(np.array([1], np.int64), "axis1"),
         numpy_helper.from_array(np.array(np.float32(tau)), "tau")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="tracec-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def reference(x: np.ndarray, w: np.ndarray = W, tau: str = TAU):
    """Numpy twin of :func:`toy_model`: ``(label, score, handled)``."""
    logits = np.asarray(x, np.float32) @ w
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    score = probs.max(axis=1).astype(np.float32)
    return logits.argmax(axis=1), score, score >= np.float32(tau)


def digest(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def make_manifest(files: dict[str, bytes], *, gate: str = "open", tau: str = TAU,
                  labels: Optional[list] = None, dimension: int = D) -> dict:
    """A manifest with the fields the runtime reads, plus a few realistic neighbours."""
    return {
        "format_version": "1", "media_type": MEDIA_TYPE,
        "policy": {"gate": gate, "family": "global", "alpha": "0.9", "delta": "0.05",
                   "tau": tau, "model_name": "toy", "stages": []},
        "labels": list(labels or LABELS),
        "embedder": {"id": "toy", "dimension": dimension, "normalization": "none"},
        "refusal": None if gate == "open" else {"reasons": ["toy refusal"]},
        "files": {name: digest(data) for name, data in sorted(files.items())},
    }


def make_bundle(root: Path, signing_key=None, *, model: Optional[bytes] = None,
                **manifest_kw) -> Path:
    """Write a toy bundle at ``root`` and seal it (unsigned when ``signing_key`` is None)."""
    files = {
        "model.onnx": model if model is not None else toy_model(tau=manifest_kw.get("tau", TAU)),
        "frontier.json": canonical_file_bytes({"alphas": [{"alpha": "0.9", "tau": TAU}]}),
        "artifacts/labels.json": canonical_file_bytes({"labels": LABELS}),
    }
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "manifest.json").write_bytes(canonical_file_bytes(make_manifest(files, **manifest_kw)))
    seal(root, signing_key)
    return root


@pytest.fixture(scope="session")
def keys():
    """The deployer's key pair ``(private_jwk, public_jwk)``."""
    return generate_keypair()


@pytest.fixture(scope="session")
def other_keys():
    """Somebody else's key pair."""
    return generate_keypair()


@pytest.fixture
def bundle(tmp_path, keys) -> Path:
    """A good, signed, open toy bundle."""
    return make_bundle(tmp_path / "bundle", keys[0])


@pytest.fixture
def closed_bundle(tmp_path, keys) -> Path:
    """A signed bundle refused by the gate; its graph would handle every row (tau 0)."""
    return make_bundle(tmp_path / "closed", keys[0], gate="closed", tau="0")


@pytest.fixture
def sessions(monkeypatch):
    """Record every onnxruntime.InferenceSession construction."""
    calls = []
    real = onnxruntime.InferenceSession

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording)
    return calls

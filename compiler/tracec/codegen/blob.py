"""Pack a :class:`~tracec.codegen.ir.Policy` into ``weights.bin`` and a layout for the templates.

Every tensor is little-endian float32 or int32 (4 bytes a value), each starting at a
64-byte boundary (zero padding between);
the layout gives each one's offset in 4-byte words, and the generated code
checks the file's length and SHA-256 before it reads a value.
"""

from __future__ import annotations

import hashlib

import numpy as np

from tracec.codegen.ir import OOD, Dense, Policy, Trees

__all__ = ["pack"]

ALIGN_WORDS = 16   # 64 bytes


class _Words:
    def __init__(self):
        self.parts, self.n = [], 0

    def add(self, arr, dtype: str) -> int:
        """Append ``arr`` at the next 64-byte boundary (aligned vector loads in C); its offset."""
        data = np.ascontiguousarray(arr, dtype=np.dtype(dtype)).reshape(-1)
        pad = -self.n % ALIGN_WORDS
        off = self.n + pad
        self.parts.append(b"\0" * (4 * pad) + data.tobytes())
        self.n = off + data.size
        return off


def _dense(m: Dense, w: _Words) -> dict:
    layers = [{"w": w.add(W, "<f4"), "b": w.add(b, "<f4"), "rows": int(W.shape[0]),
               "cols": int(W.shape[1])} for W, b in m.layers]
    return {"layers": layers, "hidden": m.hidden, "output": m.output,
            "width": max(max(l["rows"], l["cols"]) for l in layers), "n_out": m.n_outputs}


def _trees(m: Trees, w: _Words) -> dict:
    return {"post": m.post, "has_base": m.base is not None,
            "base": w.add(m.base, "<f4") if m.base is not None else 0,
            "n_trees": int(m.roots.size), "n_nodes": int(m.feature.size),
            "roots": w.add(m.roots, "<i4"), "feature": w.add(m.feature, "<i4"),
            "threshold": w.add(m.threshold, "<f4"), "left": w.add(m.left, "<i4"),
            "right": w.add(m.right, "<i4"), "wclass": w.add(m.wclass, "<i4"),
            "wvalue": w.add(m.wvalue, "<f4")}


def _ood(g: OOD, w: _Words, policy: Policy) -> dict:
    """The gate: prototypes [M, D] row-major, the threshold (float32 words), and a probe."""
    return {"kind": g.kind, "method": g.method, "m": int(g.prototypes.shape[0]),
            "prototypes": w.add(g.prototypes, "<f4"),
            "threshold": w.add(np.array([g.threshold], np.float32), "<f4"),
            "probe": _probe(g, policy)}


def _probe(g: OOD, policy: Policy) -> list:
    """Per global label, the prototype an emitter may try first (-1: none): the one closest
    in cosine to stage 1's weight row of the label (a linear stage 1 only).  Only a speed hint:
    a gate that tries it first and falls back to every prototype decides the same."""
    probe = [-1] * len(policy.labels)
    st = policy.stages[0]
    if st.model.kind != "dense" or len(st.model.layers) != 1 or st.model.output == "logistic":
        return probe
    W = np.asarray(st.model.layers[0][0], np.float64)
    W = W - W.mean(axis=0)
    W /= np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)
    P = np.asarray(g.prototypes, np.float64)
    best = np.argmax(np.einsum("cd,md->cm", W, P), axis=1)
    for col, label in enumerate(st.classes):
        probe[int(label)] = int(best[col])
    return probe


_KINDS = {"dense": _dense, "trees": _trees}


def pack(policy: Policy) -> tuple[bytes, dict]:
    """``(weights.bin bytes, layout)``; the layout is what every template renders from."""
    w = _Words()
    tau = w.add(np.array([policy.tau], np.float32), "<f4")
    stages = []
    for i, st in enumerate(policy.stages, start=1):
        k = int(st.classes.size)
        doc = {"index": i, "kind": st.model.kind, "precision": st.precision, "k": k,
               "classes": w.add(st.classes, "<i4"), "coef": w.add(st.coef, "<f4"),
               "intercept": w.add(np.array([st.intercept], np.float32), "<f4"),
               "log_k": w.add(np.array([np.log(k)], np.float32), "<f4")}
        doc.update(_KINDS[st.model.kind](st.model, w))
        stages.append(doc)
    ood = None if policy.ood is None else _ood(policy.ood, w, policy)
    data = b"".join(w.parts)
    layout = {"mode": policy.mode, "dim": policy.dim, "labels": list(policy.labels),
              "n_labels": len(policy.labels), "gate_open": policy.gate_open,
              "defers_all": policy.defers_all, "tau": tau, "stages": stages, "ood": ood,
              "kinds": sorted({s["kind"] for s in stages}),
              "max_k": max(s["k"] for s in stages),
              "max_width": max([s.get("width", s["k"]) for s in stages] + [policy.dim]),
              "words": w.n, "nbytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
              "bundle_digest": policy.bundle_digest, "source": policy.source}
    return data, layout

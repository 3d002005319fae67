"""Verified bundle -> :class:`~tracec.codegen.ir.Policy` (nothing is read but verified bytes)."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from tracec.codegen.errors import UnsupportedStageError
from tracec.codegen.ir import OOD, Dense, Policy, Stage
from tracec_runtime.canonical import strict_json
from tracec_runtime.engines import fastpath_problem, ood_threshold
from tracec_runtime.fastpath_format import FASTPATH_BIN, FASTPATH_JSON, parse_fastpath
from tracec_runtime.verify import MODEL, VerifiedBundle

__all__ = ["policy_of"]


def _manifest_policy(m: dict) -> tuple[tuple, int, bool]:
    labels, dim, gate = m.get("labels"), m.get("embedder", {}).get("dimension"), \
        m.get("policy", {}).get("gate")
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        raise UnsupportedStageError("manifest.labels", "a non-empty list of strings", labels)
    if type(dim) is not int or dim < 1:
        raise UnsupportedStageError("manifest.embedder.dimension", "a positive int", dim)
    if gate not in ("open", "closed"):
        raise UnsupportedStageError("manifest.policy.gate", "'open' or 'closed'", gate)
    never = (m.get("rules") or {}).get("never_handle") if isinstance(m.get("rules"), dict) else None
    if never:   # the runtime applies this rule after the engines; no emitter does (yet)
        raise UnsupportedStageError("manifest.rules.never_handle", "empty (the generated code "
                                    "does not apply routing rules)", never)
    return tuple(labels), dim, gate == "open"


# Everything of the fast-path format this generator emits code for.  A field or stage kind
# beyond these (a new gate method, say) is refused: the generated policy would ignore it.
_KNOWN_TOP = {"format", "mode", "tau", "n_features", "stages", "tensors", "ood"}
_KNOWN_STAGE = {"head", "output", "layers", "classes", "acceptor_coef", "acceptor_intercept",
                "hidden_activation"}
_KNOWN_HEADS = ("linear", "mlp")
_KNOWN_SPEC = {"mode", "tau", "n_features", "stages", "ood"}
_KNOWN_OOD = {"method", "prototypes", "threshold"}
_KNOWN_OOD_METHODS = ("prototype-cosine",)
_KNOWN_WEIGHTS = {"head", "output", "hidden", "layers", "classes", "acceptor_coef",
                  "acceptor_intercept"}


def _check_known(doc: object, spec: object) -> None:
    where = f"{FASTPATH_JSON}"
    extra = sorted(set(doc) - _KNOWN_TOP) if isinstance(doc, dict) else ["(not an object)"]
    if extra:
        raise UnsupportedStageError(f"{where} top-level fields", f"only {sorted(_KNOWN_TOP)}", extra)
    for i, st in enumerate(doc.get("stages", [])):
        if st.get("head") not in _KNOWN_HEADS:
            raise UnsupportedStageError(f"{where} $.stages[{i}].head", f"one of {list(_KNOWN_HEADS)}",
                                        st.get("head"))
        extra = sorted(set(st) - _KNOWN_STAGE)
        if extra:
            raise UnsupportedStageError(f"{where} $.stages[{i}] fields",
                                        f"only {sorted(_KNOWN_STAGE)}", extra)
    if "ood" in doc:
        gate = doc["ood"]
        extra = sorted(set(gate) - _KNOWN_OOD) if isinstance(gate, dict) else ["(not an object)"]
        if extra:
            raise UnsupportedStageError(f"{where} $.ood fields", f"only {sorted(_KNOWN_OOD)}", extra)
        if gate.get("method") not in _KNOWN_OOD_METHODS:
            raise UnsupportedStageError(f"{where} $.ood.method",
                                        f"one of {list(_KNOWN_OOD_METHODS)}", gate.get("method"))
        extra = sorted({f.name for f in dataclasses.fields(spec.ood)} - _KNOWN_OOD)
        if extra:
            raise UnsupportedStageError("the runtime's parsed $.ood", "only fields this "
                                        "generator knows", extra)
    fields = {f.name for f in dataclasses.fields(spec)}
    stage_fields = {f.name for s in spec.stages for f in dataclasses.fields(s)}
    if fields - _KNOWN_SPEC or stage_fields - _KNOWN_WEIGHTS:
        raise UnsupportedStageError("the runtime's parsed fast path",
                                    "only fields this generator knows",
                                    sorted((fields - _KNOWN_SPEC) | (stage_fields - _KNOWN_WEIGHTS)))


def _from_fastpath(files: dict) -> tuple[str, np.float32, int, tuple, object]:
    spec = parse_fastpath(files[FASTPATH_JSON], files[FASTPATH_BIN])   # validates everything
    _check_known(strict_json(files[FASTPATH_JSON], floats=False), spec)
    stages = tuple(
        Stage(Dense(tuple((np.asarray(w, np.float32), np.asarray(b, np.float32))
                          for w, b in s.layers), s.hidden, s.output),
              np.asarray(s.classes, np.int64), np.asarray(s.acceptor_coef, np.float32),
              np.float32(s.acceptor_intercept))
        for s in spec.stages)
    gate = None if spec.ood is None else OOD(np.asarray(spec.ood.prototypes, np.float32),
                                             np.float32(spec.ood.threshold), spec.ood.method)
    return spec.mode, spec.tau, spec.n_features, stages, gate


def _check_gate(manifest: dict, gate, where: str) -> None:
    """The engine's gate must be the one the signed manifest records (as the runtime checks)."""
    expected = ood_threshold(manifest, where)
    found = None if gate is None else gate.threshold
    if (expected is None) != (found is None) or (found is not None and found != expected):
        raise UnsupportedStageError(
            f"{where}: the out-of-distribution gate",
            f"the one manifest policy.ood records (threshold {expected})",
            "no gate" if found is None else f"threshold {found}")


def policy_of(verified: VerifiedBundle, envelope: bytes) -> Policy:
    """The policy of a verified bundle: from its fast path when the signed manifest marks
    it identical to the graph, else from the graph (tree ensembles only)."""
    m = verified.manifest
    labels, dim, gate_open = _manifest_policy(m)
    # The same choice the runtime makes (tracec_runtime.engines): the fast path only when the
    # signed manifest marks it identical to the graph; otherwise the graph is the reference.
    if fastpath_problem(m, verified.files, str(verified.path / "manifest.json")) is None:
        mode, tau, n_features, stages, gate = _from_fastpath(verified.files)
        source = "fastpath"
    else:
        from tracec.codegen.onnx_trees import policy_from_graph
        mode, tau, n_features, stages, gate = policy_from_graph(verified.files[MODEL])
        source = "graph"
    _check_gate(m, gate, str(verified.path / "manifest.json"))
    if n_features != dim:
        raise UnsupportedStageError("the policy's input dimension",
                                    f"manifest.embedder.dimension ({dim})", n_features)
    top = max(int(s.classes.max()) for s in stages)
    if top >= len(labels):
        raise UnsupportedStageError("the stages' label indices",
                                    f"below the number of labels ({len(labels)})", top)
    return Policy(mode, np.float32(tau), dim, labels, gate_open, stages, source,
                  hashlib.sha256(envelope).hexdigest(), gate)


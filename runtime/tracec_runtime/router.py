"""Route embeddings through a verified bundle: answer locally or defer to the LLM.

``Router.load`` verifies the bundle first and only then builds an
onnxruntime session from the exact ``model.onnx`` bytes that were hashed.
A closed bundle (``policy.gate == "closed"``) defers everything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from tracec_runtime.canonical import parse_f32
from tracec_runtime.decision import BatchDecision, Decision
from tracec_runtime.errors import ModelContractError, RouteInputError, UnsupportedFormatError
from tracec_runtime.verify import MANIFEST, MODEL, VerifiedBundle, verify_bundle

__all__ = ["Router", "Decision", "BatchDecision"]

OUTPUTS = {"label": "tensor(int64)", "score": "tensor(float)", "handled": "tensor(bool)"}


def _manifest_field(manifest: dict, dotted: str, where: str) -> Any:
    node: Any = manifest
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UnsupportedFormatError(f"{where}: missing field {dotted!r}")
        node = node[part]
    return node


def _policy(manifest: dict, where: str) -> tuple[tuple, int, np.float32, bool]:
    """``(labels, dimension, tau, gate_open)``, each validated against what the runtime needs."""
    labels = _manifest_field(manifest, "labels", where)
    if (not isinstance(labels, list) or not labels
            or not all(isinstance(x, str) for x in labels)):
        raise UnsupportedFormatError(f"{where}: field 'labels' must be a non-empty list of "
                                     f"strings; found {labels!r:.80}")
    dim = _manifest_field(manifest, "embedder.dimension", where)
    if type(dim) is not int or dim < 1:
        raise UnsupportedFormatError(f"{where}: field 'embedder.dimension' must be a positive "
                                     f"integer; found {dim!r}")
    raw_tau = _manifest_field(manifest, "policy.tau", where)
    try:
        tau = parse_f32(raw_tau)
    except ValueError as exc:
        raise UnsupportedFormatError(f"{where}: field 'policy.tau': {exc}") from None
    gate = _manifest_field(manifest, "policy.gate", where)
    if gate not in ("open", "closed"):
        raise UnsupportedFormatError(f"{where}: field 'policy.gate' must be 'open' or "
                                     f"'closed'; found {gate!r}")
    return tuple(labels), dim, tau, gate == "open"


def _session(model: bytes, dim: int, where: str):
    """An onnxruntime session over ``model`` (bytes), checked against the graph contract."""
    import onnxruntime  # deferred: importing tracec_runtime stays cheap

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.load_model_format", "ONNX")
    try:
        session = onnxruntime.InferenceSession(model, options,
                                               providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, unrelated exception types
        raise ModelContractError(f"{where}: onnxruntime {onnxruntime.__version__} cannot load "
                                 f"the graph: {exc}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelContractError(f"{where}: expected exactly one input (the embedding); "
                                 f"found {[i.name for i in inputs]}")
    inp = inputs[0]
    width = inp.shape[-1] if len(inp.shape) == 2 else None
    if inp.type != "tensor(float)" or len(inp.shape) != 2 or (isinstance(width, int)
                                                               and width != dim):
        raise ModelContractError(f"{where}: input {inp.name!r} must be float32 [N, {dim}] "
                                 f"(manifest.embedder.dimension); found {inp.type} {inp.shape}")
    found = {o.name: o.type for o in session.get_outputs()}
    for name, dtype in OUTPUTS.items():
        if found.get(name) != dtype:
            raise ModelContractError(f"{where}: expected output {name!r} of type {dtype}; "
                                     f"found {found.get(name, 'no such output')}")
    return session, inp.name


class Router:
    """A verified bundle, ready to route.  Build with :meth:`Router.load`.

    ``Router(verified)`` builds from a :class:`VerifiedBundle` (the output of
    ``verify_bundle``); nothing else is accepted.
    """

    def __init__(self, bundle: VerifiedBundle):
        if not isinstance(bundle, VerifiedBundle):
            raise TypeError(f"Router needs a VerifiedBundle from verify_bundle(); "
                            f"got {type(bundle).__name__} (use Router.load(path, public_key))")
        self._path, self._signer, self._manifest = bundle.path, bundle.signer, bundle.manifest
        where = str(bundle.path / MANIFEST)
        self._labels, self._dim, self._tau, self._gate_open = _policy(bundle.manifest, where)
        self._session, self._input = _session(bundle.files[MODEL], self._dim,
                                              str(bundle.path / MODEL))

    @classmethod
    def load(cls, path: Union[str, os.PathLike], public_key: object = None, *,
             allow_unsigned: bool = False) -> "Router":
        """Verify the bundle at ``path`` (see ``verify_bundle``), then build the router."""
        return cls(verify_bundle(path, public_key, allow_unsigned=allow_unsigned))

    # ---------------------------------------------------------------- properties
    @property
    def manifest(self) -> dict:
        """The verified manifest (treat as read-only)."""
        return self._manifest

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def tau(self) -> np.float32:
        return self._tau

    @property
    def gate_open(self) -> bool:
        return self._gate_open

    @property
    def input_name(self) -> str:
        return self._input

    @property
    def path(self) -> Path:
        return self._path

    @property
    def signer(self) -> Optional[str]:
        """Keyid whose signature verified, or ``None`` (loaded with ``allow_unsigned``)."""
        return self._signer

    def __repr__(self) -> str:
        gate = "open" if self._gate_open else "closed"
        return (f"Router({str(self._path)!r}, labels={len(self._labels)}, dimension={self._dim}, "
                f"tau={float(self._tau):.9g}, gate={gate})")

    # ------------------------------------------------------------------- routing
    def route(self, embedding: Any, fallback: Optional[Callable[[], Any]] = None) -> Decision:
        """Route one embedding ``(D,)``; ``fallback()`` is called once iff deferred."""
        if fallback is not None and not callable(fallback):
            raise TypeError(f"fallback must be a zero-argument callable; "
                            f"got {type(fallback).__name__}")
        x = self._matrix(embedding, single=True)
        decision = self._run(x)[0]
        if decision.handled or fallback is None:
            return decision
        return Decision(fallback(), False, decision.score, decision.reason,
                        decision.surrogate_label)

    def route_batch(self, matrix: Any) -> BatchDecision:
        """Route ``(N, D)`` embeddings (a single ``(D,)`` row is accepted too)."""
        return self._run(self._matrix(matrix, single=False))

    def _run(self, x: np.ndarray) -> BatchDecision:
        n, where = x.shape[0], self._path / MODEL
        if n == 0:
            label, score, handled = (np.zeros(0, np.int64), np.zeros(0, np.float32),
                                     np.zeros(0, bool))
        else:
            label, score, handled = self._session.run(list(OUTPUTS), {self._input: x})
            for name, arr, dtype in (("label", label, np.int64), ("score", score, np.float32),
                                     ("handled", handled, np.bool_)):
                if arr.shape != (n,) or arr.dtype != dtype:
                    raise ModelContractError(f"{where}: output {name!r} must be "
                                             f"{np.dtype(dtype)} [{n}]; found {arr.dtype} "
                                             f"{list(arr.shape)}")
            if label.min() < 0 or label.max() >= len(self._labels):
                raise ModelContractError(f"{where}: output 'label' must index manifest.labels "
                                         f"(0..{len(self._labels) - 1}); found "
                                         f"{int(label.min())}..{int(label.max())}")
        handled = handled & self._gate_open  # a closed bundle defers everything
        return BatchDecision.build(label, handled, score, self._labels, float(self._tau),
                                   self._gate_open)

    def _matrix(self, embedding: Any, single: bool) -> np.ndarray:
        """Validate and convert to float32 C-contiguous ``(N, D)``."""
        try:
            arr = np.asarray(embedding)
        except (ValueError, TypeError) as exc:
            raise RouteInputError(f"expected a numeric embedding array; could not convert "
                                  f"{type(embedding).__name__}: {exc}") from None
        if arr.dtype.kind not in "fiu":
            raise RouteInputError(f"expected a real floating-point embedding; got dtype "
                                  f"{arr.dtype}")
        d = self._dim
        shapes = f"({d},)" if single else f"({d},) or (N, {d})"
        if arr.ndim not in (1, 2) or (single and arr.ndim == 2 and arr.shape[0] != 1):
            hint = "; use route_batch for several rows" if single and arr.ndim == 2 else ""
            raise RouteInputError(f"expected an embedding of shape {shapes}; got shape "
                                  f"{arr.shape}{hint}")
        if arr.shape[-1] != d:
            raise RouteInputError(f"expected an embedding of dimension {d} "
                                  f"(manifest.embedder.dimension); got shape {arr.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.ascontiguousarray(arr.reshape(-1, d), dtype=np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            r, c = (int(v) for v in np.argwhere(bad)[0])
            value = float(arr.reshape(-1, d)[r, c])
            where = f"column {c}" if arr.ndim == 1 else f"row {r}, column {c}"
            extra = "" if not np.isfinite(value) else " (outside the float32 range)"
            raise RouteInputError(f"embedding {where} is {value!r}{extra}: expected finite "
                                  f"values ({int(bad.sum())} non-finite in total)")
        return x

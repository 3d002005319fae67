"""Route embeddings through a verified bundle: answer locally or defer to the LLM.

``Router.load`` verifies the bundle first and only then builds an engine from
the exact bytes that were hashed (``tracec_runtime.engines``): the numpy fast
path when the signed manifest marks it identical to the graph, onnxruntime
otherwise.  A closed bundle (``policy.gate == "closed"``) defers everything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from tracec_runtime.canonical import parse_f32
from tracec_runtime.decision import BatchDecision, Decision
from tracec_runtime.embedder import EMPTY, INVALID, load_text_embedder
from tracec_runtime.engines import select_engine
from tracec_runtime.rules import RULE_NEVER, apply_never, never_mask
from tracec_runtime.errors import (ModelContractError, RouteInputError,
                                   TextRoutingUnavailableError, UnsupportedFormatError)
from tracec_runtime.verify import MANIFEST, VerifiedBundle, verify_bundle

__all__ = ["Router", "Decision", "BatchDecision"]

_NDARRAY = np.ndarray
_F32 = np.dtype(np.float32)
_isfinite = np.isfinite


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


class Router:
    """A verified bundle, ready to route.  Build with :meth:`Router.load`.

    ``Router(verified)`` builds from a :class:`VerifiedBundle` (the output of
    ``verify_bundle``); nothing else is accepted.
    """

    def __init__(self, bundle: VerifiedBundle, engine: str = "auto"):
        if not isinstance(bundle, VerifiedBundle):
            raise TypeError(f"Router needs a VerifiedBundle from verify_bundle(); "
                            f"got {type(bundle).__name__} (use Router.load(path, public_key))")
        self._path, self._signer, self._manifest = bundle.path, bundle.signer, bundle.manifest
        where = str(bundle.path / MANIFEST)
        self._labels, self._dim, self._tau, self._gate_open = _policy(bundle.manifest, where)
        # A text-in bundle: its embedder, built from the verified bytes, fingerprint checked
        # (its manifest record is validated before any session exists).
        self._embedder = load_text_embedder(bundle.manifest, bundle.files, bundle.path,
                                            self._dim)
        self._engine = select_engine(engine, bundle.manifest, bundle.files, self._dim,
                                     len(self._labels), bundle.path, self._tau)
        self._run, self._run_one = self._engine.run, self._engine.run_one
        self._gated = bool(getattr(self._engine, "gated", False))
        self._shape1, self._tau_f = (self._dim,), float(self._tau)
        # manifest.rules.never_handle, enforced here for both engines alike
        self._never = never_mask(bundle.manifest, self._labels, where)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], public_key: object = None, *,
             allow_unsigned: bool = False, engine: str = "auto") -> "Router":
        """Verify the bundle at ``path`` (see ``verify_bundle``), then build the router.

        ``engine``: ``"auto"`` (numpy when the manifest marks the fast path identical to
        the graph, else onnxruntime), ``"onnxruntime"``, or ``"numpy"`` (raises
        ``EngineUnavailableError`` when the bundle has no such fast path).
        """
        return cls(verify_bundle(path, public_key, allow_unsigned=allow_unsigned), engine)

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
    def engine(self) -> str:
        """``"numpy"`` (the verified fast path) or ``"onnxruntime"`` (the graph)."""
        return self._engine.name

    @property
    def input_name(self) -> Optional[str]:
        """The graph's input name; ``None`` on the numpy engine (the graph is not parsed)."""
        return self._engine.input_name

    @property
    def text_in(self) -> bool:
        """True when the bundle carries its embedder (``route_text`` / ``route_texts`` work)."""
        return self._embedder is not None

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
                f"tau={self._tau_f:.9g}, gate={gate}, engine={self.engine})")

    # ------------------------------------------------------------------- routing
    def route(self, embedding: Any, fallback: Optional[Callable[[], Any]] = None) -> Decision:
        """Route one embedding ``(D,)``; ``fallback()`` is called once iff deferred."""
        if fallback is not None and not callable(fallback):
            raise TypeError(f"fallback must be a zero-argument callable; "
                            f"got {type(fallback).__name__}")
        x = embedding
        # Common case first: a float32 (D,) C-contiguous finite array is used as is;
        # anything else takes the full conversion and checks (typed errors) of _matrix.
        if not (type(x) is _NDARRAY and x.dtype is _F32 and x.shape == self._shape1
                and x.flags.c_contiguous and _isfinite(x).all()):
            x = self._matrix(embedding, single=True)[0]
        k, score, handled = self._run_one(x)
        if handled and not score >= self._tau_f and self._gate_open:
            handled = bool(self._handled(np.array([handled]), np.array([score], np.float32))[0])
        surrogate = self._labels[k]
        ruled = handled and self._never is not None and bool(self._never[k])
        if handled and self._gate_open and not ruled:
            return Decision(surrogate, True, score, surrogate, self._tau_f, self._gate_open)
        label = None if fallback is None else fallback()
        inside = self._engine.inside_one(x) if self._gated else True
        return Decision(label, False, score, surrogate, self._tau_f, self._gate_open,
                        RULE_NEVER if ruled else None, in_distribution=inside)

    def route_batch(self, matrix: Any) -> BatchDecision:
        """Route ``(N, D)`` embeddings (a single ``(D,)`` row is accepted too)."""
        label, score, handled, inside = self._rows(self._matrix(matrix, single=False))
        handled, flags = apply_never(self._never, label, handled, ())
        return BatchDecision.build(label, handled, score, self._labels, self._tau_f,
                                   self._gate_open, flags, in_distribution=inside)

    def _rows(self, X: np.ndarray) -> tuple:
        """``(label, score, handled, in_distribution or None)`` of validated rows; ``handled``
        checked against tau and cleared everywhere when the bundle's gate is closed."""
        inside = None
        if self._gated:
            label, score, handled, inside = self._engine.run_full(X)
        else:
            label, score, handled = self._run(X)
        if not self._gate_open:
            handled = np.zeros_like(handled)  # a closed bundle defers everything
        else:
            handled = self._handled(handled, score)
        return label, score, handled, inside

    # -------------------------------------------------------------- text routing
    def embed_texts(self, texts: Any) -> tuple[np.ndarray, list]:
        """``(X float32 [N, D], flags)`` with the bundle's embedder (see ``route_texts``)."""
        if self._embedder is None:
            raise TextRoutingUnavailableError(
                f"{self._path} is an embedding-in bundle (manifest.embedder.input is "
                f"'embedding'): it carries no embedder; route embeddings with route() / "
                f"route_batch(), or compile from text to get a text-in bundle")
        if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
            raise RouteInputError(f"expected a list of str; got {type(texts).__name__} "
                                  f"(use route_text for one text)")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise RouteInputError(f"text element {i} is a {type(text).__name__}: expected "
                                      f"a str (nothing in this batch was routed)")
        return self._embedder.embed_many(texts)

    def route_text(self, text: Any, fallback: Optional[Callable[[], Any]] = None) -> Decision:
        """Embed one text with the bundle's embedder and route it.

        Empty/whitespace-only text and text with unpaired surrogates are deferred
        (``flag`` "empty" / "invalid_text"); text past the embedder's maximum sequence
        length is routed on its first ``max_tokens`` tokens (``flag`` "truncated").
        """
        if not isinstance(text, str):
            raise RouteInputError(f"route_text expects a str; got {type(text).__name__}")
        if fallback is not None and not callable(fallback):
            raise TypeError(f"fallback must be a zero-argument callable; "
                            f"got {type(fallback).__name__}")
        X, flags = self.embed_texts([text])
        k, score, handled = self._run_one(X[0])
        if handled and not score >= self._tau_f and self._gate_open:
            handled = bool(self._handled(np.array([handled]), np.array([score], np.float32))[0])
        surrogate, flag = self._labels[k], flags[0]
        if (handled and self._gate_open and flag not in (EMPTY, INVALID)
                and self._never is not None and self._never[k]):
            handled, flag = False, RULE_NEVER
        if handled and self._gate_open and flag not in (EMPTY, INVALID):
            return Decision(surrogate, True, score, surrogate, self._tau_f, True, flag)
        label = None if fallback is None else fallback()
        inside = self._engine.inside_one(X[0]) if self._gated else True
        return Decision(label, False, score, surrogate, self._tau_f, self._gate_open, flag,
                        in_distribution=inside)

    def route_texts(self, texts: Any) -> BatchDecision:
        """Embed and route a list of texts; the same numbers as ``route_text`` row by row.

        A non-str element raises ``RouteInputError`` naming it (nothing is routed);
        empty and invalid texts are deferred rows with their ``flags``.
        """
        X, flags = self.embed_texts(texts)
        label, score, handled, inside = self._rows(X)
        handled = handled & ~np.fromiter((f in (EMPTY, INVALID) for f in flags), bool, len(flags))
        handled, flags = apply_never(self._never, label, handled, flags)
        return BatchDecision.build(label, handled, score, self._labels, self._tau_f,
                                   self._gate_open, tuple(flags), in_distribution=inside)

    def _handled(self, handled: np.ndarray, score: np.ndarray) -> np.ndarray:
        """The engine's ``handled`` and ``score >= tau`` (NaN compares false, so a NaN score
        never handles).  A row handled with a score below tau contradicts how the graph
        computes ``handled``: ``ModelContractError``.  Deferring more is allowed (fail closed)."""
        clears = score >= self._tau
        wrong = handled & ~clears & ~np.isnan(score)
        if wrong.any():
            i = int(np.argmax(wrong))
            raise ModelContractError(f"{self._path / 'model.onnx'} ({self.engine} engine): "
                                     f"output 'handled' must imply score >= tau "
                                     f"({float(self._tau):.9g}); row {i} has score "
                                     f"{float(score[i]):.9g} and handled=True")
        return handled & clears

    def _matrix(self, embedding: Any, single: bool) -> np.ndarray:
        """Validate and convert to float32 C-contiguous ``(N, D)``."""
        arr, d = embedding, self._dim
        if (type(arr) is _NDARRAY and arr.dtype is _F32 and arr.ndim == 2 and arr.shape[1] == d
                and not single and arr.flags.c_contiguous and _isfinite(arr).all()):
            return arr  # the common batch case: nothing to convert, nothing to report
        try:
            arr = np.asarray(embedding)
        except (ValueError, TypeError) as exc:
            raise RouteInputError(f"expected a numeric embedding array; could not convert "
                                  f"{type(embedding).__name__}: {exc}") from None
        if arr.dtype.kind not in "fiu":
            raise RouteInputError(f"expected a real floating-point embedding; got dtype "
                                  f"{arr.dtype}")
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

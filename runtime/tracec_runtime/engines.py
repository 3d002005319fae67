"""The two executors of a verified bundle's policy, and the choice between them.

``"onnxruntime"``: a session over the verified ``model.onnx`` bytes, checked
against the graph contract at load and its outputs checked on every call.

``"numpy"``: :class:`tracec_runtime.fastpath.FastPath` over the verified
``fastpath.json`` + ``fastpath.bin``, used only when the signed manifest
records that the compiler found identical decisions to the graph on every row
it checked (``manifest.fastpath``: ``present`` true, ``decision_mismatches``
0, ``rows_checked`` >= 1).  This engine never parses ``model.onnx`` and never
imports onnxruntime; the graph's bytes are still verified (digest and
signature) like every other file of the bundle.

Both engines give ``run(X[N, D]) -> (label int64[N], score float32[N],
handled bool[N])`` and ``run_one(x[D]) -> (label int, score float, handled
bool)`` on float32 C-contiguous input already validated by the router.  A
bundle whose manifest records an out-of-distribution gate (``policy.ood``) must
have it in the engine (the graph's ``in_distribution`` output, the fast path's
``$.ood`` stage) and vice versa; such engines are ``gated`` and also give
``run_full(X)`` (``run`` plus in_distribution bool[N]) and ``inside_one(x)``.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from tracec_runtime.canonical import parse_f32
from tracec_runtime.errors import (EngineError, EngineUnavailableError, GraphRunError,
                                   ModelContractError, UnsupportedFormatError)
from tracec_runtime.fastpath_format import FASTPATH_BIN, FASTPATH_JSON
from tracec_runtime.onnx_check import POLICY_OPS, check_onnx_bytes

__all__ = ["ENGINES", "EngineError", "EngineUnavailableError", "OnnxEngine", "NumpyEngine",
           "fastpath_problem", "select_engine"]

ENGINES = ("auto", "onnxruntime", "numpy")
OUTPUTS = {"label": "tensor(int64)", "score": "tensor(float)", "handled": "tensor(bool)"}
OOD_OUTPUT = "in_distribution"
_DTYPES = (np.dtype(np.int64), np.dtype(np.float32), np.dtype(np.bool_))


def fastpath_problem(manifest: dict, files: Mapping[str, bytes], where: str) -> Optional[str]:
    """``None`` when the bundle carries a fast path marked identical; otherwise why not.

    A record that is malformed, or that says ``present: true`` while the signed
    statement lacks the two files, is an ``UnsupportedFormatError`` (fail closed).
    """
    record = manifest.get("fastpath")
    if record is None:
        return f"{where} has no 'fastpath' record"
    if not isinstance(record, dict) or type(record.get("present")) is not bool:
        raise UnsupportedFormatError(f"{where}: field 'fastpath' must be an object with a "
                                     f"boolean 'present'; found {record!r:.120}")
    if not record["present"]:
        return f"{where}: fastpath.present is false"
    for field in ("rows_checked", "decision_mismatches"):
        value = record.get(field)
        if type(value) is not int or value < 0:
            raise UnsupportedFormatError(f"{where}: field 'fastpath.{field}' must be an "
                                         f"integer >= 0; found {value!r}")
    missing = [name for name in (FASTPATH_JSON, FASTPATH_BIN) if name not in files]
    if missing:
        raise UnsupportedFormatError(f"{where}: fastpath.present is true but the signed "
                                     f"statement does not list {' and '.join(missing)}")
    if record["decision_mismatches"] != 0:
        return (f"{where}: the compiler found {record['decision_mismatches']} decision "
                f"mismatch(es) between the fast path and the graph")
    if record["rows_checked"] < 1:
        return f"{where}: fastpath.rows_checked is 0 (the fast path was never checked)"
    return None


def ood_threshold(manifest: dict, where: str) -> Optional[np.float32]:
    """The gate's threshold from ``policy.ood`` (None: the bundle has no gate)."""
    record = (manifest.get("policy") or {}).get("ood")
    if record is None:
        return None
    try:
        return parse_f32(record["threshold"])
    except (TypeError, KeyError, ValueError) as exc:
        raise UnsupportedFormatError(f"{where}: field 'policy.ood' must be an object with a "
                                     f"float32 decimal 'threshold'; found {record!r:.120} "
                                     f"({exc})") from None


def _gate_mismatch(where: str, expected: Optional[np.float32], found: bool) -> None:
    if (expected is not None) != found:
        raise ModelContractError(
            f"{where}: manifest policy.ood says the bundle "
            f"{'has' if expected is not None else 'has no'} out-of-distribution gate; the "
            f"engine {'has one' if found else 'has none'}")


class NumpyEngine:
    """The fast path (numpy only), checked against the manifest's dimension and labels."""

    name = "numpy"
    input_name = None

    def __init__(self, files: Mapping[str, bytes], dim: int, n_labels: int, where: str,
                 tau: Optional[np.float32] = None, ood: Optional[np.float32] = None):
        from tracec_runtime.fastpath import FastPath  # deferred: the graph path never needs it

        fast = FastPath.from_bytes(files[FASTPATH_JSON], files[FASTPATH_BIN])
        _check_tau(fast.tau, tau, f"{where}: tau")
        if fast.n_features != dim:
            raise ModelContractError(f"{where}: n_features must be {dim} "
                                     f"(manifest.embedder.dimension); found {fast.n_features}")
        if fast.max_label >= n_labels:
            raise ModelContractError(f"{where}: classes must index manifest.labels "
                                     f"(0..{n_labels - 1}); found label {fast.max_label}")
        _gate_mismatch(where, ood, fast.gated)
        if ood is not None and fast.ood_threshold != ood:
            raise ModelContractError(f"{where}: $.ood.threshold must be {ood} (manifest "
                                     f"policy.ood.threshold); found {fast.ood_threshold}")
        self.fastpath, self.gated = fast, fast.gated
        self.run, self.run_one = fast.run, fast.run_one  # bound once: no per-call lookup
        self.run_full, self.inside_one = fast.run_full, fast.inside_one


class OnnxEngine:
    """An onnxruntime session over ``model.onnx``, checked against the graph contract."""

    name = "onnxruntime"

    def __init__(self, model: bytes, dim: int, n_labels: int, where: str,
                 tau: Optional[np.float32] = None, ood: Optional[np.float32] = None,
                 allowed_ops=POLICY_OPS):
        scan = check_onnx_bytes(model, where, allowed_ops)  # before any session exists
        if tau is not None and np.isfinite(tau):
            _check_tau(scan.scalar_f32("tau"), tau, f"{where}: the initializer 'tau'")
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
            raise ModelContractError(f"{where}: onnxruntime {onnxruntime.__version__} cannot "
                                     f"load the graph: {exc}") from None
        self.input_name = _check_contract(session, dim, where)
        self.gated = any(o.name == OOD_OUTPUT for o in session.get_outputs())
        _gate_mismatch(where, ood, self.gated)
        self.session, self._dim, self._n, self._where = session, dim, n_labels, where
        self._outputs = list(OUTPUTS)
        # The session's compiled core skips the Python wrapper's per-call checks (input
        # names, OrtValue ownership, graph capture), none of which apply to our one fixed
        # float32 input; the public run() is the fallback.
        core = getattr(session, "_sess", None)
        self._call = core.run if callable(getattr(core, "run", None)) else session.run

    def _failed(self, exc: Exception) -> GraphRunError:
        return GraphRunError(f"{self._where}: the graph failed while running "
                             f"({type(exc).__name__}: {str(exc)[:300]})")

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = x.shape[0]
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, bool)
        try:
            outs = self._call(self._outputs, {self.input_name: x}, None)
        except Exception as exc:  # onnxruntime's own types (Fail, RuntimeException, ...)
            raise self._failed(exc) from None
        self._check(outs, n)
        return outs[0], outs[1], outs[2]

    def run_full(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = x.shape[0]
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, bool), \
                np.zeros(0, bool)
        try:
            outs = self._call(self._outputs + [OOD_OUTPUT], {self.input_name: x}, None)
        except Exception as exc:  # onnxruntime's own types
            raise self._failed(exc) from None
        self._check(outs, n)
        return outs[0], outs[1], outs[2], outs[3]

    def inside_one(self, x: np.ndarray) -> bool:
        try:
            outs = self._call([OOD_OUTPUT], {self.input_name: x.reshape(1, self._dim)}, None)
        except Exception as exc:  # onnxruntime's own types
            raise self._failed(exc) from None
        self._check([None, None, None, outs[0]], 1, start=3)
        return bool(outs[0].item())

    def run_one(self, x: np.ndarray) -> tuple[int, float, bool]:
        try:
            outs = self._call(self._outputs, {self.input_name: x.reshape(1, self._dim)}, None)
        except Exception as exc:
            raise self._failed(exc) from None
        label, score, handled = outs
        if (label.dtype is not _DTYPES[0] or score.dtype is not _DTYPES[1]
                or handled.dtype is not _DTYPES[2] or label.shape != (1,)
                or score.shape != (1,) or handled.shape != (1,)):
            self._check(outs, 1)
        k = label.item()
        if not 0 <= k < self._n:
            self._check(outs, 1)
        return k, score.item(), handled.item()

    def _check(self, outs: list, n: int, start: int = 0) -> None:
        """Shapes, dtypes and label range of the graph's outputs (``ModelContractError``)."""
        names, dtypes = list(OUTPUTS) + [OOD_OUTPUT], _DTYPES + (np.dtype(np.bool_),)
        for name, arr, dtype in list(zip(names, outs, dtypes))[start:]:
            if arr.shape != (n,) or arr.dtype != dtype:
                raise ModelContractError(f"{self._where}: output {name!r} must be {dtype} [{n}]; "
                                         f"found {arr.dtype} {list(arr.shape)}")
        if start:
            return
        label = outs[0]
        if label.min() < 0 or label.max() >= self._n:
            raise ModelContractError(f"{self._where}: output 'label' must index manifest.labels "
                                     f"(0..{self._n - 1}); found "
                                     f"{int(label.min())}..{int(label.max())}")


def _check_tau(found: Optional[np.float32], tau: Optional[np.float32], what: str) -> None:
    """``found`` (the executor's threshold) must equal ``policy.tau`` (when finite)."""
    if tau is None or not np.isfinite(tau):
        return  # -inf: global (every row); inf: nothing certified (closed)
    if found is None or np.float32(found) != tau:
        shown = "missing (no float32 scalar)" if found is None else format(float(found), ".9g")
        raise ModelContractError(f"{what} must equal manifest policy.tau "
                                 f"{float(tau):.9g}; found {shown}")


def _check_contract(session, dim: int, where: str) -> str:
    """The session's one input name, after checking inputs and outputs against the contract."""
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
    expected = dict(OUTPUTS, **({OOD_OUTPUT: "tensor(bool)"} if OOD_OUTPUT in found else {}))
    for name, dtype in expected.items():
        if found.get(name) != dtype:
            raise ModelContractError(f"{where}: expected output {name!r} of type {dtype}; "
                                     f"found {found.get(name, 'no such output')}")
    return inp.name


def select_engine(engine: str, manifest: dict, files: Mapping[str, bytes], dim: int,
                  n_labels: int, root, tau: Optional[np.float32] = None
                  ) -> "OnnxEngine | NumpyEngine":
    """Build the engine ``engine`` asks for (``"auto"``: numpy iff the fast path is usable).

    ``tau``: ``policy.tau``; when finite, the engine's own threshold must equal it."""
    if engine not in ENGINES:
        raise EngineError(f"The 'engine' parameter of Router.load must be one of "
                          f"{', '.join(map(repr, ENGINES))}. Got {engine!r} instead.")
    problem = fastpath_problem(manifest, files, str(root / "manifest.json"))
    ood = ood_threshold(manifest, str(root / "manifest.json"))
    if engine == "numpy" and problem is not None:
        raise EngineUnavailableError(f"engine='numpy' needs a fast path that the compiler "
                                     f"verified identical to the graph: {problem}")
    if engine == "onnxruntime" or problem is not None:
        return OnnxEngine(files["model.onnx"], dim, n_labels, str(root / "model.onnx"), tau, ood)
    return NumpyEngine(files, dim, n_labels, str(root / FASTPATH_JSON), tau, ood)

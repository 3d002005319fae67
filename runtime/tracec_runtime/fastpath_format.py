"""Parse and validate ``fastpath.json`` + ``fastpath.bin`` (docs/bundle-format.md).

Every field, shape, dtype, offset and padding byte is checked; any problem is
a :class:`FastPathFormatError` naming the JSON path, what was expected and what
was found.  Arrays are zero-copy, read-only views of the blob (``np.frombuffer``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from tracec_runtime.canonical import parse_f32, strict_json
from tracec_runtime.errors import BundleVerificationError

__all__ = ["FASTPATH_JSON", "FASTPATH_BIN", "FORMAT", "ALIGN", "MODES", "OUTPUTS", "HIDDEN",
           "FastPathFormatError", "FastPathSpec", "OODWeights", "StageWeights", "parse_fastpath"]

FASTPATH_JSON = "fastpath.json"
FASTPATH_BIN = "fastpath.bin"
FORMAT = "tracec-fastpath/1"
ALIGN = 64
MODES = {"global": (1,), "l2d": (1,), "cascade": (2,), "closed": (1, 2)}
HEADS = ("linear", "mlp")
OUTPUTS = ("softmax", "ovr", "logistic")
HIDDEN = ("relu", "tanh", "logistic", "identity")
DTYPES = ("<f4", "<i8")
_TOP_KEYS = {"format", "mode", "tau", "n_features", "stages", "tensors"}
_STAGE_KEYS = {"head", "output", "layers", "classes", "acceptor_coef", "acceptor_intercept"}
_TENSOR_KEYS = {"dtype", "shape", "offset", "length"}
OOD_METHODS = ("prototype-cosine",)
_OOD_KEYS = {"method", "prototypes", "threshold"}


class FastPathFormatError(BundleVerificationError):
    """``fastpath.json`` / ``fastpath.bin`` do not describe a valid fast path."""

    def __init__(self, where: str, expected: str, found: object):
        self.where, self.expected, self.found = where, expected, found
        super().__init__(f"{FASTPATH_JSON}: {where} must be {expected}; found {found}")


@dataclass(frozen=True)
class StageWeights:
    head: str                 # linear | mlp
    output: str               # softmax | ovr | logistic
    hidden: str               # MLP hidden activation ("identity" for linear)
    layers: tuple             # ((weight float32 [out, in], bias float32 [out]), ...)
    classes: np.ndarray       # int64 [K]: global label index of probability column j
    acceptor_coef: np.ndarray  # float32 [4]
    acceptor_intercept: np.float32


@dataclass(frozen=True)
class OODWeights:
    """The out-of-distribution gate: in distribution iff cosine to the nearest row of
    ``prototypes`` (float32 [M, D]) >= ``threshold``."""

    method: str
    prototypes: np.ndarray
    threshold: np.float32


@dataclass(frozen=True)
class FastPathSpec:
    mode: str
    tau: np.float32
    n_features: int
    stages: tuple
    ood: Optional[OODWeights] = None


def _expect(cond: bool, where: str, expected: str, found: object) -> None:
    if not cond:
        raise FastPathFormatError(where, expected, found)


def _keys(obj: object, keys: set, where: str) -> dict:
    _expect(isinstance(obj, dict), where, "an object", type(obj).__name__)
    _expect(set(obj) == keys, where, f"an object with exactly the keys {sorted(keys)}",
            sorted(obj))
    return obj


def _int(v: object) -> bool:
    return type(v) is int


def _f32(value: object, where: str) -> np.float32:
    try:
        out = parse_f32(value)
    except ValueError as exc:
        raise FastPathFormatError(where, "a float32 decimal string", f"{value!r} ({exc})") from None
    _expect(bool(np.isfinite(out)), where, "finite", value)
    return out


def _tensors(table: object, blob: bytes) -> dict[str, np.ndarray]:
    """Every tensor, laid out back to back at 64-byte boundaries, zero padding between."""
    _expect(isinstance(table, dict) and len(table) > 0, "$.tensors", "a non-empty object",
            type(table).__name__)
    descs = []
    for name, d in table.items():
        where = f"$.tensors[{name!r}]"
        _keys(d, _TENSOR_KEYS, where)
        _expect(d["dtype"] in DTYPES, where + ".dtype", f"one of {list(DTYPES)}", d["dtype"])
        shape = d["shape"]
        _expect(isinstance(shape, list) and 1 <= len(shape) <= 2
                and all(_int(s) and s >= 1 for s in shape), where + ".shape",
                "a list of 1 or 2 positive ints", shape)
        _expect(_int(d["offset"]) and d["offset"] >= 0, where + ".offset", "an int >= 0",
                d["offset"])
        nbytes = math.prod(shape) * (8 if d["dtype"] == "<i8" else 4)
        _expect(d["length"] == nbytes, where + ".length",
                f"{nbytes} (the byte size of {d['dtype']} {shape})", d["length"])
        descs.append((d["offset"], name, d))
    descs.sort(key=lambda t: (t[0], t[1]))
    arrays, end = {}, 0
    for offset, name, d in descs:
        start = -(-end // ALIGN) * ALIGN
        _expect(offset == start, f"$.tensors[{name!r}].offset",
                f"{start} (the previous tensor's end rounded up to {ALIGN} bytes)", offset)
        _expect(offset + d["length"] <= len(blob), f"$.tensors[{name!r}]",
                f"inside {FASTPATH_BIN} ({len(blob)} bytes)",
                f"bytes {offset}..{offset + d['length']}")
        _expect(not any(blob[end:offset]), f"{FASTPATH_BIN} bytes {end}..{offset}",
                "zero padding", "non-zero bytes")
        dt = np.dtype(d["dtype"])
        arr = np.frombuffer(blob, dtype=dt, count=d["length"] // dt.itemsize, offset=offset)
        arr = arr.reshape(d["shape"])
        arr.flags.writeable = False
        if dt.kind == "f":
            _expect(bool(np.isfinite(arr).all()), f"$.tensors[{name!r}]", "finite values",
                    "NaN or infinity")
        arrays[name] = arr
        end = offset + d["length"]
    _expect(len(blob) == end, FASTPATH_BIN, f"{end} bytes long (the end of the last tensor)",
            f"{len(blob)} bytes")
    return arrays


def _tensor(arrays: dict, used: set, name: object, where: str, dtype: str,
            shape: tuple) -> np.ndarray:
    """The tensor called ``name``; ``shape`` entries of -1 match any size."""
    _expect(isinstance(name, str) and name in arrays, where, "the name of a tensor in $.tensors",
            repr(name))
    arr = arrays[name]
    ok = arr.dtype == np.dtype(dtype) and arr.ndim == len(shape) and all(
        s in (-1, a) for s, a in zip(shape, arr.shape))
    want = "[" + ", ".join("N" if s == -1 else str(s) for s in shape) + "]"
    _expect(ok, where, f"a {dtype} tensor of shape {want}", f"{arr.dtype.str} {list(arr.shape)}")
    used.add(name)
    return arr


def _stage(obj: object, i: int, dim: int, arrays: dict, used: set) -> StageWeights:
    where = f"$.stages[{i}]"
    head = obj.get("head") if isinstance(obj, dict) else None
    _expect(head in HEADS, where + ".head", f"one of {list(HEADS)}", repr(head))
    _keys(obj, _STAGE_KEYS | ({"hidden_activation"} if head == "mlp" else set()), where)
    output, hidden = obj["output"], obj.get("hidden_activation", "identity")
    _expect(output in OUTPUTS, where + ".output", f"one of {list(OUTPUTS)}", repr(output))
    _expect(hidden in HIDDEN, where + ".hidden_activation", f"one of {list(HIDDEN)}",
            repr(hidden))
    layers = obj["layers"]
    n_layers = "exactly 1 layer" if head == "linear" else "at least 2 layers"
    _expect(isinstance(layers, list) and (len(layers) == 1 if head == "linear"
                                          else len(layers) >= 2),
            where + ".layers", f"a list of {n_layers} for head {head!r}",
            f"{len(layers) if isinstance(layers, list) else type(layers).__name__}")
    width, weights = dim, []
    for j, layer in enumerate(layers):
        lw = f"{where}.layers[{j}]"
        _keys(layer, {"weight", "bias"}, lw)
        w = _tensor(arrays, used, layer["weight"], lw + ".weight", "<f4", (-1, width))
        b = _tensor(arrays, used, layer["bias"], lw + ".bias", "<f4", (w.shape[0],))
        weights.append((w, b))
        width = w.shape[0]
    classes = _tensor(arrays, used, obj["classes"], where + ".classes", "<i8", (-1,))
    k = classes.shape[0]
    _expect(bool(np.all(classes >= 0)) and bool(np.all(np.diff(classes) > 0)),
            where + ".classes", "strictly increasing label indices >= 0", classes[:8].tolist())
    want = 1 if output == "logistic" else k
    _expect(k >= 2 and width == want and (output != "logistic" or k == 2),
            f"{where}.layers[{len(layers) - 1}].weight",
            f"{'1 output' if output == 'logistic' else 'one output per class'} for output "
            f"{output!r} (K={k}, K >= 2{', K == 2' if output == 'logistic' else ''})",
            f"{width} outputs")
    coef = _tensor(arrays, used, obj["acceptor_coef"], where + ".acceptor_coef", "<f4", (4,))
    intercept = _f32(obj["acceptor_intercept"], where + ".acceptor_intercept")
    return StageWeights(head, output, hidden, tuple(weights), classes, coef, intercept)


def _ood(obj: object, dim: int, arrays: dict, used: set) -> OODWeights:
    _keys(obj, _OOD_KEYS, "$.ood")
    _expect(obj["method"] in OOD_METHODS, "$.ood.method", f"one of {list(OOD_METHODS)}",
            repr(obj["method"]))
    protos = _tensor(arrays, used, obj["prototypes"], "$.ood.prototypes", "<f4", (-1, dim))
    return OODWeights(obj["method"], protos, _f32(obj["threshold"], "$.ood.threshold"))


def parse_fastpath(json_bytes: bytes, bin_bytes: bytes) -> FastPathSpec:
    """Validate both files; return the spec whose arrays view ``bin_bytes``."""
    for name, data in ((FASTPATH_JSON, json_bytes), (FASTPATH_BIN, bin_bytes)):
        if not isinstance(data, bytes):
            raise TypeError(f"{name} must be given as bytes (verified bundle bytes); "
                            f"got {type(data).__name__}")
    try:
        doc = strict_json(json_bytes, floats=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FastPathFormatError("the document", "UTF-8 JSON without floats or duplicate keys",
                                  str(exc)) from None
    _keys(doc, _TOP_KEYS | ({"ood"} if isinstance(doc, dict) and "ood" in doc else set()), "$")
    _expect(doc["format"] == FORMAT, "$.format", repr(FORMAT), repr(doc["format"]))
    mode = doc["mode"]
    _expect(mode in MODES, "$.mode", f"one of {list(MODES)}", repr(mode))
    tau = parse_f32(doc["tau"]) if doc["tau"] in ("inf", "-inf") else _f32(doc["tau"], "$.tau")
    dim = doc["n_features"]
    _expect(_int(dim) and dim >= 1, "$.n_features", "a positive int", repr(dim))
    stages = doc["stages"]
    counts = MODES[mode]
    _expect(isinstance(stages, list) and len(stages) in counts, "$.stages",
            f"a list of {' or '.join(map(str, counts))} stage(s) for mode {mode!r}",
            f"{len(stages) if isinstance(stages, list) else type(stages).__name__}")
    arrays = _tensors(doc["tensors"], bin_bytes)
    used: set = set()
    parsed = tuple(_stage(s, i, dim, arrays, used) for i, s in enumerate(stages))
    ood = _ood(doc["ood"], dim, arrays, used) if "ood" in doc else None
    unused = sorted(set(arrays) - used)
    _expect(not unused, "$.tensors", "only tensors the stages use", f"unused {unused}")
    return FastPathSpec(mode, tau, dim, parsed, ood)

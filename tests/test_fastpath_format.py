"""fastpath.json / fastpath.bin: malformed files raise the typed error; arrays are
read-only views of the blob; inputs are checked; no onnxruntime or scikit-learn at run time.

The files are built by the compiler from small models fitted on synthetic data:
these tests are about the format, not about numerics (tests/test_fastpath.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from tracec.export import StageGraphSpec
from tracec.export.fastpath import fastpath_files
from tracec_runtime.canonical import canonical_bytes
from tracec_runtime.errors import BundleVerificationError, RouteInputError
from tracec_runtime.fastpath import FASTPATH_BIN, FASTPATH_JSON, FastPath, FastPathFormatError
from tracec_runtime.fastpath_format import parse_fastpath


@pytest.fixture(scope="module")
def small_files():
    """A valid 2-stage fast path (a linear and an MLP head, 3 classes, D = 384)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 384))
    y = rng.integers(0, 3, 600)
    X = (centres[y] + rng.normal(scale=2.0, size=(600, 384))).astype(np.float32)
    stage_list = []
    for est in (LogisticRegression(max_iter=100), MLPClassifier((8,), max_iter=20,
                                                                 random_state=0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
        stage_list.append(StageGraphSpec(est, np.asarray(est.classes_, dtype=np.int64),
                                         np.array([2.0, -1.0, 0.5, -3.0]), 0.25))
    return fastpath_files(stage_list, mode="cascade", tau=0.5)


def _edit(doc, blob, fn):
    out = fn(doc, blob)
    return out if isinstance(out, tuple) else (doc, blob)


MUTATIONS = {
    "misaligned offset": (lambda d, b: d["tensors"]["s1.classes"].update(
        offset=d["tensors"]["s1.classes"]["offset"] + 8), "s1.classes"),
    "offset past the blob": (lambda d, b: d["tensors"]["s2.acceptor_coef"].update(
        offset=10 ** 9), "s2.acceptor_coef"),
    "wrong shape": (lambda d, b: d["tensors"]["s1.layer0.weight"].update(
        shape=d["tensors"]["s1.layer0.weight"]["shape"][::-1]), "layers[0].weight"),
    "length not shape": (lambda d, b: d["tensors"]["s2.layer1.bias"].update(length=4),
                         "s2.layer1.bias"),
    "truncated blob": (lambda d, b: (d, b[:-3]), "fastpath.bin"),
    "trailing bytes": (lambda d, b: (d, b + b"\0" * 64), "fastpath.bin"),
    "unknown head type": (lambda d, b: d["stages"][0].update(head="forest"), "stages[0].head"),
    "unknown output": (lambda d, b: d["stages"][1].update(output="sparsemax"),
                       "stages[1].output"),
    "unknown activation": (lambda d, b: d["stages"][1].update(hidden_activation="gelu"),
                           "hidden_activation"),
    "wrong dtype": (lambda d, b: d["tensors"]["s1.acceptor_coef"].update(dtype="<f8"),
                    "dtype"),
    "missing key": (lambda d, b: d.pop("n_features"), "n_features"),
    "stage count": (lambda d, b: d.update(mode="l2d"), "$.stages"),
    "bad tau": (lambda d, b: d.update(tau="0.5x"), "$.tau"),
    "unused tensor": (lambda d, b: d["stages"][0].update(acceptor_coef="s2.acceptor_coef"),
                      "unused"),
    "unknown tensor": (lambda d, b: d["stages"][0].update(classes="nope"), "classes"),
    "nan weight": (lambda d, b: (d, np.full(1, np.nan, "<f4").tobytes() + b[4:]), "finite"),
    "non-zero padding": (lambda d, b: (d, _poke_padding(d, b)), "zero padding"),
}


def _poke_padding(doc, blob):
    ends = sorted((t["offset"] + t["length"], t["offset"]) for t in doc["tensors"].values())
    offsets = sorted(t["offset"] for t in doc["tensors"].values())
    gap = next(e for e, _ in ends if e not in offsets and e < len(blob))
    return blob[:gap] + b"\x01" + blob[gap + 1:]


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_malformed_files_raise_typed_error(small_files, name):
    fn, needle = MUTATIONS[name]
    doc = json.loads(small_files[FASTPATH_JSON])
    doc, blob = _edit(doc, small_files[FASTPATH_BIN], fn)
    with pytest.raises(FastPathFormatError) as info:
        FastPath.from_bytes(canonical_bytes(doc), blob)
    assert isinstance(info.value, BundleVerificationError)
    assert needle in str(info.value) and str(info.value).startswith(FASTPATH_JSON)


@pytest.mark.parametrize("text", [b'{"format": 1.5}', b'{"a": 1, "a": 2}', b"\xff", b"[NaN]"])
def test_non_canonical_json_is_refused(small_files, text):
    with pytest.raises(FastPathFormatError):
        FastPath.from_bytes(text, small_files[FASTPATH_BIN])


def test_arrays_are_read_only_views_of_the_blob(small_files):
    blob = small_files[FASTPATH_BIN]
    spec = parse_fastpath(small_files[FASTPATH_JSON], blob)
    whole = np.frombuffer(blob, dtype=np.uint8)
    arrays = [a for st in spec.stages for layer in st.layers for a in layer]
    arrays += [st.classes for st in spec.stages]
    assert all(not a.flags.writeable and np.shares_memory(a, whole) for a in arrays)
    with pytest.raises(TypeError):
        FastPath.from_bytes(small_files[FASTPATH_JSON], bytearray(blob))


def test_bad_inputs_are_refused(small_files):
    fast = FastPath.from_bytes(small_files[FASTPATH_JSON], small_files[FASTPATH_BIN])
    for bad in (np.zeros((2, 383), np.float32), np.zeros((2, 384), np.float64), [0.0] * 384):
        with pytest.raises(RouteInputError):
            fast.run(bad)
    with pytest.raises(RouteInputError):
        fast.run_one(np.zeros((1, 384), np.float32))
    label, score, handled = fast.run(np.zeros((0, 384), np.float32))
    assert label.shape == score.shape == handled.shape == (0,)


def test_fast_path_imports_neither_onnxruntime_nor_sklearn(small_files, tmp_path):
    for name, data in small_files.items():
        (tmp_path / name).write_bytes(data)
    script = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from tracec_runtime.fastpath import FastPath\n"
        f"d = Path({str(tmp_path)!r})\n"
        "fp = FastPath.from_bytes((d / 'fastpath.json').read_bytes(), "
        "(d / 'fastpath.bin').read_bytes())\n"
        "X = np.ones((3, fp.n_features), np.float32)\n"
        "print(fp.run(X)[0].tolist() + [fp.run_one(X[0])[0]])\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'onnxruntime', 'sklearn', 'scipy', 'onnx'}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert len(out) == 2 and set(json.loads(out[0])) <= {0, 1, 2}, out
    assert out[1] == "[]", out

"""Loader attacks (issue 9): each is named after the attack and must fail closed, typed.

Graph attacks (external data, operators, tau, memory bombs) are refused by the
verifier's scan of the signed bytes, before any onnxruntime session exists; size
attacks are refused by ``stat`` before a byte is read; JSON attacks (depth, huge
integers, floats, non-canonical text) are typed errors, never a traceback.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from tracec_runtime import Router, verify_bundle
from tracec_runtime.canonical import canonical_file_bytes
from tracec_runtime.envelope import ENVELOPE, seal
from tracec_runtime.errors import (BundleIntegrityError, FileTooLargeError, GraphRunError,
                                   ModelContractError, SignatureError, UnsignedBundleError,
                                   UnsupportedFormatError)
from tracec_runtime.limits import MAX_ENVELOPE_BYTES, MAX_MANIFEST_BYTES

from .conftest import D, make_bundle, make_manifest, toy_model
from .fastpath_fixtures import make_fastpath_bundle, random_stage
from .loader_fixtures import (constant_of_shape_bomb, external_weights_model, lying_model,
                              op_model, out_of_bounds_model, resign, statement_of)

TWO_GB = 2 << 30


def refused(bundle, key, error, *words):
    """Typed ``error`` at verify and at load (also unsafely), naming each of ``words``."""
    for load in (lambda: verify_bundle(bundle, key), lambda: Router.load(bundle, key),
                 lambda: Router.load(bundle, allow_unsigned=True)):
        with pytest.raises(error) as info:
            load()
        for w in words:
            assert w in info.value.diagnostics(), info.value.diagnostics()


# ------------------------------------------------------------------ the graph
@pytest.mark.parametrize("where", ["initializer", "attribute", "location_only"])
def test_onnx_external_data_from_cwd(where, tmp_path, keys, sessions, monkeypatch):
    """A signed graph whose tensor lives in ./weights.bin (no bundle file, no digest)."""
    model, raw = external_weights_model(where)
    bundle = make_bundle(tmp_path / "b", keys[0], model=model)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.bin").write_bytes(raw)   # what onnxruntime would have read
    refused(bundle, keys[1], ModelContractError, "model.onnx", "external data")
    assert sessions == []


def test_external_data_in_any_onnx_file(tmp_path, keys, sessions):
    """Every *.onnx subject is scanned (e.g. an embedder graph), whatever its operators."""
    bundle = make_bundle(tmp_path / "b", keys[0])
    (bundle / "embedder").mkdir()
    (bundle / "embedder/model.onnx").write_bytes(external_weights_model("initializer")[0])
    manifest = make_manifest({n: (bundle / n).read_bytes() for n in
                              ("model.onnx", "frontier.json", "artifacts/labels.json",
                               "embedder/model.onnx")})
    (bundle / "manifest.json").write_bytes(canonical_file_bytes(manifest))
    seal(bundle, keys[0])
    refused(bundle, keys[1], ModelContractError, "embedder/model.onnx", "external data")
    assert sessions == []


@pytest.mark.parametrize("op, domain", [("ReduceMax", ""), ("Erf", ""),
                                         ("Gelu", "com.microsoft")])
def test_operator_outside_the_compiler_set(op, domain, tmp_path, keys, sessions):
    bundle = make_bundle(tmp_path / "b", keys[0], model=op_model(op, domain))
    refused(bundle, keys[1], ModelContractError, "model.onnx", repr(f"{domain}:{op}"
                                                                    if domain else op))
    assert sessions == []


def test_constant_of_shape_memory_bomb(tmp_path, keys, sessions):
    bundle = make_bundle(tmp_path / "b", keys[0], model=constant_of_shape_bomb())
    refused(bundle, keys[1], ModelContractError, "ConstantOfShape", "Shape node")
    assert sessions == []


def test_graph_failure_at_run_time(tmp_path, keys):
    """onnxruntime's own exception while running becomes a GraphRunError (an EngineError)."""
    router = Router.load(make_bundle(tmp_path / "b", keys[0], model=out_of_bounds_model()),
                         keys[1])
    x = np.eye(D, dtype=np.float32)[:3] * 10
    for call in (lambda: router.route_batch(x), lambda: router.route(x[1])):
        with pytest.raises(GraphRunError, match="model.onnx: the graph failed while running"):
            call()


def test_tau_initializer_differs_from_policy_tau(tmp_path, keys, sessions):
    bundle = make_bundle(tmp_path / "b", keys[0], model=toy_model(tau="0.5"))  # manifest: 0.6
    verify_bundle(bundle, keys[1])  # intact and signed: the lie is in what it says
    with pytest.raises(ModelContractError, match="'tau' must equal manifest policy.tau "
                                                 "0.600000024; found 0.5"):
        Router.load(bundle, keys[1], engine="onnxruntime")
    assert sessions == []


def test_fast_path_tau_differs_from_policy_tau(tmp_path, keys):
    stages = [random_stage(8, 3, seed=1)]
    bundle = make_fastpath_bundle(tmp_path / "b", keys[0], stages=stages, tau="0.5")
    manifest = make_manifest({n: (bundle / n).read_bytes() for n in
                              ("model.onnx", "fastpath.json", "fastpath.bin")}, tau="0.25",
                             dimension=8, labels=["a", "b", "c"])
    manifest["fastpath"] = {"present": True, "rows_checked": 5, "decision_mismatches": 0}
    (bundle / "manifest.json").write_bytes(canonical_file_bytes(manifest))
    seal(bundle, keys[0])
    with pytest.raises(ModelContractError, match="fastpath.json: tau must equal manifest "
                                                 "policy.tau 0.25; found 0.5"):
        Router.load(bundle, keys[1], engine="numpy")


@pytest.mark.parametrize("engine", ["onnxruntime", "numpy"])
def test_handled_contradicts_score_and_tau(engine, tmp_path, keys):
    """handled=True for a score below tau: refused by both engines' routers."""
    if engine == "onnxruntime":
        bundle = make_bundle(tmp_path / "b", keys[0], model=lying_model(0.1, True))
    else:  # a "global" fast path (handles every row) under a finite policy.tau
        bundle = make_fastpath_bundle(tmp_path / "b", keys[0], stages=[random_stage(D, 3, 2)],
                                      tau="0.999", mode="l2d")
        fast = (bundle / "fastpath.json").read_bytes().replace(b'"mode":"l2d"',
                                                               b'"mode":"global"')
        (bundle / "fastpath.json").write_bytes(fast)
        m = make_manifest({n: (bundle / n).read_bytes() for n in
                           ("model.onnx", "fastpath.json", "fastpath.bin")}, tau="0.999",
                          labels=["a", "b", "c"])
        m["fastpath"] = {"present": True, "rows_checked": 5, "decision_mismatches": 0}
        (bundle / "manifest.json").write_bytes(canonical_file_bytes(m))
        seal(bundle, keys[0])
    router = Router.load(bundle, keys[1], engine=engine)
    assert router.engine == engine
    x = np.full((4, D), 0.01, np.float32)
    for call in (lambda: router.route_batch(x), lambda: router.route(x[0])):
        with pytest.raises(ModelContractError, match="output 'handled' must imply score >= tau"):
            call()


def test_nan_score_claims_handled(tmp_path, keys):
    """score NaN with handled=True: deferred, and the reason does not contradict itself."""
    router = Router.load(make_bundle(tmp_path / "b", keys[0], model=lying_model(math.nan, True)),
                         keys[1])
    x = np.full((3, D), 0.5, np.float32)
    batch = router.route_batch(x)
    assert not batch.handled.any() and np.isnan(batch.score).all() and batch.coverage == 0.0
    one = router.route(x[0], fallback=lambda: "llm")
    assert not one.handled and one.label == "llm" and one.reason.startswith("deferred")


# ------------------------------------------------------------------ signatures
def test_removed_signature_with_key_and_allow_unsigned(bundle, keys, sessions):
    st = statement_of(bundle)
    resign(bundle, st, None)  # the same statement, "signatures": []
    for load in (lambda: verify_bundle(bundle, keys[1], allow_unsigned=True),
                 lambda: Router.load(bundle, keys[1], allow_unsigned=True)):
        with pytest.raises(UnsignedBundleError, match="a removed signature is never accepted"):
            load()
    assert sessions == []


# ------------------------------------------------------------------ sizes
def _sparse(path, size=TWO_GB):
    with open(path, "r+b" if path.exists() else "wb") as f:
        f.truncate(size)


@pytest.fixture
def reads(monkeypatch):
    """Total bytes requested from os.read while verifying."""
    asked = []
    real = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: asked.append(n) or real(fd, n))
    return asked


@pytest.mark.parametrize("name", ["model.onnx", "manifest.json"])
def test_oversized_sparse_file(name, bundle, keys, sessions, reads):
    signed = (bundle / name).stat().st_size
    _sparse(bundle / name)
    with pytest.raises(BundleIntegrityError) as info:
        verify_bundle(bundle, keys[1])
    assert f"changed: {name} (size {signed} expected, {TWO_GB} found; not read)" in \
        info.value.problems
    assert max(reads) < 1 << 20 and sum(reads) < 1 << 20  # nothing near 2 GB was read
    assert sessions == []


def test_oversized_sparse_envelope(bundle, keys, reads):
    _sparse(bundle / ENVELOPE)
    with pytest.raises(FileTooLargeError, match=f"at most {MAX_ENVELOPE_BYTES} bytes; found "
                                                f"{TWO_GB} bytes"):
        verify_bundle(bundle, keys[1])
    assert reads == []


@pytest.mark.parametrize("size", [str(MAX_MANIFEST_BYTES + 1), "9" * 5000])
def test_statement_claims_a_huge_manifest(size, bundle, keys, reads):
    st = statement_of(bundle)
    next(s for s in st["subject"] if s["name"] == "manifest.json")["annotations"]["size"] = size
    resign(bundle, st, keys[0])
    with pytest.raises(UnsupportedFormatError, match="manifest.json.*is over the manifest cap"):
        verify_bundle(bundle, keys[1])
    assert sum(reads) < 1 << 20


# ------------------------------------------------------------------ JSON
def _manifest_text(bundle) -> bytes:
    return (bundle / "manifest.json").read_bytes()


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace(b'"dimension":4', b'"dimension":4.0'), "float literal 4.0"),
    (lambda t: t.replace(b'"dimension":4', b'"dimension":1e999'), "float literal 1e999"),
    (lambda t: t.replace(b'"dimension":4', b'"dimension": 4'), "not canonical JSON"),
    (lambda t: t.replace(b'\n', b''), "not canonical JSON"),
    (lambda t: b'{"zz":1,' + t[1:], "not canonical JSON"),
    (lambda t: t.replace(b'"dimension":4', b'"dimension":' + b'4' * 5000),
     "an integer of 5000 digits"),
    (lambda t: t.replace(b'"refusal":null', b'"refusal":' + b'[' * 1000 + b']' * 1000),
     "nest deeper than 32 levels"),
])
def test_signed_manifest_breaks_format_rules(edit, words, bundle, keys, sessions):
    """Signed by the deployer's key, yet not what the compiler writes: refused, typed."""
    (bundle / "manifest.json").write_bytes(edit(_manifest_text(bundle)))
    seal(bundle, keys[0])
    refused(bundle, keys[1], UnsupportedFormatError, "manifest.json", words)
    assert sessions == []


@pytest.mark.parametrize("body, words", [
    (b'[' * 1000 + b']' * 1000, "nest deeper than 32 levels"),
    (b'{"payload":"","payloadType":"x","signatures":[],"n":' + b'7' * 5000 + b'}',
     "an integer of 5000 digits"),
    (b'{"payload":"","payloadType":"x","signatures":[],"n":1e999}', "float literal"),
])
def test_envelope_json_bombs(body, words, bundle, keys):
    (bundle / ENVELOPE).write_bytes(body)
    with pytest.raises(SignatureError, match=words):
        verify_bundle(bundle, keys[1])


def test_graph_may_defer_more_than_tau(tmp_path, keys):
    """handled=False for a score above tau is allowed (fail closed, e.g. an extra gate)."""
    router = Router.load(make_bundle(tmp_path / "b", keys[0], model=lying_model(0.9, False)),
                         keys[1])
    x = np.full((3, D), 0.5, np.float32)
    assert router.route_batch(x).coverage == 0.0 and not router.route(x[0]).handled

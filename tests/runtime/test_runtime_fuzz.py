"""Property-based fuzzing of the loader: mutated bytes, only typed errors may escape.

Targets: the envelope parser, the signed statement, the manifest parser (through
``verify_bundle``, re-signed by the deployer's key so every mutation reaches the
parser), the ONNX scan, session construction from scanned graphs, the fast-path
parser and the strict JSON parser.  Any exception that is not a
``TracecError`` (``ValueError`` for the bare JSON parser) fails the test.
A bounded number of examples each (``make test``); no example database is written.
"""

from __future__ import annotations

import atexit
import base64
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tracec_runtime import Router, verify_bundle
from tracec_runtime.canonical import canonical_bytes, canonical_file_bytes, strict_json
from tracec_runtime.envelope import ENVELOPE, PAYLOAD_TYPE, open_envelope_signed, pae, seal
from tracec_runtime.errors import ModelContractError, TracecError
from tracec_runtime.fastpath import FastPath
from tracec_runtime.fastpath_format import FastPathFormatError
from tracec_runtime.keys import generate_keypair, load_private_key
from tracec_runtime.onnx_check import check_onnx_bytes

from .conftest import D, make_bundle, toy_model
from .fastpath_fixtures import fastpath_files, random_stage
from .loader_fixtures import statement_of

PRIVATE, PUBLIC = generate_keypair()
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOKENS = [b"[" * 40, b"{\"a\":" * 40, b"9" * 30, b"-" + b"1" * 25, b"1e999", b"0.5", b"NaN",
          b"\"\\ud800\"", b"\"a\":1,", b"\x00", b"\xff\xfe", b" ", b"\n", b"null", b"\\u0000"]


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` after 1-6 random edits: bit flips, byte sets, inserts, deletes, truncation."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and out:
            out[pos] = draw(st.sampled_from(b'{}[]":,0123456789-.eE\\ \nnatu\x00\x80\xff'))
        elif kind == "insert":
            out[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(max_size=12))
        elif kind == "delete":
            del out[pos:pos + draw(st.integers(1, 24))]
        elif kind == "truncate":
            del out[pos:]
    return bytes(out)


def _typed_only(call) -> None:
    try:
        call()
        event("accepted")
    except TracecError as exc:
        event(type(exc).__name__)


def _sign_payload(payload: bytes) -> bytes:
    sig = load_private_key(PRIVATE).sign(pae(PAYLOAD_TYPE, payload)).signature
    from tracec_runtime.keys import keyid
    return canonical_file_bytes({
        "payload": base64.b64encode(payload).decode(), "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": keyid(load_private_key(PRIVATE).verify_key),
                        "sig": base64.b64encode(sig).decode()}]})


_ROOT = Path(tempfile.mkdtemp(prefix="tracec-fuzz-"))
atexit.register(shutil.rmtree, _ROOT, True)
GOOD = make_bundle(_ROOT / "good", PRIVATE)
ENVELOPE_BYTES = (GOOD / ENVELOPE).read_bytes()
STATEMENT_BYTES = canonical_bytes(statement_of(GOOD))
MANIFEST_BYTES = (GOOD / "manifest.json").read_bytes()
MODEL_BYTES = toy_model()
FAST = fastpath_files([random_stage(D, 3, seed=4)], "0.5", "l2d")


def _bundle_with(name: str, data: bytes, reseal: bool = True) -> Path:
    root = Path(tempfile.mkdtemp(dir=_ROOT))
    bundle = make_bundle(root / "b", PRIVATE)
    (bundle / name).write_bytes(data)
    if reseal:
        seal(bundle, PRIVATE)
    return bundle


@FUZZ
@given(mutated(ENVELOPE_BYTES), st.booleans())
def test_fuzz_envelope_parser(data, with_key):
    _typed_only(lambda: open_envelope_signed(data, PUBLIC if with_key else None,
                                             allow_unsigned=True))


@FUZZ
@given(mutated(STATEMENT_BYTES))
def test_fuzz_signed_statement(payload):
    """A validly signed but mutated statement, through verify_bundle."""
    bundle = _bundle_with(ENVELOPE, _sign_payload(payload), reseal=False)
    _typed_only(lambda: verify_bundle(bundle, PUBLIC))


@FUZZ
@given(mutated(MANIFEST_BYTES))
def test_fuzz_manifest_parser(data):
    """A mutated manifest, re-signed: verify_bundle then Router.load raise typed errors only."""
    bundle = _bundle_with("manifest.json", data)
    _typed_only(lambda: Router.load(bundle, PUBLIC))


@FUZZ
@given(mutated(MODEL_BYTES))
def test_fuzz_onnx_scan(data):
    try:
        check_onnx_bytes(data, "model.onnx")
        event("accepted")
    except ModelContractError:
        event("refused")


@FUZZ
@given(mutated(MODEL_BYTES))
def test_fuzz_graph_load_and_route(data):
    """A mutated graph, re-signed: loading and routing raise typed errors only."""
    bundle = make_bundle(Path(tempfile.mkdtemp(dir=_ROOT)) / "b", PRIVATE, model=data)

    def load_and_route():
        router = Router.load(bundle, PUBLIC)
        router.route_batch(np.ones((2, D), np.float32))
        router.route(np.ones(D, np.float32))
    _typed_only(load_and_route)


@FUZZ
@given(mutated(FAST["fastpath.json"]), st.booleans())
def test_fuzz_fastpath_parser(data, mutate_json):
    json_bytes, bin_bytes = (data, FAST["fastpath.bin"]) if mutate_json else \
        (FAST["fastpath.json"], data[: len(FAST["fastpath.bin"])])
    try:
        FastPath.from_bytes(json_bytes, bin_bytes)
    except FastPathFormatError:
        pass


@FUZZ
@given(mutated(MANIFEST_BYTES), st.booleans())
def test_fuzz_strict_json(data, floats):
    try:
        strict_json(data, floats=floats)
    except ValueError:  # UnicodeDecodeError included; never RecursionError
        pass

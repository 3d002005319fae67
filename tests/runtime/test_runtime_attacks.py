"""Tampered bundles: each attack is a fixture named after it, and each must fail closed.

For every attack the verifier raises the typed error, its diagnostics name the
file, and no onnxruntime session is ever constructed (verify first, construct
second).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tracec_runtime import Router, verify_bundle
from tracec_runtime.canonical import canonical_bytes, canonical_file_bytes
from tracec_runtime.envelope import ENVELOPE, build_statement, seal
from tracec_runtime.errors import (BundleIntegrityError, SignatureError, UnsafePathError,
                                   UnsignedBundleError, UnsupportedFormatError)
from tracec_runtime.keys import keyid, load_public_key

from .conftest import FILES, W, digest, make_bundle, toy_model
from .loader_fixtures import resign, statement_of


@dataclass
class Attack:
    bundle: Path
    error: type
    mentions: list[str] = field(default_factory=list)  # diagnostics must contain each


# ------------------------------------------------------------------ the attacks
@pytest.fixture(params=FILES)
def flipped_byte(request, bundle):
    path = bundle / request.param
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return Attack(bundle, BundleIntegrityError, [f"changed: {request.param} (sha256 "])


@pytest.fixture
def swapped_files(bundle):
    a, b = bundle / "frontier.json", bundle / "artifacts/labels.json"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    return Attack(bundle, BundleIntegrityError,
                  ["changed: frontier.json", "changed: artifacts/labels.json", "size"])


@pytest.fixture(params=["evil.py", "artifacts/extra.json", ".hidden"])
def extra_file(request, bundle):
    (bundle / request.param).write_bytes(b"import os\n")
    return Attack(bundle, BundleIntegrityError, [f"extra: {request.param}"])


@pytest.fixture(params=FILES)
def missing_file(request, bundle):
    (bundle / request.param).unlink()
    return Attack(bundle, BundleIntegrityError, [f"missing: {request.param}"])


@pytest.fixture(params=["file", "directory", "bundle_root"])
def symlink_escaping_bundle(request, bundle, tmp_path):
    """A symlink to outside content that is byte-identical: refused even though it would hash."""
    outside = tmp_path / "outside"
    shutil.copytree(bundle, outside)
    if request.param == "file":
        (bundle / "frontier.json").unlink()
        (bundle / "frontier.json").symlink_to(outside / "frontier.json")
        return Attack(bundle, UnsafePathError, ["symlink: frontier.json"])
    if request.param == "directory":
        shutil.rmtree(bundle / "artifacts")
        (bundle / "artifacts").symlink_to(outside / "artifacts", target_is_directory=True)
        return Attack(bundle, UnsafePathError, ["symlink: artifacts"])
    link = tmp_path / "link"
    link.symlink_to(bundle, target_is_directory=True)
    return Attack(link, UnsafePathError, [str(link), "symlink"])


@pytest.fixture
def special_file_in_bundle(bundle):
    os.mkfifo(bundle / "artifacts" / "pipe")
    return Attack(bundle, UnsafePathError, ["special file: artifacts/pipe"])


@pytest.fixture(params=["../outside.json", "/etc/hostname", "artifacts\\x.json",
                        "artifacts//x.json", "./frontier.json"])
def subject_escaping_bundle(request, bundle, keys, tmp_path):
    """A validly signed statement naming a path outside the bundle."""
    (tmp_path / "outside.json").write_bytes(b"{}\n")
    st = statement_of(bundle)
    st["subject"].insert(0, {"name": request.param, "digest": {"sha256": digest(b"{}\n")["sha256"]},
                             "annotations": {"size": "3"}})
    resign(bundle, st, keys[0])
    return Attack(bundle, UnsafePathError, [repr(request.param), ENVELOPE])


@pytest.fixture
def signed_by_other_key(bundle, keys, other_keys):
    seal(bundle, other_keys[0])
    expected, found = keyid(load_public_key(keys[1])), keyid(load_public_key(other_keys[1]))
    return Attack(bundle, SignatureError, [ENVELOPE, f"expected keyid {expected}",
                                           f"found {found}"])


@pytest.fixture
def tampered_payload(bundle):
    """Swap in another model and rewrite its digest in the payload, keeping the signature."""
    evil = toy_model(-W)
    (bundle / "model.onnx").write_bytes(evil)
    env = json.loads((bundle / ENVELOPE).read_bytes())
    st = json.loads(base64.b64decode(env["payload"]))
    for s in st["subject"]:
        if s["name"] == "model.onnx":
            s["digest"]["sha256"] = digest(evil)["sha256"]
            s["annotations"]["size"] = str(len(evil))
    env["payload"] = base64.b64encode(canonical_bytes(st)).decode()
    (bundle / ENVELOPE).write_bytes(canonical_file_bytes(env))
    return Attack(bundle, SignatureError, [ENVELOPE, "does not verify"])


@pytest.fixture(params=["not json", "bad base64", "bad signature base64", "no envelope"])
def garbled_envelope(request, bundle):
    path = bundle / ENVELOPE
    env = json.loads(path.read_bytes())
    if request.param == "not json":
        path.write_bytes(b"{\"payload\": ")
    elif request.param == "bad base64":
        path.write_bytes(canonical_file_bytes({**env, "payload": "%%%not-base64%%%"}))
    elif request.param == "bad signature base64":
        env["signatures"][0]["sig"] = "@@@"
        path.write_bytes(canonical_file_bytes(env))
    else:
        path.unlink()
    return Attack(bundle, SignatureError, [ENVELOPE])


@pytest.fixture
def unsigned_bundle(tmp_path):
    return Attack(make_bundle(tmp_path / "unsigned", None), UnsignedBundleError,
                  [ENVELOPE, "unsigned"])


@pytest.fixture(params=["3", "1.0", 1, None])
def unknown_format_version(request, bundle, keys):
    st = statement_of(bundle)
    st["predicate"]["format_version"] = request.param
    resign(bundle, st, keys[0])
    return Attack(bundle, UnsupportedFormatError, [ENVELOPE, "format_version", repr(request.param)])


@pytest.fixture
def wrong_payload_type(bundle, keys):
    env = json.loads((bundle / ENVELOPE).read_bytes())
    env["payloadType"] = "application/json"
    (bundle / ENVELOPE).write_bytes(canonical_file_bytes(env))
    return Attack(bundle, UnsupportedFormatError, [ENVELOPE, "payloadType"])


@pytest.fixture(params=["wrong digest", "undeclared file", "phantom file", "wrong size"])
def manifest_files_disagree(request, bundle, keys):
    """``manifest.files`` lies about the bundle, but the statement (re-sealed) is consistent."""
    path = bundle / "manifest.json"
    m = json.loads(path.read_bytes())
    if request.param == "wrong digest":
        m["files"]["model.onnx"]["sha256"] = "0" * 64
        name = "model.onnx"
    elif request.param == "undeclared file":
        del m["files"]["frontier.json"]
        name = "frontier.json"
    elif request.param == "phantom file":
        m["files"]["artifacts/ghost.json"] = {"sha256": "1" * 64, "size": 2}
        name = "artifacts/ghost.json"
    else:
        m["files"]["artifacts/labels.json"]["size"] += 1
        name = "artifacts/labels.json"
    path.write_bytes(canonical_file_bytes(m))
    seal(bundle, keys[0])
    return Attack(bundle, BundleIntegrityError, [f"manifest.files: {name}"])


# ------------------------------------------------------------------ the checks
def assert_fails_closed(attack: Attack, public_key, sessions: list) -> None:
    """Typed error, diagnostics naming the file, and no session ever built."""
    with pytest.raises(attack.error) as info:
        verify_bundle(attack.bundle, public_key)
    assert type(info.value) is attack.error
    text = info.value.diagnostics()
    for needle in attack.mentions:
        assert needle in text, f"{needle!r} not in diagnostics:\n{text}"
    with pytest.raises(attack.error):
        Router.load(attack.bundle, public_key)
    if not issubclass(attack.error, SignatureError):  # the unsafe opt-out still checks this
        with pytest.raises(attack.error):
            Router.load(attack.bundle, allow_unsigned=True)
    assert sessions == [], "an onnxruntime session was built from an unverified bundle"


def test_flipped_byte(flipped_byte, keys, sessions):
    assert_fails_closed(flipped_byte, keys[1], sessions)


def test_swapped_files(swapped_files, keys, sessions):
    assert_fails_closed(swapped_files, keys[1], sessions)


def test_extra_file(extra_file, keys, sessions):
    assert_fails_closed(extra_file, keys[1], sessions)


def test_missing_file(missing_file, keys, sessions):
    assert_fails_closed(missing_file, keys[1], sessions)


def test_symlink_escaping_bundle(symlink_escaping_bundle, keys, sessions):
    assert_fails_closed(symlink_escaping_bundle, keys[1], sessions)


def test_special_file_in_bundle(special_file_in_bundle, keys, sessions):
    assert_fails_closed(special_file_in_bundle, keys[1], sessions)


def test_subject_escaping_bundle(subject_escaping_bundle, keys, sessions):
    assert_fails_closed(subject_escaping_bundle, keys[1], sessions)


def test_signed_by_other_key(signed_by_other_key, keys, sessions):
    assert_fails_closed(signed_by_other_key, keys[1], sessions)
    with pytest.raises(SignatureError, match="expected keyid"):  # a given key is always enforced
        verify_bundle(signed_by_other_key.bundle, keys[1], allow_unsigned=True)


def test_tampered_payload(tampered_payload, keys, sessions):
    assert_fails_closed(tampered_payload, keys[1], sessions)


def test_garbled_envelope(garbled_envelope, keys, sessions):
    assert_fails_closed(garbled_envelope, keys[1], sessions)


def test_unsigned_bundle(unsigned_bundle, keys, sessions):
    assert_fails_closed(unsigned_bundle, keys[1], sessions)
    with pytest.raises(UnsignedBundleError, match="a removed signature is never accepted"):
        Router.load(unsigned_bundle.bundle, keys[1], allow_unsigned=True)  # the key is enforced
    assert sessions == []
    router = Router.load(unsigned_bundle.bundle, allow_unsigned=True)  # unsafe, no key: digests
    assert router.signer is None and len(sessions) == 1


def test_unknown_format_version(unknown_format_version, keys, sessions):
    assert_fails_closed(unknown_format_version, keys[1], sessions)


def test_wrong_payload_type(wrong_payload_type, keys, sessions):
    assert_fails_closed(wrong_payload_type, keys[1], sessions)


def test_manifest_files_disagree(manifest_files_disagree, keys, sessions):
    assert_fails_closed(manifest_files_disagree, keys[1], sessions)


def test_integrity_problems_are_all_collected(bundle, keys):
    original = (bundle / "frontier.json").read_bytes()
    (bundle / "frontier.json").write_bytes(b"{}\n")
    (bundle / "artifacts/labels.json").unlink()
    (bundle / "evil.py").write_bytes(b"")
    with pytest.raises(BundleIntegrityError) as info:
        verify_bundle(bundle, keys[1])
    old, new = digest(original)["sha256"], digest(b"{}\n")["sha256"]
    assert info.value.problems == [
        "missing: artifacts/labels.json",
        f"changed: frontier.json (sha256 {old[:12]}\u2026 expected, {new[:12]}\u2026 found; "
        f"size {len(original)} expected, 3 found)",
        "extra: evil.py",
    ]
    assert all(f"  {p}" in info.value.diagnostics() for p in info.value.problems)


def test_good_bundle_builds_one_session_from_the_verified_bytes(bundle, keys, sessions):
    router = Router.load(bundle, keys[1])
    assert len(sessions) == 1
    (model, options), kwargs = sessions[0][0][:2], sessions[0][1]
    assert isinstance(model, bytes) and model == (bundle / "model.onnx").read_bytes()
    assert kwargs == {"providers": ["CPUExecutionProvider"]}
    assert options.intra_op_num_threads == 1
    assert router.input_name == "embedding"
    assert router.signer == keyid(load_public_key(keys[1]))


def test_every_file_is_read_exactly_once(bundle, keys, monkeypatch):
    from tracec_runtime import verify as verify_module
    reads = []
    real = verify_module.read_file
    monkeypatch.setattr(verify_module, "read_file",
                        lambda root, name, *a, **kw: reads.append(name) or real(root, name, *a, **kw))
    vb = verify_bundle(bundle, keys[1])
    assert sorted(reads) == sorted(FILES + [ENVELOPE])
    assert sorted(vb.files) == FILES
    assert vb.statement == build_statement(bundle)


def test_signed_bundle_needs_a_key_unless_unsafe(bundle, keys):
    with pytest.raises(SignatureError, match="no public key"):
        verify_bundle(bundle)
    unchecked = verify_bundle(bundle, allow_unsigned=True)
    assert unchecked.signer is None and unchecked.signed is False
    checked = verify_bundle(bundle, keys[1], allow_unsigned=True)
    assert checked.signer == keyid(load_public_key(keys[1])) and checked.signed is True


def test_non_directory_paths_are_refused(bundle, tmp_path):
    from tracec_runtime.errors import BundleVerificationError
    for path, words in [(tmp_path / "nope", "no such bundle directory"),
                        (bundle / "model.onnx", "expected a bundle directory")]:
        with pytest.raises(BundleVerificationError, match=words) as info:
            verify_bundle(path, allow_unsigned=True)
        assert str(path) in str(info.value)

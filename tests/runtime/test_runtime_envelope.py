"""DSSE envelope: PAE, statement contents, sealing, and opening (signed and unsigned)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from tracec_runtime.canonical import canonical_bytes, canonical_file_bytes
from tracec_runtime.envelope import (ENVELOPE, FORMAT_VERSION, MEDIA_TYPE, PAYLOAD_TYPE, build_statement,
                                     make_envelope, open_envelope, open_envelope_signed, pae,
                                     seal)
from tracec_runtime.errors import SignatureError, UnsignedBundleError, UnsupportedFormatError
from tracec_runtime.keys import keyid, load_private_key, load_public_key


def test_pae_matches_the_dsse_spec_example():
    # https://github.com/secure-systems-lab/dsse/blob/master/protocol.md (test vector)
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("t\u00e9", b"") == b"DSSEv1 3 t\xc3\xa9 0 "  # lengths count bytes


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "b"
    files = {"z.json": b"{}\n", "a/b/c.bin": b"\x00\x01", "m.json": b"", ENVELOPE: b"old"}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root, {k: v for k, v in files.items() if k != ENVELOPE}


def test_statement_lists_every_file_but_the_envelope(tree):
    root, files = tree
    st = build_statement(root)
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicate"] == {"format_version": FORMAT_VERSION, "media_type": MEDIA_TYPE}
    assert [s["name"] for s in st["subject"]] == sorted(files)
    for s in st["subject"]:
        data = files[s["name"]]
        assert s["digest"] == {"sha256": hashlib.sha256(data).hexdigest()}
        assert s["annotations"] == {"size": str(len(data))}
    canonical_bytes(st)  # no floats anywhere


def test_seal_unsigned_then_open(tree):
    root, _ = tree
    st = seal(root)
    raw = (root / ENVELOPE).read_bytes()
    env = json.loads(raw)
    assert raw == canonical_file_bytes(env) and env["signatures"] == []
    assert env["payloadType"] == PAYLOAD_TYPE
    assert base64.b64decode(env["payload"]) == canonical_bytes(st)
    assert open_envelope(raw, None, allow_unsigned=True) == st
    with pytest.raises(UnsignedBundleError):
        open_envelope(raw, None, allow_unsigned=False)
    assert sorted(p.name for p in root.iterdir()) == ["a", ENVELOPE, "m.json", "z.json"]


def test_seal_signed_then_open(tree, keys, other_keys):
    root, _ = tree
    st = seal(root, keys[0])
    raw = (root / ENVELOPE).read_bytes()
    env = json.loads(raw)
    kid = keyid(load_public_key(keys[1]))
    assert [s["keyid"] for s in env["signatures"]] == [kid]
    assert open_envelope_signed(raw, keys[1]) == (st, kid)
    assert open_envelope_signed(raw, None, allow_unsigned=True) == (st, None)
    with pytest.raises(SignatureError, match="no public key"):
        open_envelope(raw, None)
    theirs = keyid(load_public_key(other_keys[1]))
    with pytest.raises(SignatureError, match=f"expected keyid {theirs}, found {kid}"):
        open_envelope(raw, other_keys[1])


def test_keyid_is_only_a_hint(keys, other_keys):
    st = {"hello": "world"}
    mine = make_envelope(st, keys[0])["signatures"][0]
    theirs = make_envelope(st, other_keys[0])["signatures"][0]
    env = make_envelope(st)
    # Another key's signature first, ours second with a wrong keyid: ours still verifies.
    env["signatures"] = [theirs, {**mine, "keyid": "whatever"}]
    assert open_envelope(canonical_bytes(env), keys[1]) == st
    # Our keyid on somebody else's signature does not verify.
    env["signatures"] = [{**theirs, "keyid": mine["keyid"]}]
    with pytest.raises(SignatureError, match="does not verify"):
        open_envelope(canonical_bytes(env), keys[1])


def _signed(payload: bytes, key) -> bytes:
    sk = load_private_key(key)
    sig = sk.sign(pae(PAYLOAD_TYPE, payload)).signature
    return canonical_bytes({"payload": base64.b64encode(payload).decode(),
                            "payloadType": PAYLOAD_TYPE,
                            "signatures": [{"keyid": keyid(sk.verify_key),
                                            "sig": base64.b64encode(sig).decode()}]})


@pytest.mark.parametrize("payload, error, words", [
    (b'{"b":1, "a":2}', UnsupportedFormatError, "not canonical"),
    (b'{"a":0.5}', UnsupportedFormatError, "not canonical"),
    (b'{"a":"\\ud800"}', UnsupportedFormatError, "not canonical"),
    (b'{"a":1,"a":2}', SignatureError, "duplicate key 'a'"),
    (b'[1]', UnsupportedFormatError, "must be a JSON object"),
    (b'{"a":NaN}', SignatureError, "NaN"),
    (b"\xff", SignatureError, "not valid JSON"),
])
def test_signed_but_malformed_statements(keys, payload, error, words):
    with pytest.raises(error, match=words) as info:
        open_envelope(_signed(payload, keys[0]), keys[1])
    assert type(info.value) is error and ENVELOPE in str(info.value)


@pytest.mark.parametrize("envelope, words", [
    (b"[]", "not a DSSE envelope"),
    (b'{"payload": "e30=", "payloadType": "application/vnd.in-toto+json"}', "signatures"),
    (b'{"payload": 5, "payloadType": "application/vnd.in-toto+json", "signatures": []}',
     "payload must be a base64 string"),
    (b'{"payload": "e30=", "payloadType": "application/vnd.in-toto+json", "signatures": [5]}',
     "signatures[0] must be an object"),
])
def test_malformed_envelopes(keys, envelope, words):
    with pytest.raises(SignatureError) as info:
        open_envelope(envelope, keys[1], allow_unsigned=True)
    assert words in str(info.value)

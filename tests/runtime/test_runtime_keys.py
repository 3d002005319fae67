"""Ed25519 JWK keys: generation, files (0600, no overwrite), loading from every source."""

from __future__ import annotations

import base64
import hashlib
import json
import stat

import pytest
from nacl.signing import SigningKey, VerifyKey

from tracec_runtime.errors import KeyFileError
from tracec_runtime.keys import (generate_keypair, keyid, load_private_key, load_public_key,
                                 write_keypair)


def test_generated_jwks_are_rfc8037():
    private, public = generate_keypair()
    assert set(public) == {"crv", "kty", "x"} and set(private) == {"crv", "kty", "x", "d"}
    assert public["kty"] == "OKP" and public["crv"] == "Ed25519"
    assert private["x"] == public["x"]
    for field in ("x", "d"):
        assert "=" not in private[field] and "+" not in private[field]
        assert len(base64.urlsafe_b64decode(private[field] + "=")) == 32
    sk, vk = load_private_key(private), load_public_key(public)
    vk.verify(sk.sign(b"hello"))  # raises if the pair does not match
    assert generate_keypair()[1] != public


def test_write_keypair_modes_and_contents(tmp_path):
    key_path, pub_path = write_keypair(tmp_path / "ci")
    assert (key_path.name, pub_path.name) == ("ci.key", "ci.pub")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    pub = json.loads(pub_path.read_bytes())
    assert "d" not in pub and pub_path.read_bytes().endswith(b"}\n")
    assert "d" in json.loads(key_path.read_bytes())
    assert bytes(load_private_key(key_path).verify_key) == bytes(load_public_key(pub_path))


@pytest.mark.parametrize("existing", ["ci.key", "ci.pub"])
def test_write_keypair_never_overwrites(tmp_path, existing):
    (tmp_path / existing).write_bytes(b"precious")
    with pytest.raises(KeyFileError, match="already exists") as info:
        write_keypair(str(tmp_path / "ci"))
    assert str(tmp_path / existing) in str(info.value)
    assert (tmp_path / existing).read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_public_key_sources_agree(tmp_path):
    _, public = generate_keypair()
    path = tmp_path / "k.pub"
    path.write_text(json.dumps(public))
    text = json.dumps(public, indent=2)
    sources = [public, str(path), path, path.read_bytes(), text, load_public_key(public)]
    raw = {bytes(load_public_key(s)) for s in sources}
    assert len(raw) == 1 and isinstance(load_public_key(public), VerifyKey)


def test_private_key_sources_agree(tmp_path):
    private, _ = generate_keypair()
    keys = [load_private_key(private), load_private_key(json.dumps(private)),
            load_private_key(json.dumps(private).encode())]
    assert len({bytes(k) for k in keys}) == 1 and isinstance(keys[0], SigningKey)


def test_keyid_is_sha256_of_the_raw_public_key():
    _, public = generate_keypair()
    vk = load_public_key(public)
    raw = base64.urlsafe_b64decode(public["x"] + "=")
    assert keyid(vk) == hashlib.sha256(raw).hexdigest()


def _jwk(**changes):
    private, _ = generate_keypair()
    return {k: v for k, v in {**private, **changes}.items() if v is not None}


@pytest.mark.parametrize("src, words", [
    (_jwk(kty="RSA"), "expected an Ed25519 JWK"),
    (_jwk(crv="X25519"), "crv 'X25519'"),
    (_jwk(x=None), "lacks the field 'x'"),
    (_jwk(x="AAAA"), "field 'x' must encode 32 bytes; found 3"),
    (_jwk(x="not base64url!"), "field 'x' must be unpadded base64url"),
    ('{"kty": "OKP", ', "malformed JSON"),
    (b"\xff\xfe", "malformed JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (42, "got int"),
])
def test_bad_public_keys(src, words):
    with pytest.raises(KeyFileError) as info:
        load_public_key(src)
    assert words in str(info.value)


def test_bad_key_files_are_named(tmp_path):
    missing = tmp_path / "nope.pub"
    with pytest.raises(KeyFileError, match="cannot read the key file") as info:
        load_public_key(missing)
    assert str(missing) in str(info.value)
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("hello")
    with pytest.raises(KeyFileError, match="malformed JSON") as info:
        load_public_key(garbage)
    assert str(garbage) in str(info.value)


def test_private_key_problems():
    private, public = generate_keypair()
    with pytest.raises(KeyFileError, match="no 'd'"):
        load_private_key(public)
    other, _ = generate_keypair()
    with pytest.raises(KeyFileError, match="do not belong to the same key pair"):
        load_private_key({**private, "d": other["d"]})

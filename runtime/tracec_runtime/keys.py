"""Ed25519 keys as JSON Web Keys (RFC 8037), via PyNaCl.

``NAME.pub`` = ``{"crv": "Ed25519", "kty": "OKP", "x": b64url}``; ``NAME.key``
adds ``"d"`` (the 32-byte seed) and is written with mode 0600.  Base64url is
unpadded (RFC 7515).  Every problem is a :class:`KeyFileError` naming the
source (a file path, or ``<dict>``, ``<bytes>``, ``<JSON string>``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Union

from nacl.signing import SigningKey, VerifyKey

from tracec_runtime.canonical import canonical_file_bytes
from tracec_runtime.errors import KeyFileError

__all__ = ["generate_keypair", "write_keypair", "load_public_key", "load_private_key", "keyid",
           "b64url_encode", "b64url_decode"]

KeySource = Union[str, os.PathLike, bytes, dict]
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url; ``ValueError`` on anything else."""
    if not isinstance(text, str) or not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex already filters
        raise ValueError("not unpadded base64url") from exc


def keyid(verify_key: VerifyKey) -> str:
    """Hex SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(bytes(verify_key)).hexdigest()


def _jwks(signing_key: SigningKey) -> tuple[dict, dict]:
    public = {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(bytes(signing_key.verify_key))}
    return {**public, "d": b64url_encode(bytes(signing_key))}, public


def generate_keypair() -> tuple[dict, dict]:
    """A fresh Ed25519 key pair as ``(private_jwk, public_jwk)``."""
    return _jwks(SigningKey.generate())


def write_keypair(name: Union[str, os.PathLike]) -> tuple[Path, Path]:
    """Write ``NAME.key`` (0600) and ``NAME.pub``; return both paths.

    Refuses (``KeyFileError``) if either file already exists; nothing is written then.
    """
    base = Path(name)
    key_path, pub_path = Path(f"{base}.key"), Path(f"{base}.pub")
    for path in (key_path, pub_path):
        if os.path.lexists(path):
            raise KeyFileError(f"{path}: already exists; refusing to overwrite a key file "
                               f"(choose another name or remove it first)")
    private, public = generate_keypair()
    _write_new(key_path, canonical_file_bytes(private), 0o600)
    try:
        _write_new(pub_path, canonical_file_bytes(public), 0o644)
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise
    return key_path, pub_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     mode)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key file") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create the key file ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # the umask must not widen or narrow what we asked for


def _read_jwk(src: KeySource) -> tuple[dict, str]:
    """Return ``(jwk dict, source label)`` for any accepted key source."""
    if isinstance(src, dict):
        return src, "<dict>"
    if isinstance(src, bytes):
        text, where = src, "<bytes>"
    elif isinstance(src, str) and src.lstrip().startswith("{"):
        text, where = src, "<JSON string>"
    elif isinstance(src, (str, os.PathLike)):
        where = str(src)
        try:
            text = Path(src).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"{where}: cannot read the key file ({exc.strerror})") from None
    else:
        raise KeyFileError(f"a key must be given as a path, bytes, a JSON string or a dict; "
                           f"got {type(src).__name__}")
    try:
        jwk = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyFileError(f"{where}: not a JSON Web Key: malformed JSON ({exc})") from None
    if not isinstance(jwk, dict):
        raise KeyFileError(f"{where}: not a JSON Web Key: expected a JSON object; "
                           f"found {type(jwk).__name__}")
    return jwk, where


def _field(jwk: dict, where: str, name: str) -> bytes:
    value = jwk.get(name)
    if value is None:
        raise KeyFileError(f"{where}: Ed25519 JWK lacks the field {name!r}")
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise KeyFileError(f"{where}: field {name!r} must be unpadded base64url; "
                           f"found {value!r:.60}") from None
    if len(raw) != 32:
        raise KeyFileError(f"{where}: field {name!r} must encode 32 bytes; found {len(raw)}")
    return raw


def _checked(jwk: dict, where: str) -> bytes:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise KeyFileError(f"{where}: expected an Ed25519 JWK (kty 'OKP', crv 'Ed25519'); "
                           f"found kty {jwk.get('kty')!r}, crv {jwk.get('crv')!r}")
    return _field(jwk, where, "x")


def load_public_key(src: Union[KeySource, VerifyKey]) -> VerifyKey:
    """The deployer's public key from a path, JWK bytes, a JWK JSON string or a dict."""
    if isinstance(src, VerifyKey):
        return src
    jwk, where = _read_jwk(src)
    return VerifyKey(_checked(jwk, where))


def load_private_key(src: Union[KeySource, SigningKey]) -> SigningKey:
    """A signing key from a private JWK (``"d"`` must match ``"x"``)."""
    if isinstance(src, SigningKey):
        return src
    jwk, where = _read_jwk(src)
    x = _checked(jwk, where)
    if "d" not in jwk:
        raise KeyFileError(f"{where}: this is a public key (no 'd'); signing needs NAME.key")
    key = SigningKey(_field(jwk, where, "d"))
    if bytes(key.verify_key) != x:
        raise KeyFileError(f"{where}: fields 'd' and 'x' do not belong to the same key pair")
    return key

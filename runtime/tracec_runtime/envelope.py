"""DSSE envelope around an in-toto Statement v1: build, seal, open.

The signature is Ed25519 over ``PAE(payloadType, payload)``; ``keyid`` is the
hex SHA-256 of the raw public key.  Opening an envelope verifies the payload
type and the signature *before* the statement is decoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Optional, Union

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from tracec_runtime.canonical import canonical_bytes, canonical_file_bytes, strict_json
from tracec_runtime.errors import SignatureError, UnsignedBundleError, UnsupportedFormatError
from tracec_runtime.keys import keyid, load_private_key, load_public_key
from tracec_runtime.paths import ENVELOPE, list_files, read_file

__all__ = ["PAYLOAD_TYPE", "STATEMENT_TYPE", "PREDICATE_TYPE", "FORMAT_VERSION", "MEDIA_TYPE",
           "READ_FORMAT_VERSIONS",
           "ENVELOPE", "pae", "build_statement", "make_envelope", "seal", "open_envelope",
           "open_envelope_signed",
           "strict_json"]

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://tracec.dev/bundle/v1"
FORMAT_VERSION = "2"  # 2: text-in bundles (manifest.embedder.input, the embedder's files)
READ_FORMAT_VERSIONS = ("1", "2")  # 1: every bundle is embedding-in
MEDIA_TYPE = "application/vnd.tracec.bundle.v1+json"


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding (lengths are byte lengths)."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def build_statement(bundle_dir: Union[str, os.PathLike]) -> dict:
    """The in-toto statement over every regular file but ``bundle.dsse.json`` (sorted)."""
    subjects = []
    for name in list_files(bundle_dir):
        if name == ENVELOPE:
            continue
        data = read_file(bundle_dir, name)
        if data is None:
            raise FileNotFoundError(f"{name} vanished while sealing {bundle_dir}")
        subjects.append({"name": name, "digest": {"sha256": hashlib.sha256(data).hexdigest()},
                         "annotations": {"size": str(len(data))}})
    return {"_type": STATEMENT_TYPE, "predicateType": PREDICATE_TYPE,
            "predicate": {"format_version": FORMAT_VERSION, "media_type": MEDIA_TYPE},
            "subject": subjects}


def make_envelope(statement: dict, signing_key: object = None) -> dict:
    """The DSSE envelope of ``statement`` (canonical payload); unsigned if no key."""
    payload = canonical_bytes(statement)
    signatures = []
    if signing_key is not None:
        key: SigningKey = load_private_key(signing_key)
        sig = key.sign(pae(PAYLOAD_TYPE, payload)).signature
        signatures.append({"keyid": keyid(key.verify_key),
                           "sig": base64.b64encode(sig).decode("ascii")})
    return {"payload": base64.b64encode(payload).decode("ascii"), "payloadType": PAYLOAD_TYPE,
            "signatures": signatures}


def seal(bundle_dir: Union[str, os.PathLike], signing_key: object = None) -> dict:
    """Hash the bundle and write ``bundle.dsse.json``; return the statement.

    ``signing_key``: a private JWK (dict, path, bytes, JSON str) or a ``SigningKey``;
    ``None`` writes an unsigned envelope (``"signatures": []``).
    """
    statement = build_statement(bundle_dir)
    data = canonical_file_bytes(make_envelope(statement, signing_key))
    target = Path(bundle_dir) / ENVELOPE
    tmp = target.with_name(f".{ENVELOPE}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return statement


def _b64(text: object, what: str, src: str) -> bytes:
    if not isinstance(text, str):
        raise SignatureError(f"{src}: {what} must be a base64 string; "
                             f"found {type(text).__name__}")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SignatureError(f"{src}: {what} is not valid base64") from None


def _check_signatures(signatures: list, payload: bytes, public_key: Optional[VerifyKey],
                      src: str) -> Optional[str]:
    """The keyid of ``public_key`` if one signature verifies with it; ``None`` if no key."""
    message = pae(PAYLOAD_TYPE, payload)
    found = []
    decoded = []
    for i, entry in enumerate(signatures):
        if not isinstance(entry, dict):
            raise SignatureError(f"{src}: signatures[{i}] must be an object")
        kid = entry.get("keyid", "")
        if not isinstance(kid, str):
            raise SignatureError(f"{src}: signatures[{i}].keyid must be a string")
        decoded.append(_b64(entry.get("sig"), f"signatures[{i}].sig", src))
        found.append(kid or "(none)")
    if public_key is None:
        return None
    for sig in decoded:  # keyid is only a hint: try the deployer's key on every signature
        try:
            public_key.verify(message, sig)
            return keyid(public_key)
        except (BadSignatureError, ValueError):
            continue
    expected = keyid(public_key)
    if expected not in found:
        raise SignatureError(f"{src}: no signature by the deployer's key: expected keyid "
                             f"{expected}, found {', '.join(found)}")
    raise SignatureError(f"{src}: the signature by keyid {expected} does not verify: "
                         f"the payload or the signature was altered")


def open_envelope(data: bytes, public_key: object = None, allow_unsigned: bool = False) -> dict:
    """Verify an envelope and return its statement; see :func:`open_envelope_signed`."""
    return open_envelope_signed(data, public_key, allow_unsigned)[0]


def open_envelope_signed(data: bytes, public_key: object = None, allow_unsigned: bool = False,
                         src: str = ENVELOPE) -> tuple[dict, Optional[str]]:
    """Verify an envelope; return ``(statement, keyid that verified or None)``.

    The statement is checked to be canonical JSON, not for content.

    Signed envelopes need ``public_key`` unless ``allow_unsigned`` (then the
    signature is not checked).  A supplied key is always enforced: an unsigned
    envelope with a key is refused even with ``allow_unsigned=True``.  Unsigned
    envelopes need ``allow_unsigned=True`` and no key.  ``public_key``
    is anything :func:`~tracec_runtime.keys.load_public_key` accepts; ``src``
    names the envelope in messages.
    """
    if public_key is not None:
        public_key = load_public_key(public_key)
    try:
        env = strict_json(data, floats=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignatureError(f"{src}: not a DSSE envelope: malformed JSON ({exc})") from None
    if not isinstance(env, dict) or not isinstance(env.get("signatures"), list):
        raise SignatureError(f"{src}: not a DSSE envelope: expected an object with "
                             f"'payload', 'payloadType' and a 'signatures' list")
    if env.get("payloadType") != PAYLOAD_TYPE:
        raise UnsupportedFormatError(f"{src}: payloadType must be {PAYLOAD_TYPE!r}; "
                                     f"found {env.get('payloadType')!r}")
    payload = _b64(env.get("payload"), "payload", src)
    signatures = env["signatures"]
    signer = None
    if not signatures:
        if public_key is not None:  # a supplied key is always enforced, allow_unsigned or not
            raise UnsignedBundleError(f"{src}: the bundle is unsigned (\"signatures\": []) but "
                                      f"the deployer's public key {keyid(public_key)} was "
                                      f"supplied: a removed signature is never accepted")
        if not allow_unsigned:
            raise UnsignedBundleError(f"{src}: the bundle is unsigned (\"signatures\": []); "
                                      f"pass the deployer's public key for a signed bundle, or "
                                      f"accept it unsafely (CLI: --allow-unsigned; Python: "
                                      f"allow_unsigned=True)")
    else:
        if public_key is None and not allow_unsigned:
            raise SignatureError(f"{src}: the bundle is signed but no public key was "
                                 f"supplied to check it against (CLI: --public-key NAME.pub; "
                             f"Python: public_key=)")
        signer = _check_signatures(signatures, payload, public_key, src)
    try:
        statement = strict_json(payload)  # a float is refused below, as not canonical
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignatureError(f"{src}: the payload is not valid JSON ({exc})") from None
    if not isinstance(statement, dict):
        raise UnsupportedFormatError(f"{src}: the statement must be a JSON object")
    try:
        canonical = canonical_bytes(statement) == payload
    except (TypeError, ValueError):  # floats, or strings that are not valid UTF-8
        canonical = False
    if not canonical:
        raise UnsupportedFormatError(f"{src}: the statement payload is not canonical JSON "
                                     f"(sorted keys, no spaces, no floats)")
    return statement, signer

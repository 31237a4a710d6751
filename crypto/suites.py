"""Signature suites: which algorithm a device key signs with, and the one check of a
signature (docs/evidence-format.md, "Version 4").

- ``ed25519``: a 32-byte Ed25519 public key (the key in a file); a 64-byte signature.
- ``ecdsa-p256-sha256``: a 65-byte SEC1 uncompressed P-256 point ``0x04 || X || Y`` (the key
  in a TPM); a 64-byte signature ``r || s`` (each 32 bytes, big-endian: the "raw" or P1363
  form WebCrypto uses) over SHA-256 of the message, with ``s <= n/2`` ("low-S").

The suite of a raw public key follows from its length; anything else is refused. A high-S
ECDSA signature is refused: ``(r, n - s)`` verifies whenever ``(r, s)`` does, so accepting
both would make a signed line, hence its hash, malleable.

Pure: PyNaCl, and ``cryptography`` for P-256, imported only when a P-256 key or signature
is in hand (an Ed25519 device and its verifier need PyNaCl alone: tests/test_imports.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import VerifyKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256-sha256"
SUITES = (ED25519, ECDSA_P256)

ED25519_KEY_BYTES = 32
P256_KEY_BYTES = 65  # 0x04 || X || Y
SIGNATURE_BYTES = 64
# the order of the P-256 group (FIPS 186-4, D.1.2.3)
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_HALF_N = P256_N // 2


def suite_of(public_key: bytes) -> str:
    """The suite a raw public key signs with, from its form; ``ValueError`` if neither."""
    raw = bytes(public_key)
    if len(raw) == ED25519_KEY_BYTES:
        return ED25519
    if len(raw) == P256_KEY_BYTES and raw[0] == 0x04:
        return ECDSA_P256
    raise ValueError(
        f"a device public key is 32 bytes (Ed25519) or 65 bytes starting 0x04 (P-256), "
        f"not {len(raw)} bytes"
    )


def p256_public_key(public_key: bytes) -> ec.EllipticCurvePublicKey:
    """The P-256 point of a 65-byte uncompressed key; ``ValueError`` if it is not one (not
    on the curve, the wrong length or form)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    raw = bytes(public_key)
    if len(raw) != P256_KEY_BYTES or raw[0] != 0x04:
        raise ValueError("a P-256 public key is 65 bytes: 0x04 || X || Y")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def _split(rs: bytes) -> tuple[int, int]:
    rs = bytes(rs)
    if len(rs) != SIGNATURE_BYTES:
        raise ValueError(f"an r||s signature is {SIGNATURE_BYTES} bytes, not {len(rs)}")
    return int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big")


def _join(r: int, s: int) -> bytes:
    if not (0 <= r < 1 << 256 and 0 <= s < 1 << 256):
        raise ValueError("r and s must each fit in 32 bytes")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def low_s(signature_rs: bytes) -> bytes:
    """``r || s`` with ``s`` replaced by ``n - s`` when ``s > n/2`` (the same signature's
    other form); a low-S signature is returned as it is."""
    r, s = _split(signature_rs)
    if not 0 < s < P256_N:
        raise ValueError("s is not in 1..n-1")
    return _join(r, P256_N - s if s > P256_HALF_N else s)


def der_to_rs(der: bytes) -> bytes:
    """A DER ECDSA-Sig-Value as 64 bytes ``r || s``; ``ValueError`` if it is not one."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(bytes(der))
    return _join(r, s)


def rs_to_der(rs: bytes) -> bytes:
    """64 bytes ``r || s`` as a DER ECDSA-Sig-Value."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    r, s = _split(rs)
    return encode_dss_signature(r, s)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the key's signature of ``message`` under the key's suite
    (``suite_of``). For P-256: 64 bytes ``r || s``, both in 1..n-1, ``s <= n/2``, over
    SHA-256 of ``message``. False for a key of neither form or a point not on the curve."""
    try:
        suite = suite_of(public_key)
    except ValueError:
        return False
    signature = bytes(signature)
    if len(signature) != SIGNATURE_BYTES:
        return False
    if suite == ED25519:
        try:
            VerifyKey(bytes(public_key)).verify(bytes(message), signature)
        except (BadSignatureError, CryptoError, ValueError, TypeError):
            return False
        return True
    return _verify_p256(public_key, message, signature)


def _verify_p256(public_key: bytes, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    r, s = _split(signature)
    if not (0 < r < P256_N and 0 < s <= P256_HALF_N):
        return False
    try:
        point = p256_public_key(public_key)
        point.verify(rs_to_der(signature), bytes(message), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True

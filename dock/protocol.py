"""The device ↔ dock wire protocol: ids, signed requests, signed answers, receipts.

Requests. Every device request carries five headers::

    Bwv-Device     the device id
    Bwv-Timestamp  the device's idea of the dock's time, Unix microseconds
    Bwv-Nonce      32 lowercase hex digits, never reused
    Content-Digest the body's SHA-256, RFC 9530: ``sha-256=:<base64 digest>:``; for a
                   whole segment's ``PUT`` its stored digest instead (docs/evidence-format.md,
                   "Stored digest"): ``bwv-stored=:<base64 digest>:``
    Bwv-Signature  base64 signature, by the device key, of the request string: 64 bytes,
                   Ed25519 or (a key in a TPM) ECDSA P-256 r||s, low-S (crypto/suites.py)

The request string is ``request_string(...)``: a domain tag, method, raw path with query,
the ``Content-Digest`` value, device id, timestamp and nonce, one per line. Since the body's
digest is signed in the headers, the dock checks the signature before it reads a byte of the
body, then checks the body against the digest as it streams in (dock/gate.py; a whole
segment's stored digest is checked as it is written, in one SHA-256 pass with the digest the
verification takes: dock/routes/whole.py). The dock refuses a timestamp outside its window
and a nonce it has seen within it.

Answers. Every answer of the dock (errors included) carries ``Bwv-Dock-Signature``: the dock
key's signature over ``response_string(status, request nonce, SHA-256 of body)``. Binding the
request's nonce makes an old answer useless to a replayer. Receipts are, besides, signed
objects of their own (``Receipt``, dock/receipts.py), so the device can keep one as proof.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from nacl.signing import SigningKey

from crypto.suites import verify_signature

H_DEVICE = "Bwv-Device"
H_TIMESTAMP = "Bwv-Timestamp"
H_NONCE = "Bwv-Nonce"
H_SIGNATURE = "Bwv-Signature"
H_CONTENT_DIGEST = "Content-Digest"
H_DOCK_SIGNATURE = "Bwv-Dock-Signature"
H_DOCK_KEY = "Bwv-Dock-Key"
# tus-style chunk headers
H_UPLOAD_OFFSET = "Upload-Offset"
H_UPLOAD_CHECKSUM = "Upload-Checksum"
H_UPLOAD_RECORD = "Upload-Record"  # a whole segment's PUT: its chain record, base64
# Content-Digest algorithms: the body's SHA-256 (RFC 9530), or a whole segment's stored digest
DIGEST_SHA256 = "sha-256"
DIGEST_STORED = "bwv-stored"

REQUEST_TAG = "bwv-dock-request-v2"
RESPONSE_TAG = "bwv-dock-response-v1"

# Ids. Device ids follow the device configuration's rule (letters, digits, - _ .), starting
# with a letter or digit so that no id is "." or ".."; segment ids are the SHA-256 of the
# segment's manifest, in lowercase hex. Neither can hold a path separator.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SEGMENT_ID_PATTERN = r"^[0-9a-f]{64}$"
NONCE_PATTERN = r"^[0-9a-f]{32}$"
HEX64_PATTERN = r"^[0-9a-f]{64}$"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_SEGMENT_ID = re.compile(SEGMENT_ID_PATTERN)
_NONCE = re.compile(NONCE_PATTERN)
_HEX64 = re.compile(HEX64_PATTERN)


class Code:
    """Machine-readable reasons in refusals (``{"detail": ..., "code": ...}``)."""

    # the request or the device: fix that, or wait
    UNSIGNED = "unsigned"
    UNKNOWN_DEVICE = "unknown_device"
    BAD_SIGNATURE = "bad_signature"
    REVOKED = "revoked"
    STALE = "stale_timestamp"  # sync time with the dock
    REPLAYED = "replayed"
    ADMIN = "admin_required"
    BAD_TOKEN = "bad_token"
    ENROLLED = "already_enrolled"
    ATTESTATION = "attestation"  # a TPM key without an attestation the dock accepts
    INVALID = "invalid"
    BODY_TOO_LARGE = "body_too_large"
    STORAGE = "storage"
    BUSY = "busy"  # too many uploads of this device at once: retry shortly
    QUOTA = "quota"  # too many open uploads, or declared bytes, for this device
    TIMEOUT = "timeout"  # the body stalled
    # this segment: the dock will not take it as it is
    TOO_LARGE = "too_large"
    MANIFEST_INVALID = "manifest_invalid"
    OTHER_DEVICE = "other_device"
    MISMATCH = "declared_mismatch"
    SEQ_REUSED = "seq_reused"
    CHAIN_BREAK = "chain_break"
    VERIFICATION = "verification_failed"
    WRONG_AGENCY_KEY = "wrong_agency_key"  # sealed to another agency key than the dock's
    # the upload's state moved: ask the dock where it stands
    NOT_FOUND = "not_found"
    OFFSET = "offset_mismatch"
    CHECKSUM = "checksum_mismatch"
    INCOMPLETE = "incomplete"
    COMPLETE = "already_complete"
    LOST = "upload_lost"

    SEGMENT = frozenset(
        {
            TOO_LARGE,
            MANIFEST_INVALID,
            OTHER_DEVICE,
            MISMATCH,
            SEQ_REUSED,
            CHAIN_BREAK,
            VERIFICATION,
            WRONG_AGENCY_KEY,
        }
    )
    REREAD = frozenset({NOT_FOUND, OFFSET, CHECKSUM, INCOMPLETE, COMPLETE, LOST})


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the text says what is wrong."""


def is_device_id(s: str) -> bool:
    return bool(_DEVICE_ID.fullmatch(s))


def is_segment_id(s: str) -> bool:
    return bool(_SEGMENT_ID.fullmatch(s))


def is_nonce(s: str) -> bool:
    return bool(_NONCE.fullmatch(s))


def is_hex64(s: str) -> bool:
    return bool(_HEX64.fullmatch(s))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def segment_id_for(manifest: bytes) -> str:
    """A segment's id on the wire: the SHA-256 of its manifest (a content address)."""
    return sha256_hex(manifest)


def key_id(public_key: bytes) -> str:
    """Short, stable name of an Ed25519 public key (first 16 hex digits of its SHA-256)."""
    return sha256_hex(public_key)[:16]


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8. Integers, strings, lists, dicts,
    booleans and null only (no floats), so another language can reproduce the bytes."""
    _check_no_floats(obj)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _check_no_floats(obj: Any) -> None:
    if isinstance(obj, float):
        raise ProtocolError("canonical JSON holds no floating-point numbers")
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ProtocolError("canonical JSON keys are strings")
            _check_no_floats(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _check_no_floats(v)


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64d(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ProtocolError("not valid base64") from exc


# --------------------------------------------------------------------------- requests


class Signer(Protocol):
    """Anything that signs with a device key: crypto.identity.DeviceIdentity, KeySigner, a
    TPM's signer."""

    def sign(self, message: bytes) -> bytes:
        """The 64-byte signature of ``message`` (Ed25519, or ECDSA P-256 ``r || s``)."""
        ...


@dataclass(frozen=True)
class KeySigner:
    """A PyNaCl signing key as a ``Signer``."""

    key: SigningKey

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message).signature

    @property
    def public_key(self) -> bytes:
        return bytes(self.key.verify_key)


@dataclass(frozen=True)
class SignedHeaders:
    device_id: str
    timestamp_us: int
    nonce: str
    signature: bytes
    content_digest: str  # the Content-Digest header's value (RFC 9530: sha-256, bwv-stored)

    def as_dict(self) -> dict[str, str]:
        return {
            H_DEVICE: self.device_id,
            H_TIMESTAMP: str(self.timestamp_us),
            H_NONCE: self.nonce,
            H_CONTENT_DIGEST: self.content_digest,
            H_SIGNATURE: b64e(self.signature),
        }

    @property
    def body_sha256(self) -> bytes:
        """The body's SHA-256 as the headers declare it (ProtocolError: not a sha-256)."""
        return parse_content_digest(self.content_digest)

    @property
    def body_digest(self) -> tuple[str, bytes]:
        """The body's digest as the headers declare it: its algorithm and value."""
        return parse_body_digest(self.content_digest)


def content_digest(body: bytes) -> str:
    """``Content-Digest`` of ``body`` (RFC 9530): ``sha-256=:<base64 SHA-256>:``."""
    return content_digest_of(hashlib.sha256(body).digest())


def content_digest_of(sha256_digest: bytes) -> str:
    return f"sha-256=:{b64e(sha256_digest)}:"


def stored_content_digest(stored_digest_hex: str) -> str:
    """``Content-Digest`` of a whole segment's body by its stored digest (hex)."""
    return f"{DIGEST_STORED}=:{b64e(bytes.fromhex(stored_digest_hex))}:"


def parse_content_digest(value: str | None) -> bytes:
    """The SHA-256 a ``Content-Digest`` header declares: exactly ``sha-256=:<base64>:``."""
    algorithm, raw = parse_body_digest(value)
    if algorithm != DIGEST_SHA256:
        raise ProtocolError(f"{H_CONTENT_DIGEST}: must be sha-256=:<base64 SHA-256>:")
    return raw


def parse_body_digest(value: str | None) -> tuple[str, bytes]:
    """What a ``Content-Digest`` header declares: exactly ``sha-256=:<base64>:`` (the body's
    SHA-256) or ``bwv-stored=:<base64>:`` (a whole segment's stored digest)."""
    m = re.fullmatch(r"(sha-256|bwv-stored)=:([A-Za-z0-9+/=]{1,100}):", value or "")
    if m is None:
        raise ProtocolError(
            f"{H_CONTENT_DIGEST}: must be sha-256=:<base64 SHA-256>: "
            "(or, for a whole segment, bwv-stored=:<base64 stored digest>:)"
        )
    raw = b64d_or(m.group(2), H_CONTENT_DIGEST)
    if len(raw) != 32:
        raise ProtocolError(f"{H_CONTENT_DIGEST}: a {m.group(1)} digest is 32 bytes")
    return m.group(1), raw


def request_string(
    method: str, raw_path: str, digest_header: str, device_id: str, timestamp_us: int, nonce: str
) -> bytes:
    """What the device key signs for one request. ``raw_path`` is the path as sent, with
    ``?query`` if any, before any percent-decoding; ``digest_header`` the Content-Digest."""
    return "\n".join(
        [REQUEST_TAG, method.upper(), raw_path, digest_header, device_id, str(timestamp_us), nonce]
    ).encode()


def sign_request(
    signer: Signer,
    method: str,
    raw_path: str,
    body: bytes,
    device_id: str,
    timestamp_us: int,
    nonce: str,
    body_sha256: str | None = None,
    digest_header: str | None = None,
) -> SignedHeaders:
    """Sign a request (``body_sha256``: the body's hash in hex, if already known;
    ``digest_header``: the Content-Digest to sign as it is, e.g. a whole segment's)."""
    if digest_header is not None:
        digest = digest_header
    elif body_sha256:
        digest = content_digest_of(bytes.fromhex(body_sha256))
    else:
        digest = content_digest(body)
    msg = request_string(method, raw_path, digest, device_id, timestamp_us, nonce)
    return SignedHeaders(device_id, timestamp_us, nonce, signer.sign(msg), digest)


def parse_signed_headers(headers: Any) -> SignedHeaders:
    """Read the signing headers (any mapping with ``get``); ProtocolError names the fault."""
    named = (H_DEVICE, H_TIMESTAMP, H_NONCE, H_CONTENT_DIGEST, H_SIGNATURE)
    device_id, ts, nonce, digest, sig = (headers.get(h) for h in named)
    missing = [h for h, v in zip(named, (device_id, ts, nonce, digest, sig), strict=True) if not v]
    if missing:
        raise ProtocolError(f"unsigned request: missing header(s) {', '.join(missing)}")
    if not is_device_id(device_id):
        raise ProtocolError(f"{H_DEVICE}: not a valid device id")
    if not re.fullmatch(r"-?[0-9]{1,19}", ts):
        raise ProtocolError(f"{H_TIMESTAMP}: must be an integer (Unix microseconds)")
    if not is_nonce(nonce):
        raise ProtocolError(f"{H_NONCE}: must be 32 lowercase hex digits")
    parse_body_digest(digest)
    signature = b64d_or(sig, H_SIGNATURE)
    if len(signature) != 64:
        raise ProtocolError(f"{H_SIGNATURE}: a signature is 64 bytes")
    return SignedHeaders(device_id, int(ts), nonce, signature, digest)


def b64d_or(text: str, what: str) -> bytes:
    try:
        return b64d(text)
    except ProtocolError:
        raise ProtocolError(f"{what}: not valid base64") from None


def verify_request(
    public_key: bytes,
    h: SignedHeaders,
    method: str,
    raw_path: str,
    body: bytes | None,
    body_sha256: str | None = None,
) -> bool:
    """Check a request's signature over its headers and, if ``body`` is given (or its hash,
    ``body_sha256``), that the body is the one the signed Content-Digest names. With
    ``body=None`` only the headers are checked: the body is checked as it streams in."""
    if body is not None or body_sha256 is not None:
        try:
            declared = h.body_sha256
        except ProtocolError:
            return False
        actual = bytes.fromhex(body_sha256) if body_sha256 else hashlib.sha256(body or b"").digest()
        if declared != actual:
            return False
    msg = request_string(method, raw_path, h.content_digest, h.device_id, h.timestamp_us, h.nonce)
    return verify_detached(public_key, msg, h.signature)


def verify_detached(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the key's, under the suite its form gives (32 bytes:
    Ed25519; 65: ECDSA P-256, low-S): crypto.suites.verify_signature."""
    return verify_signature(bytes(public_key), bytes(message), bytes(signature))


# --------------------------------------------------------------------------- answers


def response_string(status: int, request_nonce: str, body_sha256: str) -> bytes:
    return "\n".join([RESPONSE_TAG, str(status), request_nonce, body_sha256]).encode()


def sign_response(key: SigningKey, status: int, request_nonce: str, body: bytes) -> str:
    return b64e(key.sign(response_string(status, request_nonce, sha256_hex(body))).signature)


def verify_response(
    dock_public_key: bytes, status: int, request_nonce: str, body: bytes, signature_b64: str | None
) -> bool:
    if not signature_b64:
        return False
    try:
        sig = b64d(signature_b64)
    except ProtocolError:
        return False
    return verify_detached(
        dock_public_key, response_string(status, request_nonce, sha256_hex(body)), sig
    )


# --------------------------------------------------------------------------- chunks


def chunk_checksum_header(chunk: bytes) -> str:
    """``Upload-Checksum`` value for a chunk, tus style: ``sha256 <base64 digest>``."""
    return "sha256 " + b64e(hashlib.sha256(chunk).digest())


def parse_chunk_checksum(value: str | None) -> bytes:
    if not value:
        raise ProtocolError(f'{H_UPLOAD_CHECKSUM}: required ("sha256 <base64 digest>")')
    algo, _, digest = value.partition(" ")
    if algo != "sha256":
        raise ProtocolError(f"{H_UPLOAD_CHECKSUM}: only sha256 is supported (got {algo!r})")
    raw = b64d_or(digest.strip(), H_UPLOAD_CHECKSUM)
    if len(raw) != 32:
        raise ProtocolError(f"{H_UPLOAD_CHECKSUM}: a sha256 digest is 32 bytes")
    return raw

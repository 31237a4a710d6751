"""Encryption at rest: a fresh key per segment, libsodium secretstream, key sealed to the agency.

Stored segment file (crypto/FORMAT.md, "Stored segment file")::

    "BWVSEG" | version u16 BE (=2) | context length u32 BE | context (canonical JSON)
    | sealed segment key (80 bytes: SealedBox to the agency's X25519 key)
    | secretstream header (24 bytes)
    | chunks: ciphertext length u32 BE | ciphertext (secretstream XChaCha20-Poly1305)

Everything before the first chunk is the *header*; every chunk is pushed with the 32-byte
SHA-256 of the header as additional data. Chunk 0 is the init blob (ftyp+moov), then one
chunk per fragment, each tagged MESSAGE; a segment closed normally ends with an empty chunk
tagged FINAL. No FINAL chunk means the segment was cut short.

The device holds the segment key only in memory while the segment is open and cannot
decrypt: only the agency's private key opens the sealed key.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field, replace
from typing import Any

import nacl.bindings as sodium
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from crypto import canonical

MAGIC = b"BWVSEG"
VERSION = 2  # v1 was never deployed: readers refuse it
MAX_CONTEXT = 4096
SEALED_KEY_BYTES = 32 + 48  # key + crypto_box_SEALBYTES
HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES  # 24
ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES  # 17
TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
LEN = struct.Struct(">I")
MAX_CHUNK = 0xFFFF_FFFF
_KEY_ID = re.compile(r"[0-9a-f]{16}\Z")


def agency_key_id(agency_public_key: PublicKey | bytes) -> str:
    """The agency key id: first 16 hex digits of SHA-256 of the 32-byte X25519 public key."""
    return hashlib.sha256(bytes(agency_public_key)).hexdigest()[:16]


class SealFormatError(ValueError):
    """A stored segment whose header cannot be read."""


CONTEXT_FIELDS = (
    "device_id",
    "key_id",
    "recording_id",
    "segment_index",
    "start_us",
    "wall_start_us",
    "wall_quality",
    "trigger",
    "agency_key_id",
)


@dataclass(frozen=True)
class SegmentContext:
    """Who made a segment and when it started: in clear in the header, bound to every chunk
    (the header's hash is each chunk's additional data), signed in the trail's init record
    and in the manifest (``header_sha256``)."""

    device_id: str
    key_id: str
    recording_id: str
    segment_index: int
    start_us: int
    wall_start_us: int
    wall_quality: str
    trigger: dict[str, Any] = field(default_factory=dict)
    agency_key_id: str = ""  # of the agency key the segment key is sealed to (set when sealing)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in CONTEXT_FIELDS}


def frame(ciphertext: bytes) -> bytes:
    """A chunk as stored: 4-byte big-endian length, then the ciphertext."""
    if len(ciphertext) > MAX_CHUNK:
        raise ValueError("chunk too large")
    return LEN.pack(len(ciphertext)) + ciphertext


def build_header(context: SegmentContext, sealed_key: bytes, stream_header: bytes) -> bytes:
    ctx = canonical.encode(context.to_dict())
    if len(ctx) > MAX_CONTEXT:
        raise ValueError("segment context too large")
    return MAGIC + struct.pack(">HI", VERSION, len(ctx)) + ctx + sealed_key + stream_header


class SegmentEncryptor:
    """Encrypts one segment's blobs. Holds the segment key's stream state in memory only."""

    def __init__(self, agency_public_key: PublicKey, context: SegmentContext) -> None:
        kid = agency_key_id(agency_public_key)
        if context.agency_key_id not in ("", kid):
            raise ValueError(
                f"the context names agency key {context.agency_key_id}, the segment key "
                f"would be sealed to {kid}"
            )
        self.context = replace(context, agency_key_id=kid)  # the header signs what it seals to
        context = self.context
        key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
        state = sodium.crypto_secretstream_xchacha20poly1305_state()
        stream_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
        self._state: sodium.crypto_secretstream_xchacha20poly1305_state | None = state
        sealed = SealedBox(agency_public_key).encrypt(key)
        del key  # the only copy left is in the stream state (and sealed to the agency)
        self.header = build_header(context, bytes(sealed), stream_header)
        self.ad = hashlib.sha256(self.header).digest()
        self.finished = False

    def push(self, plaintext: bytes, final: bool = False) -> bytes:
        """The ciphertext of the next chunk (not yet framed)."""
        if self._state is None or self.finished:
            raise RuntimeError("the segment key is gone (segment closed)")
        tag = TAG_FINAL if final else TAG_MESSAGE
        c = sodium.crypto_secretstream_xchacha20poly1305_push(self._state, plaintext, self.ad, tag)
        if final:
            self.finished = True
        return c

    def forget(self) -> None:
        """Wipe the stream state (best effort in Python) and drop it."""
        st = self._state
        if st is not None:
            n = len(st.statebuf)
            # PyNaCl annotates statebuf as ByteString; it is a writable cffi char buffer
            st.statebuf[0:n] = b"\x00" * n  # type: ignore[index]
        self._state = None

    def __repr__(self) -> str:
        return f"SegmentEncryptor(open={self._state is not None})"


# -- reading -------------------------------------------------------------------------------
@dataclass
class ParsedSegment:
    """A stored segment split into its parts, without decrypting.

    ``chunks`` are the whole chunks in order (ciphertexts, without their length prefix);
    ``offsets`` where each starts (its length prefix); ``end`` where parsing stopped, and
    ``problem`` why, if it stopped before the end of the data (a torn or damaged chunk)."""

    context: SegmentContext
    context_raw: dict[str, Any]
    header: bytes
    sealed_key: bytes
    stream_header: bytes
    chunks: list[bytes] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    end: int = 0
    problem: str | None = None

    @property
    def header_sha256(self) -> str:
        return hashlib.sha256(self.header).hexdigest()


def parse_header(data: bytes) -> tuple[SegmentContext, dict[str, Any], int]:
    """The context and the header's length; ``SealFormatError`` if it is not one."""
    if len(data) < len(MAGIC) + 6 or data[: len(MAGIC)] != MAGIC:
        raise SealFormatError("not a bwv stored segment (bad magic)")
    version, n = struct.unpack_from(">HI", data, len(MAGIC))
    if version != VERSION:
        raise SealFormatError(
            f"stored segment format version {version}: this reader knows version {VERSION} only"
        )
    if n > MAX_CONTEXT:
        raise SealFormatError("context length out of range")
    pos = len(MAGIC) + 6
    end = pos + n + SEALED_KEY_BYTES + HEADER_BYTES
    if len(data) < end:
        raise SealFormatError("header cut short")
    try:
        ctx = canonical.decode(bytes(data[pos : pos + n]))
    except canonical.CanonicalError as exc:
        raise SealFormatError(f"context is not canonical JSON ({exc})") from None
    if not (isinstance(ctx, dict) and set(ctx) == set(CONTEXT_FIELDS) and _context_ok(ctx)):
        raise SealFormatError("context does not have the expected fields")
    return SegmentContext(**ctx), ctx, end


def _context_ok(ctx: dict[str, Any]) -> bool:
    def is_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    return (
        all(isinstance(ctx[k], str) for k in ("device_id", "key_id", "recording_id"))
        and all(is_int(ctx[k]) for k in ("segment_index", "start_us", "wall_start_us"))
        and isinstance(ctx["wall_quality"], str)
        and isinstance(ctx["trigger"], dict)
        and isinstance(ctx["agency_key_id"], str)
        and bool(_KEY_ID.match(ctx["agency_key_id"]))
    )


def parse_chunks(data: bytes, start: int) -> tuple[list[bytes], list[int], int, str | None]:
    """Split ``data[start:]`` into framed chunks: (chunks, offsets, end, problem)."""
    chunks: list[bytes] = []
    offsets: list[int] = []
    pos = start
    n = len(data)
    while pos < n:
        if pos + LEN.size > n:
            return chunks, offsets, pos, f"torn chunk length at offset {pos}"
        (size,) = LEN.unpack_from(data, pos)
        if size < ABYTES:
            return chunks, offsets, pos, f"impossible chunk length {size} at offset {pos}"
        if pos + LEN.size + size > n:
            return chunks, offsets, pos, f"chunk at offset {pos} runs past the end of the file"
        offsets.append(pos)
        chunks.append(bytes(data[pos + LEN.size : pos + LEN.size + size]))
        pos += LEN.size + size
    return chunks, offsets, pos, None


def parse_segment(data: bytes) -> ParsedSegment:
    context, raw, hdr_end = parse_header(data)
    n = len(MAGIC) + 6 + len(canonical.encode(raw))
    chunks, offsets, end, problem = parse_chunks(data, hdr_end)
    return ParsedSegment(
        context=context,
        context_raw=raw,
        header=bytes(data[:hdr_end]),
        sealed_key=bytes(data[n : n + SEALED_KEY_BYTES]),
        stream_header=bytes(data[n + SEALED_KEY_BYTES : hdr_end]),
        chunks=chunks,
        offsets=offsets,
        end=end,
        problem=problem,
    )


@dataclass
class Decrypted:
    """What the agency reads from a stored segment.

    ``blobs``: the plaintext of each chunk that decrypted, in order (init first; the empty
    FINAL chunk is not included). ``final``: the FINAL tag was seen (the segment is whole).
    ``error``: why decryption stopped early, if it did (wrong key, a damaged or reordered
    chunk, data after FINAL, a torn chunk)."""

    context: SegmentContext | None
    blobs: list[bytes]
    final: bool
    error: str | None

    @property
    def plaintext(self) -> bytes:
        return b"".join(self.blobs)

    @property
    def truncated(self) -> bool:
        return not self.final


def decrypt_segment(data: bytes, agency_private_key: PrivateKey | bytes) -> Decrypted:
    """Decrypt a stored segment (optionally followed by its ``.unsigned`` tail's bytes).

    Never raises for bad data: problems are in ``error``, truncation in ``final``."""
    sk = agency_private_key
    if not isinstance(sk, PrivateKey):
        sk = PrivateKey(bytes(sk))
    try:
        seg = parse_segment(data)
    except SealFormatError as exc:
        return Decrypted(None, [], False, str(exc))
    try:
        key = SealedBox(sk).decrypt(seg.sealed_key)
    except (CryptoError, ValueError, TypeError):
        return Decrypted(seg.context, [], False, "the segment key does not open with this key")
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    blobs: list[bytes] = []
    final = False
    error: str | None = None
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, seg.stream_header, key)
    except (CryptoError, ValueError, TypeError):
        return Decrypted(seg.context, [], False, "bad secretstream header")
    ad = hashlib.sha256(seg.header).digest()
    for i, c in enumerate(seg.chunks):
        if final:
            error = f"data after the final chunk (chunk {i})"
            break
        try:
            m, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, c, ad)
        except (CryptoError, ValueError, TypeError):
            error = f"chunk {i} does not decrypt (altered, reordered or from elsewhere)"
            break
        if tag == TAG_FINAL:
            final = True
            if m:
                blobs.append(m)
        elif tag == TAG_MESSAGE:
            blobs.append(m)
        else:
            error = f"chunk {i} has an unexpected tag {tag}"
            break
    if error is None and seg.problem is not None:
        error = seg.problem
    return Decrypted(seg.context, blobs, final, error)

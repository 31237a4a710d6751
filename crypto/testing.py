"""Helpers for tests and tools: deterministic identities and synthetic recordings.

Random bytes stand in for MP4 blobs: the crypto layer never looks inside them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from nacl.public import PrivateKey

from crypto.evidence import EvidenceSink, SegmentInfo
from crypto.identity import DeviceIdentity, check_device_id, key_id_of
from crypto.records import Counter, Signer
from crypto.suites import ECDSA_P256, P256_N, der_to_rs, low_s

S = 1_000_000
WALL0 = 1_700_000_000 * S  # an arbitrary wall-clock origin (Unix µs)


def seed(label: str) -> bytes:
    """32 bytes derived from ``label`` (deterministic test keys)."""
    return hashlib.sha256(b"bwv test seed:" + label.encode()).digest()


def blob(label: str, size: int) -> bytes:
    """``size`` deterministic pseudo-random bytes."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


def device_identity(device_id: str = "sim-test-01") -> DeviceIdentity:
    return DeviceIdentity.from_seed(device_id, seed("device:" + device_id))


def agency_key(label: str = "agency") -> PrivateKey:
    return PrivateKey(seed(label))


class SoftP256Signer:
    """A TPM's device key in software (tests and vectors only): a P-256 key from a seed,
    signing as ``tpm.signer.TpmSigner`` does (64 bytes ``r || s``, low-S), deterministically
    (RFC 6979), so vectors are made again byte for byte."""

    suite = ECDSA_P256

    def __init__(self, device_id: str, secret: bytes) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.device_id = check_device_id(device_id)
        scalar = int.from_bytes(hashlib.sha256(b"bwv soft p256:" + secret).digest(), "big")
        self._key = ec.derive_private_key(scalar % (P256_N - 1) + 1, ec.SECP256R1())
        self.public_key: bytes = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.key_id: str = key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        der = self._key.sign(bytes(message), ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        return low_s(der_to_rs(der))

    def secret_scalar_for_vectors(self) -> int:
        """The private scalar (TEST KEYS ONLY: for vectors that other languages sign with)."""
        value: int = self._key.private_numbers().private_value
        return value

    def __repr__(self) -> str:
        return f"SoftP256Signer(device_id={self.device_id!r}, key_id={self.key_id!r})"


def p256_signer(device_id: str = "sim-test-01") -> SoftP256Signer:
    return SoftP256Signer(device_id, seed("p256 device:" + device_id))


class SoftCounter:
    """A TPM's monotonic counter in memory (tests and vectors): ``next`` adds one."""

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def next(self) -> int:
        self.value += 1
        return self.value


@dataclass
class Written:
    """What a synthetic recording put through the sink."""

    recording_id: str
    blobs: dict[int, list[bytes]] = field(default_factory=dict)  # segment -> [init, frags]
    paths: dict[int, Path] = field(default_factory=dict)


def make_sink(
    root: Path,
    identity: Signer,
    agency: PrivateKey,
    firmware: str = "bwv-test-1",
    counter: Counter | None = None,
) -> EvidenceSink:
    """An evidence sink under ``root``; a ``SoftP256Signer`` gets a ``SoftCounter`` from 0
    unless ``counter`` is given."""
    if counter is None and identity.suite == ECDSA_P256:
        counter = SoftCounter()
    return EvidenceSink(
        root / "outbox",
        identity,
        bytes(agency.public_key),
        firmware,
        root / "state" / "chain.json",
        counter,
    )


def segment_info(recording_id: str, index: int, seg_us: int = 2 * S) -> SegmentInfo:
    start = 10 * S + index * seg_us
    return SegmentInfo(
        recording_id=recording_id,
        segment_index=index,
        start_us=start,
        wall_start_us=WALL0 + start,
        wall_quality="unsynced",
        trigger={"press_us": 12 * S, "pre_record_start_us": 10 * S, "press_frame": 360},
    )


def write_segment(
    sink: EvidenceSink,
    written: Written,
    index: int,
    fragments: int,
    size: int = 200,
    close: bool = True,
) -> None:
    """Open segment ``index``, write init + ``fragments`` fragments, close it if asked."""
    info = segment_info(written.recording_id, index, seg_us=fragments * S)
    sink.open_segment(info)
    tag = f"{written.recording_id}/{index}"
    init = blob(tag + "/init", 64)
    sink.write_init(init)
    blobs = [init]
    written.blobs[index] = blobs
    for k in range(fragments):
        frag = blob(f"{tag}/{k}", size + 7 * k)
        sink.write_fragment(frag, info.start_us + k * S, info.start_us + (k + 1) * S)
        blobs.append(frag)
    if close:
        end = info.start_us + fragments * S
        written.paths[index] = sink.close_segment(end, WALL0 + end)


def write_recording(
    sink: EvidenceSink,
    recording_id: str,
    segments: int,
    fragments: int,
    size: int = 200,
    reason: str = "stopped",
) -> Written:
    written = Written(recording_id)
    for i in range(segments):
        write_segment(sink, written, i, fragments, size)
    sink.end_recording(recording_id, reason, 10 * S + segments * fragments * S)
    return written

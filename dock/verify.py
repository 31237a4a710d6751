"""What the dock checks about one upload: the verifier interface and crypto/'s chain records.

The dock holds the device's public key, never the agency's private key, so it checks what it
can without decrypting: the record's signature (by the enrolled key, of this device), that
the stored blob hashes to what the record names, and that the record names as its
predecessor the record the dock holds for the previous sequence number.

An upload is one chain record (crypto/manifest.py: a segment's manifest, or the end record
of a recording, or one of the device's time records, ``time_sync`` and ``clock_step``: these
have no stored blob, their upload is empty) and the stored blob.

``SegmentVerifier`` is the interface the server uses; ``ChainRecordVerifier`` implements it
with crypto/records.py. Another manifest format plugs in by implementing the interface.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from crypto.digests import StoredDigest
from crypto.records import CHAIN_TYPES, RecordError, parse_line, validate
from crypto.verify import Report, check_chain_record
from dock.protocol import sha256_hex

EMPTY_SHA256 = sha256_hex(b"")


class ManifestError(ValueError):
    """A manifest that cannot be read at all."""


@dataclass(frozen=True)
class ManifestFields:
    """What the dock needs from a chain record (``raw`` keeps every field the device signed)."""

    record_type: str  # "manifest" (a segment), "end" (a recording's end), "time_sync" or
    #                   "clock_step" (the device's time records): only a manifest has a blob
    device_id: str
    key_id: str
    recording_id: str | None  # None: a time record (of no recording)
    segment_index: int | None
    seq: int  # device-wide, never reused
    stored_digest: str  # of the stored (encrypted) blob; an empty record: SHA-256 of nothing
    stored_size: int
    prev_manifest_sha256: str | None  # None: the first record of the device's chain
    manifest_sha256: str  # hash of this record's bytes, as the next one names it
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    problems: tuple[str, ...]
    fields: ManifestFields | None
    gap: bool  # the record names a predecessor the dock does not hold


class SegmentVerifier(Protocol):
    def parse(self, manifest: bytes) -> ManifestFields:
        """Read a manifest without checking its signature; ManifestError if unreadable."""
        ...

    def verify(
        self,
        device_public_key: bytes,
        manifest: bytes,
        stored: BinaryIO,
        previous_manifest_sha256: str | None,
        received: StoredDigest | None = None,
    ) -> VerifyResult:
        """Check the signature, the stored blob's hash (``stored`` is read to its end, or,
        when given, ``received``, its ``StoredDigest`` taken as the bytes arrived, is taken
        instead) and the link to the previous manifest, when the dock holds it (else pass
        None)."""
        ...


class ChainRecordVerifier:
    """crypto/'s signed chain records (manifest and end; crypto/FORMAT.md), checked with
    crypto.verify.check_chain_record, the per-record check crypto/ provides for the dock."""

    types = CHAIN_TYPES
    kept = 32  # records whose fields are kept, the last read

    def __init__(self) -> None:
        # an upload's record is read at its creation, its checks and its completion: read
        # once (the fields of exactly these bytes; a record that cannot be read is not kept)
        self._read: dict[bytes, ManifestFields] = {}
        self._lock = threading.Lock()

    def parse(self, manifest: bytes) -> ManifestFields:
        key = bytes(manifest)
        with self._lock:
            fields = self._read.get(key)
        if fields is None:
            fields = self._parse(key)
            with self._lock:
                self._read[key] = fields
                if len(self._read) > self.kept:
                    del self._read[next(iter(self._read))]
        return fields

    def _parse(self, manifest: bytes) -> ManifestFields:
        try:
            record, _ = parse_line(manifest)
            validate(record)
        except RecordError as exc:
            raise ManifestError(f"not a chain record ({exc.reason}: {exc.detail})") from None
        if record["type"] not in self.types:
            raise ManifestError(f"a {record['type']} record is not shipped to the dock")
        segment = record["type"] == "manifest"
        return ManifestFields(
            record_type=record["type"],
            device_id=record["device_id"],
            key_id=record["key_id"],
            recording_id=record.get("recording_id"),
            segment_index=record["segment_index"] if segment else None,
            seq=record["seq"],
            stored_digest=record["stored_digest"] if segment else EMPTY_SHA256,
            stored_size=record["stored_size"] if segment else 0,
            prev_manifest_sha256=record["prev_sha256"],
            manifest_sha256=sha256_hex(manifest),
            raw=record,
        )

    def verify(
        self,
        device_public_key: bytes,
        manifest: bytes,
        stored: BinaryIO,
        previous_manifest_sha256: str | None,
        received: StoredDigest | None = None,
    ) -> VerifyResult:
        try:
            f = self.parse(manifest)
        except ManifestError as exc:
            return VerifyResult(False, (str(exc),), None, False)
        if f.record_type == "manifest":
            check = check_chain_record(
                manifest,
                device_public_key,
                previous_manifest_sha256,
                stored if received is None else received,
                f.device_id,
            )
            return VerifyResult(check.ok, check.problems, f, check.gap)
        # an end or time record has no stored file: its upload must be empty
        check = check_chain_record(
            manifest, device_public_key, previous_manifest_sha256, None, f.device_id
        )
        problems = list(check.problems)
        if stored.read(1):
            problems.append(f"the {f.record_type} record's upload carries bytes")
        return VerifyResult(not problems, tuple(problems), f, check.gap)


def default_verifier() -> SegmentVerifier:
    return ChainRecordVerifier()


# -- a recording's state after re-checking its stored bytes ---------------------------------

# findings that say something was changed, swapped or is unreadable: the stored bytes or
# records are not what the camera signed
TAMPER_KINDS = frozenset(
    {
        "altered",
        "substituted",
        "reordered",
        "duplicate",
        "chain_break",
        "malformed",
        "misnamed",
        "unrecognized",
        "undecryptable",
        "torn",
    }
)
# findings that say a recording was cut off (crash, full disk, power): what was signed is
# there and verifies; it is the end that is not the officer's
INTERRUPTED_KINDS = frozenset({"ended_early", "truncated", "unsigned"})


def reverified_state(report: Report, recording_id: str) -> tuple[str, str]:
    """(state, detail) of one recording from ``crypto.verify`` run on the dock's copies:
    ``failed`` only when something is altered (a chunk, a record, the chain), ``gap`` when
    something is missing, ``incomplete`` without an end record, ``ended_early`` when it was
    interrupted but every signed byte verifies, else ``verified``."""
    segs = [s for s in report.segments if s.recording_id in (recording_id, None)]
    rec = next((r for r in report.recordings if r.recording_id == recording_id), None)
    kinds = {f.kind for f in report.findings}
    detail = "; ".join(f"{f.kind}: {f.detail}" for f in report.findings[:3])
    if report.ok:
        return "verified", "stored bytes re-verified"
    if kinds & {"missing", "gap"} or any(s.status == "missing" for s in segs):
        return "gap", detail
    bad_segment = any(s.status not in ("authentic", "missing") for s in segs)
    if bad_segment or kinds & TAMPER_KINDS or not kinds <= INTERRUPTED_KINDS | {"cut_short"}:
        return "failed", detail
    if (rec is not None and rec.status == "cut_short") or "cut_short" in kinds:
        return "incomplete", detail
    return "ended_early", f"{detail} (every signed byte verifies)"

"""The device's chain: signed manifests (one per segment), end-of-recording records, and the
device's time records (``time_sync``, ``clock_step``: crypto/records.py).

One chain per device, across recordings and reboots: every chain record has a device-wide
sequence number ``seq`` (0, 1, 2, ...; never reused) and names the SHA-256 of the previous
record's file as ``prev_sha256`` (``null`` for seq 0). Each record is one file,
``chain/<seq:012d>.<type>.json``, written atomically.

The chain state (next seq, hash of the last record, the recordings still open) is kept in
``chain_state_path`` (written atomically, fsync'd). The record file is written *before* the
state, so a power cut between the two leaves a record the state does not know yet; opening
the chain adopts such records (they are signed by this device and link to the state's last
record), so a sequence number is never handed out twice.

The recorder's thread signs manifests and end records while the shipper's signs time
records: ``Chain.append`` hands out a sequence number and writes its record under one lock.

A key held in a TPM (suite ``ecdsa-p256-sha256``) comes with the TPM's monotonic counter
(``Counter``): each chain record carries the counter's value after one increment made for
that record, so records removed from the chain, or a chain rolled back to an earlier copy,
show as a gap in the counters however well the rest of the chain links up. An Ed25519 key
(a key in a file) has no counter: its records say ``"counter": null``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto import canonical
from crypto.digests import plain_digest_from, stored_digest_from
from crypto.durable import write_atomic
from crypto.records import (
    CHAIN_TYPES,
    TIME_TYPES,
    VERSION,
    Counter,
    RecordError,
    SignedRecord,
    Signer,
    sign_record,
    validate,
    verify_line,
)
from crypto.suites import ECDSA_P256, ED25519

CHAIN_DIR = "chain"
STATE_VERSION = 1
KEEP_ENDED = 16  # ended recordings remembered (a recording paused by a full disk resumes)
_CHAIN_NAME = re.compile(r"(\d{12})\.(manifest|end|time_sync|clock_step)\.json\Z")


class ChainStateError(Exception):
    """The chain state cannot be trusted: the device must not sign until someone looks."""


def chain_file_name(seq: int, record_type: str) -> str:
    return f"{seq:012d}.{record_type}.json"


def parse_chain_file_name(name: str) -> tuple[int, str] | None:
    m = _CHAIN_NAME.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


@dataclass
class RecordingState:
    segments: list[int] = field(default_factory=list)  # indices with a manifest
    ended: bool = False
    end_us: int = 0  # capture time of the end of its last segment or end record


@dataclass
class ChainState:
    next_seq: int = 0
    prev_sha256: str | None = None
    recordings: dict[str, RecordingState] = field(default_factory=dict)

    def apply(self, rec: SignedRecord) -> None:
        r = rec.record
        self.next_seq = r["seq"] + 1
        self.prev_sha256 = rec.sha256
        if r["type"] in TIME_TYPES:  # of no recording
            return
        state = self.recordings.pop(r["recording_id"], None) or RecordingState()
        self.recordings[r["recording_id"]] = state  # most recent last
        state.end_us = r["end_us"]
        if r["type"] == "manifest":
            if r["segment_index"] not in state.segments:
                state.segments.append(r["segment_index"])
            state.ended = False
        else:
            state.ended = True
        ended = [k for k, v in self.recordings.items() if v.ended]
        for k in ended[:-KEEP_ENDED]:
            del self.recordings[k]

    def open_recordings(self) -> list[str]:
        return [k for k, v in self.recordings.items() if not v.ended]

    def to_bytes(self) -> bytes:
        return (
            canonical.encode(
                {
                    "version": STATE_VERSION,
                    "next_seq": self.next_seq,
                    "prev_sha256": self.prev_sha256,
                    "recordings": {
                        k: {"segments": v.segments, "ended": v.ended, "end_us": v.end_us}
                        for k, v in self.recordings.items()
                    },
                }
            )
            + b"\n"
        )

    @classmethod
    def from_bytes(cls, data: bytes, path: Path) -> ChainState:
        try:
            obj = canonical.decode(data.rstrip(b"\n"))
            if obj["version"] != STATE_VERSION:
                raise ValueError("version")
            recs = {
                str(k): RecordingState(
                    [int(i) for i in v["segments"]], bool(v["ended"]), int(v["end_us"])
                )
                for k, v in obj["recordings"].items()
            }
            prev = obj["prev_sha256"]
            if not (prev is None or isinstance(prev, str)):
                raise ValueError("prev")
            state = cls(int(obj["next_seq"]), prev, recs)
        except (canonical.CanonicalError, KeyError, TypeError, ValueError, AttributeError):
            raise ChainStateError(
                f"{path}: the chain state is unreadable; refusing to sign (sequence numbers "
                "must never be reused). Restore it or rebuild it from the outbox's chain/ "
                "directory by moving this file aside."
            ) from None
        return state


class Chain:
    """Appends signed records to the device's chain in ``chain_dir``."""

    def __init__(
        self,
        chain_dir: Path,
        state_path: Path,
        signer: Signer,
        public_key: bytes,
        counter: Counter | None = None,
    ) -> None:
        """``counter``: the TPM's counter, required with an ECDSA (TPM) signer and refused
        with an Ed25519 one (``ValueError``: a programming error)."""
        if signer.suite == ECDSA_P256 and counter is None:
            raise ValueError(f"a chain signed by an {ECDSA_P256} key needs its TPM counter")
        if signer.suite == ED25519 and counter is not None:
            raise ValueError(f"an {ED25519} key has no hardware counter; pass counter=None")
        self.counter = counter
        self.dir = Path(chain_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path = Path(state_path)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.signer = signer
        self.public_key = public_key
        self.adopted: list[int] = []  # records found on disk that the state did not know
        self.rebuilt = False  # the state file was missing and was rebuilt from chain/
        self._lock = threading.Lock()  # one seq, one record: the recorder's and shipper's
        if self.state_path.exists():
            self.state = ChainState.from_bytes(self.state_path.read_bytes(), self.state_path)
            self._adopt_newer()
        else:
            self.state = ChainState()
            self._rebuild()
        if self.adopted or self.rebuilt:
            self._save()

    # -- reconciling with what is on disk --------------------------------------------------
    def _files(self) -> list[tuple[int, Path]]:
        out = []
        for p in self.dir.iterdir():
            parsed = parse_chain_file_name(p.name)
            if parsed is not None:
                out.append((parsed[0], p))
        return sorted(out)

    def _read(self, path: Path) -> SignedRecord:
        try:
            return verify_line(
                path.read_bytes(), self.public_key, self.signer.device_id, CHAIN_TYPES
            )
        except RecordError as exc:
            raise ChainStateError(
                f"{path}: not a valid chain record of this device ({exc.reason}: {exc.detail})"
            ) from None

    def _adopt_newer(self) -> None:
        for seq, path in self._files():
            if seq < self.state.next_seq:
                continue
            rec = self._read(path)
            if seq != self.state.next_seq or rec.record["prev_sha256"] != self.state.prev_sha256:
                raise ChainStateError(
                    f"{path}: chain record {seq} does not follow the chain state "
                    f"(next {self.state.next_seq}); refusing to sign"
                )
            self.state.apply(rec)
            self.adopted.append(seq)

    def _rebuild(self) -> None:
        files = self._files()
        for seq, path in files:
            rec = self._read(path)
            if rec.seq != seq:
                raise ChainStateError(f"{path}: names seq {seq} but holds {rec.seq}")
            self.state.apply(rec)
        self.rebuilt = bool(files)

    def _save(self) -> None:
        write_atomic(self.state_path, self.state.to_bytes(), mode=0o600)

    # -- appending -------------------------------------------------------------------------
    def append(self, record_type: str, fields: dict[str, Any]) -> tuple[SignedRecord, Path]:
        """Sign ``fields`` as the next chain record, write its file, then the state (under
        the chain's lock: any thread may append)."""
        with self._lock:
            return self._append(record_type, fields)

    def _append(self, record_type: str, fields: dict[str, Any]) -> tuple[SignedRecord, Path]:
        record = {
            "type": record_type,
            "v": VERSION,
            "suite": self.signer.suite,
            "device_id": self.signer.device_id,
            "key_id": self.signer.key_id,
            "seq": self.state.next_seq,
            "prev_sha256": self.state.prev_sha256,
            **fields,
        }
        if self.counter is None:
            record["counter"] = None  # sign_record checks the record
        else:
            # a record that cannot be signed fails here, before the counter moves; counted
            # before it is written: a power cut between the two shows as a gap
            validate({**record, "counter": 0})
            record["counter"] = self.counter.next()
        signed = sign_record(self.signer, record)
        path = self.dir / chain_file_name(signed.seq, record_type)
        write_atomic(path, signed.line, overwrite=False)
        self.state.apply(signed)
        self._save()
        return signed, path


# -- record builders ---------------------------------------------------------------------
def chunk_entry(trail_record: dict[str, Any]) -> dict[str, Any]:
    """A manifest's entry for one chunk, from the trail record that signed it."""
    keys = (
        "chunk",
        "kind",
        "first_us",
        "end_us",
        "plain_sha256",
        "plain_size",
        "cipher_sha256",
        "cipher_size",
    )
    entry = {k: trail_record[k] for k in keys}
    entry["trail_seq"] = trail_record["seq"]
    return entry


def manifest_fields(
    *,
    firmware_version: str,
    recording_id: str,
    segment_index: int,
    start_us: int,
    end_us: int,
    wall_start_us: int,
    wall_end_us: int,
    wall_quality: str,
    trigger: dict[str, Any],
    file: str,
    agency_key_id: str,
    header_sha256: str,
    stored_size: int,
    chunks: list[dict[str, Any]],
    recovered: bool,
    unsigned_tail: dict[str, Any] | None,
    clock_sync_seq: int | None = None,
) -> dict[str, Any]:
    """A manifest's fields; its digests and plain size are made from ``header_sha256`` and
    the chunks' hashes (docs/evidence-format.md, "Stored digest and plain digest")."""
    truncated = not (chunks and chunks[-1]["kind"] == "final")
    plain = [c for c in chunks if c["kind"] != "final"]
    return {
        "firmware_version": firmware_version,
        "recording_id": recording_id,
        "segment_index": segment_index,
        "start_us": start_us,
        "end_us": end_us,
        "wall_start_us": wall_start_us,
        "wall_end_us": wall_end_us,
        "wall_quality": wall_quality,
        "trigger": trigger,
        "file": file,
        "agency_key_id": agency_key_id,
        "header_sha256": header_sha256,
        "stored_digest": stored_digest_from(header_sha256, (c["cipher_sha256"] for c in chunks)),
        "stored_size": stored_size,
        "plain_digest": plain_digest_from(c["plain_sha256"] for c in plain),
        "plain_size": sum(c["plain_size"] for c in plain),
        "chunks": chunks,
        "truncated": truncated,
        "recovered": recovered,
        "unsigned_tail": unsigned_tail,
        "clock_sync_seq": clock_sync_seq,
    }


def end_fields(
    *,
    firmware_version: str,
    recording_id: str,
    reason: str,
    end_us: int,
    segment_count: int,
    recovered: bool,
) -> dict[str, Any]:
    return {
        "firmware_version": firmware_version,
        "recording_id": recording_id,
        "reason": reason,
        "end_us": end_us,
        "segment_count": segment_count,
        "recovered": recovered,
    }


def time_sync_fields(
    *,
    capture_us: int,
    device_wall_us: int,
    nonce: str,
    dock_time_us: int,
    dock_key_id: str,
    dock_signature: str,
    offset_us: int,
    applied: bool,
    tsa_token: str | None,
) -> dict[str, Any]:
    """A dock's signed time answer, as the device records it (crypto/records.py)."""
    return {
        "capture_us": capture_us,
        "device_wall_us": device_wall_us,
        "nonce": nonce,
        "dock_time_us": dock_time_us,
        "dock_key_id": dock_key_id,
        "dock_signature": dock_signature,
        "offset_us": offset_us,
        "applied": applied,
        "tsa_token": tsa_token,
    }


def clock_step_fields(
    *, capture_us: int, from_wall_us: int, to_wall_us: int, time_sync_seq: int
) -> dict[str, Any]:
    """A correction over the step limit that was applied (the ``time_sync`` it applies)."""
    return {
        "capture_us": capture_us,
        "from_wall_us": from_wall_us,
        "to_wall_us": to_wall_us,
        "time_sync_seq": time_sync_seq,
    }

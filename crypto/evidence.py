"""The evidence sink: what the segment writer hands its blobs to on the device.

For each segment: a fresh key; every blob (the init blob, then one fragment per GOP) is
encrypted as one secretstream chunk, appended to ``segments/<name>.bwvseg.partial`` and
fsync'd, then signed in the trail (fsync'd) before the call returns. Closing a segment adds
the FINAL chunk, signs the manifest into the device's chain, and renames the file to its
final name. Plaintext never reaches the disk; the segment key is forgotten at close.

Outbox layout (crypto/FORMAT.md, "Outbox")::

    OUTBOX/trail.jsonl                          the signature trail (append-only)
    OUTBOX/segments/<rec>_<idx:04d>.bwvseg      stored (encrypted) segments
    OUTBOX/segments/<name>.bwvseg.partial       the segment being written
    OUTBOX/segments/<name>.bwvseg.unsigned      bytes a crash left unsigned, set aside
    OUTBOX/chain/<seq:012d>.manifest.json       signed manifests  } one chain
    OUTBOX/chain/<seq:012d>.end.json            end-of-recording  } per device

``recover()`` (at start-up) finishes what a crash left: a partial segment keeps the chunks
the trail signed and is closed as a truncated segment; bytes past them are set aside in a
``.unsigned`` file (kept until the dock receipts them); recordings left open get an
``interrupted`` end record.

A full disk can leave an abort or an end record unsigned without any crash: the sink keeps
them (crypto/pending.py) and signs them at its next write or start with the true reason
(``storage_fault``), the aborted segment not marked ``recovered``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from nacl.public import PublicKey

from base.sink import SegmentInfo  # the segment writer's interface
from crypto import canonical
from crypto.durable import append_durable, fsync_dir, rename_durable
from crypto.layout import PARTIAL, REC_ID, SEG_EXT, SEGMENTS_DIR, UNSIGNED, segment_file_name
from crypto.manifest import CHAIN_DIR, Chain, chunk_entry, end_fields, manifest_fields
from crypto.pending import SUFFIX as PENDING_SUFFIX
from crypto.pending import PendingEnd, PendingEnds
from crypto.records import Counter, SignedRecord, Signer, sha256_hex
from crypto.recovery import RecoveredSegment, Recovery
from crypto.seal import LEN, SegmentContext, SegmentEncryptor
from crypto.trail import TRAIL_NAME, TrailWriter

__all__ = [
    "PARTIAL",
    "SEG_EXT",
    "SEGMENTS_DIR",
    "UNSIGNED",
    "EvidenceSink",
    "RecoveredSegment",
    "SegmentInfo",
    "segment_file_name",
]


@dataclass
class _Open:
    info: SegmentInfo
    context: SegmentContext
    name: str
    partial: Path
    f: BinaryIO
    enc: SegmentEncryptor
    chunks: list[dict[str, Any]] = field(default_factory=list)
    stored_size: int = 0
    broken: bool = False  # a write failed: the stream cannot go on; abort_segment()
    clock_sync_seq: int | None = None  # the time_sync the wall clock carried at its start


class EvidenceSink:
    """Encrypts, signs and chains the segment writer's blobs into ``outbox_dir``."""

    def __init__(
        self,
        outbox_dir: Path,
        identity: Signer,
        agency_pk: bytes | PublicKey,
        firmware_version: str,
        chain_state_path: Path,
        counter: Counter | None = None,
    ) -> None:
        """``identity``: the device key (a ``DeviceIdentity``, or a TPM's signer, which
        needs the TPM's ``counter``: crypto/manifest.py)."""
        self.dir = Path(outbox_dir)
        self.segments_dir = self.dir / SEGMENTS_DIR
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        self.identity = identity
        self.agency_pk = agency_pk if isinstance(agency_pk, PublicKey) else PublicKey(agency_pk)
        self.firmware_version = str(firmware_version)
        # the chain first: it refuses a TPM key without its counter before a file is open
        self.chain = Chain(
            self.dir / CHAIN_DIR, chain_state_path, identity, identity.public_key, counter
        )
        self.trail = TrailWriter(self.dir / TRAIL_NAME, identity, identity.public_key)
        self.recovery = Recovery(
            self.segments_dir,
            identity,
            self.trail,
            self.chain,
            self.firmware_version,
        )
        self.last_recovery: list[RecoveredSegment] = []
        self._seg: _Open | None = None
        self._leftovers = False  # an abort failed (full disk): finish it before the next
        # what a full disk kept from being signed: signed at the next write or start
        self.pending = PendingEnds(Path(str(chain_state_path) + PENDING_SUFFIX))

    # -- the segment writer's interface ----------------------------------------------------
    def open_segment(self, info: SegmentInfo) -> None:
        if self._seg is not None:
            raise RuntimeError("a segment is already open")
        if not (isinstance(info.recording_id, str) and REC_ID.match(info.recording_id)):
            raise ValueError("recording_id must be 1..64 characters of [A-Za-z0-9_-]")
        if not (isinstance(info.segment_index, int) and info.segment_index >= 0):
            raise ValueError("segment_index must be a non-negative integer")
        trigger = dict(info.trigger or {})
        canonical.encode(trigger)  # a trigger that cannot be signed fails here, not later
        self._flush_pending()
        name = segment_file_name(info.recording_id, info.segment_index)
        partial = self.segments_dir / (name + PARTIAL)
        if (self.segments_dir / name).exists():
            raise FileExistsError(f"{self.segments_dir / name}: segment exists already")
        ctx = SegmentContext(
            device_id=self.identity.device_id,
            key_id=self.identity.key_id,
            recording_id=info.recording_id,
            segment_index=info.segment_index,
            start_us=int(info.start_us),
            wall_start_us=int(info.wall_start_us),
            wall_quality=str(info.wall_quality),
            trigger=trigger,
        )
        enc = SegmentEncryptor(self.agency_pk, ctx)
        ctx = enc.context  # with the agency key id of the key it seals to
        f = open(partial, "xb")  # noqa: SIM115 - held while the segment is open
        try:
            append_durable(f, enc.header)
            fsync_dir(self.segments_dir)
        except BaseException:
            f.close()
            enc.forget()
            partial.unlink(missing_ok=True)  # a header at most: no footage in it yet
            raise
        seg = _Open(info, ctx, name, partial, f, enc)
        sync_seq = getattr(info, "clock_sync_seq", None)
        seg.clock_sync_seq = sync_seq if isinstance(sync_seq, int) else None
        seg.stored_size = len(enc.header)
        self._seg = seg

    def write_init(self, data: bytes) -> None:
        seg = self._need_open()
        if seg.chunks:
            raise RuntimeError("the init blob is the first blob of a segment, and only one")
        ctx = seg.context
        start = {
            "header_sha256": sha256_hex(seg.enc.header),
            "start_us": ctx.start_us,
            "wall_start_us": ctx.wall_start_us,
            "wall_quality": ctx.wall_quality,
            "trigger": ctx.trigger,
        }
        self._write_chunk(seg, "init", data, ctx.start_us, ctx.start_us, start)

    def write_fragment(self, data: bytes, first_us: int, end_us: int) -> None:
        """Returns once the fragment is on disk and signed in the trail."""
        seg = self._need_open()
        if not seg.chunks:
            raise RuntimeError("write_init must come before the first fragment")
        self._write_chunk(seg, "fragment", data, int(first_us), int(end_us), None)

    def close_segment(self, end_us: int, wall_end_us: int) -> Path:
        """FINAL chunk, signed manifest, atomic rename; the segment key is forgotten."""
        seg = self._need_open()
        if not seg.chunks:
            raise RuntimeError("a segment without its init blob cannot be closed; abort it")
        self._write_chunk(seg, "final", b"", int(end_us), int(end_us), None)
        final = self.segments_dir / seg.name
        fields = manifest_fields(
            firmware_version=self.firmware_version,
            recording_id=seg.context.recording_id,
            segment_index=seg.context.segment_index,
            start_us=seg.context.start_us,
            end_us=int(end_us),
            wall_start_us=seg.context.wall_start_us,
            wall_end_us=int(wall_end_us),
            wall_quality=seg.context.wall_quality,
            trigger=seg.context.trigger,
            file=seg.name,
            agency_key_id=seg.context.agency_key_id,
            header_sha256=sha256_hex(seg.enc.header),
            stored_size=seg.stored_size,
            chunks=seg.chunks,
            recovered=False,
            unsigned_tail=None,
            clock_sync_seq=seg.clock_sync_seq,
        )
        seg.enc.forget()
        seg.f.close()
        try:
            self.chain.append("manifest", fields)
        except BaseException:
            seg.broken = True  # the partial stays; abort_segment() or recover() finishes it
            raise
        rename_durable(seg.partial, final)
        self._seg = None
        return final

    def abort_segment(self) -> Path | None:
        """Close the open segment where it stands (a write failed, the disk is full): keep
        the chunks the trail signed, as a truncated segment. Returns its path, if any."""
        seg = self._seg
        if seg is None:
            return None
        seg.enc.forget()
        seg.f.close()
        self._seg = None
        try:
            result = self.recovery.finish_partial(seg.partial, recovered=False)
        except BaseException:
            self._leftovers = True  # an abort, not a crash: say so when it is signed
            self.pending.aborted.add(seg.partial.name)
            self.pending.save()
            raise
        return result.path

    def end_recording(self, recording_id: str, reason: str, end_us: int) -> None:
        """Sign the end of a recording ("stopped", "storage_fault", ...) into the chain. On
        a full disk the end is kept (``pending``) and signed at the next write or start."""
        if not isinstance(reason, str) or not 1 <= len(reason) <= 64:
            raise ValueError("reason must be a short string")
        end = PendingEnd(reason, int(end_us))
        try:
            if self._seg is not None and self._seg.context.recording_id == recording_id:
                self.abort_segment()
            self._flush_pending()  # what is owed comes first, in order
            self._end_owed(recording_id, end)
        except OSError:
            if recording_id not in self.pending.ends:
                self.pending.ends[recording_id] = end
                self.pending.save()
            raise

    def recover(self) -> list[Path]:
        """At start-up: finish partial segments and end the recordings a crash left open.

        Returns the stored segments published; details are in ``last_recovery``."""
        if self._seg is not None:
            raise RuntimeError("recover() is for start-up, not while a segment is open")
        results = self._finish_leftovers()
        if self.pending.aborted:  # named partials that are gone: nothing left to close
            self.pending.aborted.clear()
            self.pending.save()
        self._flush_pending()  # ends a full disk kept from being signed: their true reason
        interrupted = list(self.chain.state.open_recordings())
        for r in results:
            if r.recording_id is not None and r.recording_id not in interrupted:
                state = self.chain.state.recordings.get(r.recording_id)
                if state is None or not state.ended:
                    interrupted.append(r.recording_id)
        for rec in interrupted:
            state = self.chain.state.recordings.get(rec)
            self._end(rec, "interrupted", state.end_us if state else 0, recovered=True)
        self.last_recovery = results
        return [r.path for r in results if r.path is not None]

    def close(self) -> None:
        """Release files (an open segment is aborted first)."""
        try:
            if self._seg is not None:
                self.abort_segment()
            self._flush_pending()
        except OSError:
            pass  # a full disk: kept in ``pending``, signed at the next start
        finally:
            self.trail.close()

    def __enter__(self) -> EvidenceSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EvidenceSink({str(self.dir)!r}, {self.identity!r})"

    # -- internals -------------------------------------------------------------------------
    def _need_open(self) -> _Open:
        seg = self._seg
        if seg is None:
            raise RuntimeError("no open segment")
        if seg.broken:
            raise RuntimeError("the segment failed (a write did not complete); abort it")
        return seg

    def _write_chunk(
        self,
        seg: _Open,
        kind: str,
        data: bytes,
        first_us: int,
        end_us: int,
        start: dict[str, Any] | None,
    ) -> SignedRecord:
        if not isinstance(data, bytes):
            data = bytes(data)
        cipher = seg.enc.push(data, final=(kind == "final"))
        try:  # the length prefix and the ciphertext, written as one chunk without a copy
            append_durable(seg.f, LEN.pack(len(cipher)), cipher)
        except BaseException:
            seg.broken = True  # the stream state moved on without this chunk on disk
            raise
        seg.stored_size += LEN.size + len(cipher)
        fields = {
            "recording_id": seg.context.recording_id,
            "segment_index": seg.context.segment_index,
            "chunk": len(seg.chunks),
            "kind": kind,
            "first_us": first_us,
            "end_us": end_us,
            "plain_sha256": sha256_hex(data),
            "plain_size": len(data),
            "cipher_sha256": sha256_hex(cipher),
            "cipher_size": len(cipher),
            "segment": start,
        }
        try:
            signed = self.trail.append(fields)
        except BaseException:
            seg.broken = True  # on disk but unsigned: recovery sets it aside
            raise
        seg.chunks.append(chunk_entry(signed.record))
        return signed

    def _finish_leftovers(self) -> list[RecoveredSegment]:
        results = []
        for p in sorted(self.segments_dir.glob("*" + SEG_EXT + PARTIAL)):
            aborted = p.name in self.pending.aborted  # by a full disk, not by a crash
            results.append(self.recovery.finish_partial(p, not aborted))
            if aborted:
                self.pending.aborted.discard(p.name)
                self.pending.save()
        self._leftovers = False
        return results

    def _flush_pending(self) -> None:
        """Sign what a full disk kept from being signed: aborted segments, then ends."""
        if self._leftovers:
            self._finish_leftovers()
        for rec, end in list(self.pending.ends.items()):
            if rec in self.chain.state.recordings:
                self._end_owed(rec, end)
            else:  # not a recording of this chain (the state was replaced): nothing owed
                del self.pending.ends[rec]
                self.pending.save()

    def _end_owed(self, recording_id: str, end: PendingEnd) -> None:
        """Sign an end record; once it is on disk it is no longer owed (even if saving the
        chain state failed after it: the record is not signed twice)."""
        before = self.chain.state.next_seq
        try:
            self._end(recording_id, end.reason, end.end_us, recovered=False)
        finally:
            if self.chain.state.next_seq != before and recording_id in self.pending.ends:
                del self.pending.ends[recording_id]
                self.pending.save()

    def _end(self, recording_id: str, reason: str, end_us: int, recovered: bool) -> None:
        state = self.chain.state.recordings.get(recording_id)
        fields = end_fields(
            firmware_version=self.firmware_version,
            recording_id=recording_id,
            reason=reason,
            end_us=end_us,
            segment_count=len(state.segments) if state else 0,
            recovered=recovered,
        )
        self.chain.append("end", fields)

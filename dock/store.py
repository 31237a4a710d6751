"""The dock's evidence store, as the server sees it: devices, uploads, segments and the
custody log.

``Store`` is the interface the server uses, and its one documented description: what each
call does, refuses and promises. ``dock.store_sqlite.DirectoryStore`` implements it: by
default the embedded store, a SQLite index (WAL, synchronous=FULL) beside a directory of
objects; given a ``postgresql://`` index, one index that several docks share (dock/sqldb.py:
their writes serialised, so the custody log never forks). Segment bytes go through an
``ObjectStore``, the seam where S3-compatible object storage (with Object Lock) fits; the
directory one (dock/objects.py) writes each object by fsync and atomic rename and never
overwrites one.

Uploads are staged as they arrive, chunk by chunk (durable before the offset is committed;
a torn append is cut back on the next chunk). On completion the staged blob and its manifest
become objects and, in one index transaction, the segment row, its custody-log entries and
its receipt are written.

The custody log is append-only and hash-chained: each entry holds the hash of the one before
it and is signed by the dock key (dock/custody.py; ``verify_custody_log`` replays it). Every
custody entry and every chain record the dock accepts is also a leaf of the dock's
transparency log, written in the same transaction (dock/leaves.py, dock/translog.py).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from dock.protocol import Code
from dock.receipts import SignedReceipt, UploadState
from dock.verify import ManifestFields

if TYPE_CHECKING:
    from crypto.digests import StoredDigest
    from dock.upload_live import ChunkWriter

GENESIS = "0" * 64
SQLITE_FULL = 13
PG_DISK_FULL = "53100"  # PostgreSQL's SQLSTATE disk_full
FULL_BELOW_BYTES = 1 << 20  # an I/O error with less than this free is a full disk

log = logging.getLogger("bwv.dock.store")


class StoreError(Exception):
    """A request the store refuses: the HTTP ``status`` and protocol ``code`` that fit."""

    def __init__(self, message: str, status: int = 400, code: str = Code.INVALID) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def storage_failure(exc: BaseException, root: Path | None = None) -> StoreError:
    """A failure of the dock's own storage as the answer the device gets: 507 when the
    disk (or the index) is full, 503 otherwise; both say "try again later" and lose nothing.

    Full is SQLite's SQLITE_FULL ("database or disk is full"), PostgreSQL's disk_full
    (SQLSTATE 53100), ENOSPC or EDQUOT, or any storage error while less than
    ``FULL_BELOW_BYTES`` are free under ``root``."""
    full = (
        getattr(exc, "sqlite_errorcode", 0) & 0xFF == SQLITE_FULL
        or getattr(exc, "sqlstate", None) == PG_DISK_FULL
        or "disk is full" in str(exc)
        or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
    )
    if not full and root is not None:
        with contextlib.suppress(OSError):
            st = os.statvfs(root)
            full = st.f_bavail * st.f_frsize < FULL_BELOW_BYTES
    log.error("dock storage %s: %s", "full" if full else "error", exc)
    if full:
        return StoreError("dock storage is full; try again later", 507, Code.STORAGE)
    return StoreError("dock storage error; try again later", 503, Code.STORAGE)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    public_key: bytes
    key_id: str
    enrolled_at_us: int
    revoked_at_us: int | None = None
    revoke_reason: str | None = None
    time_offset_us: int | None = None  # dock time − device time at the last sync
    time_synced_at_us: int | None = None
    key_store: str = "file"  # "file" (an Ed25519 key) | "tpm" (a P-256 key, attested)
    attested_by: str | None = None  # for "tpm": the subject of the TPM CA that vouched

    @property
    def revoked(self) -> bool:
        return self.revoked_at_us is not None


@dataclass(frozen=True)
class HeldSegment:
    segment_id: str
    seq: int
    manifest_sha256: str
    prev_manifest_sha256: str | None
    stored_digest: str
    stored_size: int
    received_at_us: int


@dataclass(frozen=True)
class ChainReport:
    """What the dock holds of one device's chain, and where it is broken."""

    held: int
    first_seq: int | None
    last_seq: int | None
    gaps: list[tuple[int, int]]  # inclusive ranges of missing sequence numbers
    breaks: list[int]  # seq whose manifest does not name the held predecessor

    def to_json(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "gaps": [{"from_seq": a, "to_seq": b} for a, b in self.gaps],
            "breaks": self.breaks,
        }


@dataclass(frozen=True)
class LogEntry:
    index: int
    at_us: int
    actor: str  # "device:<id>", "technician", "dock", ...
    action: str  # enrolled, received, gap, gap_filled, rejected, revoked, time_sync, ...
    device_id: str | None
    segment_id: str | None
    sha256: str | None  # the hash the entry is about (e.g. the stored blob's)
    detail: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    entry_hash: str = ""
    signature: str = ""  # base64, dock key over entry_hash

    def body(self) -> dict[str, Any]:
        d = asdict(self)
        del d["entry_hash"], d["signature"]
        return d


def chain_report(segments: list[HeldSegment], retired: Iterable[int] = ()) -> ChainReport:
    """Where the held chain is broken. ``retired``: seqs deleted under retention (a custody
    event explains each): not gaps, and the record after one is not link-checked."""
    segs = sorted(segments, key=lambda s: s.seq)
    gone = set(retired)
    gaps: list[tuple[int, int]] = []
    breaks: list[int] = []
    expect = 0
    prev: HeldSegment | None = None
    for s in segs:
        if s.seq > expect:
            gaps += _runs(q for q in range(expect, s.seq) if q not in gone)
        elif prev is not None and s.prev_manifest_sha256 != prev.manifest_sha256:
            breaks.append(s.seq)
        expect = s.seq + 1
        prev = s
    return ChainReport(
        len(segs), segs[0].seq if segs else None, segs[-1].seq if segs else None, gaps, breaks
    )


def _runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Ascending ints as inclusive ranges: ``1, 2, 3, 7`` -> ``(1, 3), (7, 7)``."""
    out: list[tuple[int, int]] = []
    for q in seqs:
        if out and out[-1][1] == q - 1:
            out[-1] = (out[-1][0], q)
        else:
            out.append((q, q))
    return out


# --------------------------------------------------------------------------- interfaces


class ObjectStore(Protocol):
    """Where segment bytes live. Objects are written once and never replaced
    (``FileExistsError``)."""

    def put_file(
        self,
        key: str,
        src: Path,
        sha256: str | None = None,
        stored_digest: str | None = None,
        synced: bool = False,
    ) -> None:
        """Make ``src`` (a local file, consumed) the object ``key``, durably. ``sha256``:
        the hex SHA-256 of its bytes, or ``stored_digest``, a segment's signed stored
        digest, when known: a store that can have the write checked against it does, and
        refuses the write if they differ. ``synced``: ``src``'s bytes are fsync'd already."""
        ...

    def put_bytes(self, key: str, data: bytes, sha256: str | None = None) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove an object for good (deletion under retention only)."""
        ...


class Store(Protocol):
    """What the dock server needs from its storage. Refusals are ``StoreError`` (with the
    HTTP status and protocol code that fit); a failure of the storage itself is a
    ``StoreError`` 507 (full) or 503 that loses nothing."""

    dock_key_id: str

    # -- devices

    def get_device(self, device_id: str) -> DeviceRecord | None:
        """The enrolled device ``device_id``, or None."""
        ...

    def list_devices(self) -> list[DeviceRecord]:
        """Every enrolled device, by id."""
        ...

    def add_token(
        self, token_sha256: str, device_id: str | None, now_us: int, expires_at_us: int, actor: str
    ) -> None:
        """Keep an enrollment token's hash (for ``device_id`` only, or any id when None) and
        log ``token_issued``."""
        ...

    def enroll(
        self,
        device_id: str,
        public_key: bytes,
        token_sha256: str,
        now_us: int,
        *,
        key_store: str = "file",
        attested_by: str | None = None,
    ) -> DeviceRecord:
        """Bind ``device_id`` to ``public_key`` with an unused, unexpired token (used up
        here) and log ``enrolled`` (with where the key is held, ``key_store``, and for a TPM
        the CA that vouched for it, ``attested_by``); refuses a revoked or already enrolled
        id."""
        ...

    def revoke(self, device_id: str, reason: str, actor: str, now_us: int) -> DeviceRecord:
        """Revoke a device for good and log ``revoked`` (once: revoking again changes
        nothing)."""
        ...

    def record_time_sync(self, device_id: str, offset_us: int, now_us: int) -> None:
        """Keep the device's clock offset (dock − device) and log ``time_sync``."""
        ...

    def use_nonce(self, device_id: str, nonce: str, now_us: int, keep_until_us: int) -> bool:
        """Remember ``nonce`` until ``keep_until_us``; False if it was seen before (a
        replay). Kept through a crash of the dock; through a power cut once any later commit
        that waits for the disk is made (a request with a lasting effect makes one)."""
        ...

    # -- devices' reports (telemetry: no custody event; dock/store_reports.py)

    def record_report(self, device_id: str, report: dict[str, Any], now_us: int) -> None:
        """Keep the device's latest report (``dock.store_reports.REPORT_FIELDS``), received
        at ``now_us``, in place of the one before."""
        ...

    def device_report(self, device_id: str) -> dict[str, Any] | None:
        """The device's latest report with its ``received_at_us``, or None."""
        ...

    def recent_receipts(self, device_id: str, limit: int = 10) -> list[Any]:
        """The device's last ``limit`` segments received (``RecentReceipt``), newest first."""
        ...

    # -- uploads

    def begin_upload(
        self, device_id: str, segment_id: str, manifest: bytes, size: int, sha256: str, now_us: int
    ) -> UploadState:
        """Create the upload (or find it: the same size, or 409) with nothing received."""
        ...

    def upload_state(self, device_id: str, segment_id: str) -> UploadState | None:
        """Where the upload stands (complete, with its receipt, once the segment is held, and
        still once it is deleted under retention: a camera that still holds it does not ship
        it again), or None if there is no such upload. With a shared index, an upload whose
        staged bytes are on another dock (this one holds fewer than the offset counts) starts
        again at offset 0 here: the camera sends from the offset it is told."""
        ...

    def append_chunk(
        self, device_id: str, segment_id: str, offset: int, data: bytes | Path
    ) -> UploadState:
        """Append ``data`` (bytes, or a file's) at ``offset`` (``open_chunk``, its bytes,
        ``finish_chunk``); refuses an offset other than the one held, and bytes past the
        declared size."""
        ...

    def open_chunk(
        self, device_id: str, segment_id: str, offset: int, length: int | None = None
    ) -> ChunkWriter:
        """Start a chunk at ``offset`` (the one held, or 409; ``length`` if known, checked
        against the declared size): a ``dock.upload_live.ChunkWriter`` its body is written
        to, block by block, straight into the staged file; ``finish_chunk`` ends it."""
        ...

    def finish_chunk(self, writer: ChunkWriter, ok: bool) -> UploadState:
        """Count the chunk (``ok``: its body came whole and checked) or cut it off again;
        its bytes are fsync'd and counted in the index at sync points (dock/upload_live.py)."""
        ...

    def received_digest(self, device_id: str, segment_id: str) -> StoredDigest | None:
        """The upload's ``StoredDigest`` taken as its bytes arrived, if it covers them all."""
        ...

    def open_uploads(self, device_id: str) -> tuple[int, int]:
        """How many uploads the device has open, and the bytes they declare."""
        ...

    def expire_uploads(self, now_us: int, max_age_us: int) -> int:
        """Drop uploads created more than ``max_age_us`` ago, their staged bytes with them,
        logging ``upload_expired`` for each; how many expired."""
        ...

    def manifest_of_upload(self, device_id: str, segment_id: str) -> bytes:
        """The manifest the upload was created with."""
        ...

    def completing(self, device_id: str, segment_id: str) -> AbstractContextManager[BinaryIO]:
        """Hold the device's lock and give the uploaded blob (the staged one or, if a crash
        struck between publishing it and committing, the published object) for
        verification; ``commit_segment`` and ``reject_upload`` are called inside it."""
        ...

    def commit_segment(
        self,
        device_id: str,
        segment_id: str,
        fields: ManifestFields,
        now_us: int,
        sign: Callable[[dict[str, Any]], SignedReceipt],
        gap_before: bool,
    ) -> SignedReceipt:
        """Publish a verified upload and record it: its objects, then in one transaction
        the custody-log entries (``received``, and ``gap`` or ``gap_filled``), the segment
        row and the receipt, made by ``sign`` from the receipt's fields (the server holds
        the key). Call inside ``completing``. Refuses (409) a reused sequence number or a
        held successor that does not name this manifest."""
        ...

    def reject_upload(
        self, device_id: str, segment_id: str, reasons: list[str], now_us: int
    ) -> LogEntry:
        """Drop an upload that failed verification, and log why (``rejected``)."""
        ...

    # -- segments and objects

    def held_segment(
        self, device_id: str, *, seq: int | None = None, segment_id: str | None = None
    ) -> HeldSegment | None:
        """The held segment (chain record) with sequence number ``seq`` or id
        ``segment_id``, or None."""
        ...

    def held_segments(self, device_id: str) -> list[HeldSegment]:
        """Every chain record held for the device, by sequence number."""
        ...

    def open_object(self, key: str) -> BinaryIO:
        """Read an object (``blob_key``, ``manifest_key``, ``unsigned_key``)."""
        ...

    def retire_record(
        self, device_id: str, segment_id: str, actor: str, detail: dict[str, Any], now_us: int
    ) -> LogEntry:
        """Delete a held chain record under retention: in one transaction log
        ``retention_deleted`` (``detail`` plus ``record_sha256``, ``seq``, ``recording_id``)
        and move its row to the retired records; then delete its objects. Idempotent: a
        record already retired gets its objects deleted if a crash left them, and its entry
        back. The log's leaves stay. 404 for a record the dock never held."""
        ...

    def retired_records(self, device_id: str | None = None) -> list[Any]:
        """The records deleted under retention (``dock.store_retire.RetiredRecord``), of one
        device or all, by device and seq."""
        ...

    def unfinished_retirements(self) -> list[Any]:
        """Records retired whose objects a crash left (``retire_record`` finishes them)."""
        ...

    # -- custody log

    def log(
        self,
        actor: str,
        action: str,
        now_us: int,
        *,
        device_id: str | None = None,
        segment_id: str | None = None,
        sha256: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> LogEntry:
        """Append a signed entry to the custody log."""
        ...

    def custody_log(self, after: int = 0, limit: int = 1000) -> list[LogEntry]:
        """Up to ``limit`` entries after index ``after``, in order."""
        ...

    # -- the transparency log's leaves (dock/leaves.py), written with what they record

    def log_leaves(self, after: int = -1, limit: int = 10_000) -> list[Any]:
        """Up to ``limit`` leaves (``dock.leaves.Leaf``) after index ``after``, in order."""
        ...

    def log_leaf_hashes(self, size: int) -> list[bytes]:
        """The hashes of leaves ``0 .. size-1``."""
        ...

    def log_size(self) -> int:
        """How many leaves the store holds."""
        ...

    def record_leaf_index(self, device_id: str, segment_id: str) -> int | None:
        """The leaf of the device's chain record ``segment_id``, or None."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- object keys


def blob_key(device_id: str, segment_id: str) -> str:
    return f"{device_id}/{segment_id}.blob"


def manifest_key(device_id: str, segment_id: str) -> str:
    return f"{device_id}/{segment_id}.manifest"


def unsigned_key(device_id: str, segment_id: str) -> str:
    """A segment's set-aside unsigned bytes (dock/unsigned.py): beside it, never evidence."""
    return f"{device_id}/{segment_id}.unsigned"


def record_object_keys(device_id: str, segment_id: str) -> tuple[str, str, str]:
    """Every object of one chain record, in the order a deletion takes them: its blob, its
    set-aside unsigned bytes, and last the record itself (so a deletion cut short leaves
    the record, which says what is missing)."""
    return (
        blob_key(device_id, segment_id),
        unsigned_key(device_id, segment_id),
        manifest_key(device_id, segment_id),
    )

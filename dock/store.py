"""The dock's evidence store: devices, uploads, segments and the custody log.

``Store`` is the interface the server uses. ``DirectoryStore`` is the embedded default: a
SQLite index (WAL, synchronous=FULL) beside a directory of objects. Segment bytes go through
an ``ObjectStore``, the seam where S3-compatible object storage (with Object Lock) fits; the
directory one writes each object by fsync and atomic rename and never overwrites one.

Uploads are staged in ``staging/`` as they arrive, chunk by chunk (fsync'd, the offset
committed in the index after the bytes are durable; a torn append is cut back on the next
chunk). On completion the staged blob and its manifest become objects and, in one index
transaction, the segment row, its custody-log entries and its receipt are written.

The custody log is append-only and hash-chained: each entry holds the hash of the one before
it and is signed by the dock key. ``verify_custody_log`` replays the chain.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from nacl.signing import SigningKey

from crypto.durable import fsync_dir
from dock.protocol import (
    Code,
    b64d,
    b64e,
    canonical_json,
    is_device_id,
    is_segment_id,
    key_id,
    sha256_hex,
    verify_detached,
)
from dock.receipts import SignedReceipt, UploadState
from dock.verify import ManifestFields

GENESIS = "0" * 64
INDEX_FILE = "index.sqlite3"
SQLITE_FULL = 13
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

    Full is SQLite's SQLITE_FULL ("database or disk is full"), ENOSPC or EDQUOT, or any
    storage error while less than ``FULL_BELOW_BYTES`` are free under ``root``."""
    full = (
        getattr(exc, "sqlite_errorcode", 0) & 0xFF == SQLITE_FULL
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

    @property
    def revoked(self) -> bool:
        return self.revoked_at_us is not None


@dataclass(frozen=True)
class HeldSegment:
    segment_id: str
    seq: int
    manifest_sha256: str
    prev_manifest_sha256: str | None
    stored_sha256: str
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


def entry_hash(e: LogEntry) -> str:
    return sha256_hex(canonical_json(e.body()))


def chain_report(segments: list[HeldSegment]) -> ChainReport:
    segs = sorted(segments, key=lambda s: s.seq)
    gaps: list[tuple[int, int]] = []
    breaks: list[int] = []
    expect = 0
    prev: HeldSegment | None = None
    for s in segs:
        if s.seq > expect:
            gaps.append((expect, s.seq - 1))
        elif prev is not None and s.prev_manifest_sha256 != prev.manifest_sha256:
            breaks.append(s.seq)
        expect = s.seq + 1
        prev = s
    return ChainReport(
        len(segs), segs[0].seq if segs else None, segs[-1].seq if segs else None, gaps, breaks
    )


# --------------------------------------------------------------------------- interfaces


class ObjectStore(Protocol):
    """Where segment bytes live. Objects are written once and never replaced."""

    def put_file(self, key: str, src: Path) -> None:
        """Make ``src`` (a local file, consumed) the object ``key``, durably."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def exists(self, key: str) -> bool: ...


class Store(Protocol):
    """What the dock server needs from its storage."""

    dock_key_id: str

    def get_device(self, device_id: str) -> DeviceRecord | None: ...
    def list_devices(self) -> list[DeviceRecord]: ...
    def add_token(
        self, token_sha256: str, device_id: str | None, now_us: int, expires_at_us: int, actor: str
    ) -> None: ...
    def enroll(
        self, device_id: str, public_key: bytes, token_sha256: str, now_us: int
    ) -> DeviceRecord: ...
    def revoke(self, device_id: str, reason: str, actor: str, now_us: int) -> DeviceRecord: ...
    def record_time_sync(self, device_id: str, offset_us: int, now_us: int) -> None: ...
    def use_nonce(self, device_id: str, nonce: str, now_us: int, keep_until_us: int) -> bool: ...
    def begin_upload(
        self, device_id: str, segment_id: str, manifest: bytes, size: int, sha256: str, now_us: int
    ) -> UploadState: ...
    def upload_state(self, device_id: str, segment_id: str) -> UploadState | None: ...
    def append_chunk(
        self, device_id: str, segment_id: str, offset: int, data: bytes
    ) -> UploadState: ...
    def manifest_of_upload(self, device_id: str, segment_id: str) -> bytes: ...
    @contextmanager
    def completing(self, device_id: str, segment_id: str) -> Iterator[BinaryIO]: ...
    def commit_segment(
        self,
        device_id: str,
        segment_id: str,
        fields: ManifestFields,
        now_us: int,
        sign: Callable[[dict[str, Any]], SignedReceipt],
        gap_before: bool,
    ) -> SignedReceipt: ...
    def reject_upload(
        self, device_id: str, segment_id: str, reasons: list[str], now_us: int
    ) -> LogEntry: ...
    def held_segment(
        self, device_id: str, *, seq: int | None = None, segment_id: str | None = None
    ) -> HeldSegment | None: ...
    def held_segments(self, device_id: str) -> list[HeldSegment]: ...
    def open_object(self, key: str) -> BinaryIO: ...
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
    ) -> LogEntry: ...
    def custody_log(self, after: int = 0, limit: int = 1000) -> list[LogEntry]: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- directory


def blob_key(device_id: str, segment_id: str) -> str:
    return f"{device_id}/{segment_id}.blob"


def manifest_key(device_id: str, segment_id: str) -> str:
    return f"{device_id}/{segment_id}.manifest"


def unsigned_key(device_id: str, segment_id: str) -> str:
    """A segment's set-aside unsigned bytes (dock/unsigned.py): beside it, never evidence."""
    return f"{device_id}/{segment_id}.unsigned"


class DirectoryObjects:
    """Objects as files under ``root``: ``<device>/<segment>.blob``, ``.manifest`` and (a
    segment's set-aside unsigned bytes) ``.unsigned``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        device, _, name = key.partition("/")
        stem, _, ext = name.partition(".")
        kinds = ("blob", "manifest", "unsigned")
        if not (is_device_id(device) and is_segment_id(stem) and ext in kinds):
            raise ValueError(f"not an object key: {key!r}")
        return self.root / device / name

    def put_file(self, key: str, src: Path) -> None:
        dst = self._path(key)
        dst.parent.mkdir(exist_ok=True)
        if dst.exists():
            raise FileExistsError(f"object {key} exists; objects are never replaced")
        with open(src, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(src, 0o440)
        os.replace(src, dst)
        fsync_dir(dst.parent)

    def put_bytes(self, key: str, data: bytes) -> None:
        dst = self._path(key)
        dst.parent.mkdir(exist_ok=True)
        tmp = dst.with_name(dst.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.put_file(key, tmp)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it

    def exists(self, key: str) -> bool:
        return self._path(key).exists()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices(
    device_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, key_id TEXT NOT NULL,
    enrolled_at_us INTEGER NOT NULL, revoked_at_us INTEGER, revoke_reason TEXT,
    time_offset_us INTEGER, time_synced_at_us INTEGER);
CREATE TABLE IF NOT EXISTS tokens(
    token_sha256 TEXT PRIMARY KEY, device_id TEXT, issued_at_us INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL, used_at_us INTEGER, used_by TEXT);
CREATE TABLE IF NOT EXISTS nonces(
    device_id TEXT NOT NULL, nonce TEXT NOT NULL, keep_until_us INTEGER NOT NULL,
    PRIMARY KEY(device_id, nonce));
CREATE TABLE IF NOT EXISTS uploads(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, manifest BLOB NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, offset INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL, PRIMARY KEY(device_id, segment_id));
CREATE TABLE IF NOT EXISTS segments(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, seq INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL, prev_manifest_sha256 TEXT, stored_sha256 TEXT NOT NULL,
    stored_size INTEGER NOT NULL, record_type TEXT NOT NULL, recording_id TEXT,
    segment_index INTEGER, received_at_us INTEGER NOT NULL, receipt TEXT NOT NULL,
    PRIMARY KEY(device_id, segment_id), UNIQUE(device_id, seq));
CREATE TABLE IF NOT EXISTS unsigned_tails(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, file TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, received_at_us INTEGER NOT NULL,
    receipt TEXT NOT NULL, PRIMARY KEY(device_id, segment_id));
CREATE TABLE IF NOT EXISTS custody_log(
    idx INTEGER PRIMARY KEY, at_us INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, device_id TEXT, segment_id TEXT, sha256 TEXT, detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL, signature TEXT NOT NULL);
"""


class DirectoryStore:
    """The embedded store: ``root/index.sqlite3``, ``root/objects/``, ``root/staging/``."""

    def __init__(
        self, root: Path, dock_key: SigningKey, objects: ObjectStore | None = None
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging = self.root / "staging"
        self.staging.mkdir(exist_ok=True)
        self.objects: ObjectStore = objects or DirectoryObjects(self.root / "objects")
        self._key = dock_key
        self.dock_key_id = key_id(bytes(dock_key.verify_key))
        self._db = sqlite3.connect(
            self.root / INDEX_FILE, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()  # one connection, used by one thread at a time
        self._device_locks: dict[str, threading.Lock] = {}
        self._nonce_inserts = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. A failure (a full disk fails an INSERT or the COMMIT)
        leaves no transaction open behind it, and a storage failure is a ``StoreError``
        (507 full, 503 otherwise), never a bare sqlite3 error."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise storage_failure(exc, self.root) from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:  # SQLite may have rolled back by itself
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise storage_failure(exc, self.root) from exc
                raise

    def _q(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise storage_failure(exc, self.root) from exc

    @contextmanager
    def _device(self, device_id: str) -> Iterator[None]:
        """Serialise the uploads and commits of one device (chain checks need it)."""
        with self._lock:
            lock = self._device_locks.setdefault(device_id, threading.Lock())
        with lock:
            yield

    def _staged(self, device_id: str, segment_id: str) -> Path:
        if not (is_device_id(device_id) and is_segment_id(segment_id)):
            raise StoreError("bad device or segment id", 400, Code.INVALID)
        return self.staging / device_id / f"{segment_id}.part"

    # -- devices

    def get_device(self, device_id: str) -> DeviceRecord | None:
        rows = self._q(
            "SELECT device_id, public_key, key_id, enrolled_at_us, revoked_at_us,"
            " revoke_reason, time_offset_us, time_synced_at_us FROM devices"
            " WHERE device_id=?",
            (device_id,),
        )
        return DeviceRecord(*rows[0]) if rows else None

    def list_devices(self) -> list[DeviceRecord]:
        return [
            d
            for (i,) in self._q("SELECT device_id FROM devices ORDER BY device_id")
            if (d := self.get_device(i))
        ]

    def add_token(
        self, token_sha256: str, device_id: str | None, now_us: int, expires_at_us: int, actor: str
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO tokens(token_sha256, device_id, issued_at_us,"
                " expires_at_us) VALUES(?,?,?,?)",
                (token_sha256, device_id, now_us, expires_at_us),
            )
            self._append_log(
                db,
                actor,
                "token_issued",
                now_us,
                device_id=device_id,
                detail={"expires_at_us": expires_at_us, "token_id": token_sha256[:16]},
            )

    def enroll(
        self, device_id: str, public_key: bytes, token_sha256: str, now_us: int
    ) -> DeviceRecord:
        with self._tx() as db:
            row = db.execute(
                "SELECT device_id, expires_at_us, used_at_us FROM tokens WHERE token_sha256=?",
                (token_sha256,),
            ).fetchone()
            if row is None or row[2] is not None or row[1] < now_us:
                raise StoreError("enrollment token unknown, used or expired", 401, Code.BAD_TOKEN)
            if row[0] is not None and row[0] != device_id:
                raise StoreError(
                    "enrollment token was issued for another device", 403, Code.BAD_TOKEN
                )
            existing = db.execute(
                "SELECT public_key, revoked_at_us FROM devices WHERE device_id=?", (device_id,)
            ).fetchone()
            if existing is not None:
                if existing[1] is not None:
                    raise StoreError(
                        "device is revoked; enrol it under a new id", 403, Code.REVOKED
                    )
                raise StoreError("device id already enrolled", 409, Code.ENROLLED)
            kid = key_id(public_key)
            db.execute(
                "UPDATE tokens SET used_at_us=?, used_by=? WHERE token_sha256=?",
                (now_us, device_id, token_sha256),
            )
            db.execute(
                "INSERT INTO devices(device_id, public_key, key_id, enrolled_at_us)"
                " VALUES(?,?,?,?)",
                (device_id, public_key, kid, now_us),
            )
            self._append_log(
                db,
                "technician",
                "enrolled",
                now_us,
                device_id=device_id,
                sha256=sha256_hex(public_key),
                detail={"key_id": kid, "token_id": token_sha256[:16]},
            )
        rec = self.get_device(device_id)
        assert rec is not None
        return rec

    def revoke(self, device_id: str, reason: str, actor: str, now_us: int) -> DeviceRecord:
        with self._tx() as db:
            row = db.execute(
                "SELECT revoked_at_us FROM devices WHERE device_id=?", (device_id,)
            ).fetchone()
            if row is None:
                raise StoreError("no such device", 404, Code.NOT_FOUND)
            if row[0] is None:
                db.execute(
                    "UPDATE devices SET revoked_at_us=?, revoke_reason=? WHERE device_id=?",
                    (now_us, reason, device_id),
                )
                self._append_log(
                    db, actor, "revoked", now_us, device_id=device_id, detail={"reason": reason}
                )
        rec = self.get_device(device_id)
        assert rec is not None
        return rec

    def record_time_sync(self, device_id: str, offset_us: int, now_us: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE devices SET time_offset_us=?, time_synced_at_us=? WHERE device_id=?",
                (offset_us, now_us, device_id),
            )
            self._append_log(
                db,
                f"device:{device_id}",
                "time_sync",
                now_us,
                device_id=device_id,
                detail={"offset_us": offset_us},
            )

    def use_nonce(self, device_id: str, nonce: str, now_us: int, keep_until_us: int) -> bool:
        """Remember ``nonce``; False if it was seen before (a replay)."""
        with self._tx() as db:
            self._nonce_inserts += 1
            if self._nonce_inserts % 256 == 0:
                db.execute("DELETE FROM nonces WHERE keep_until_us < ?", (now_us,))
            cur = db.execute(
                "INSERT OR IGNORE INTO nonces(device_id, nonce, keep_until_us) VALUES(?,?,?)",
                (device_id, nonce, keep_until_us),
            )
            return cur.rowcount == 1

    # -- uploads

    def _receipt_of(self, device_id: str, segment_id: str) -> SignedReceipt | None:
        rows = self._q(
            "SELECT receipt FROM segments WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        )
        return SignedReceipt.from_json(json.loads(rows[0][0])) if rows else None

    def upload_state(self, device_id: str, segment_id: str) -> UploadState | None:
        held = self.held_segment(device_id, segment_id=segment_id)
        if held is not None:
            return UploadState(
                segment_id,
                held.stored_size,
                held.stored_size,
                True,
                self._receipt_of(device_id, segment_id),
            )
        rows = self._q(
            "SELECT size, offset FROM uploads WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        )
        if not rows:
            return None
        return UploadState(segment_id, rows[0][0], rows[0][1], False)

    def begin_upload(
        self, device_id: str, segment_id: str, manifest: bytes, size: int, sha256: str, now_us: int
    ) -> UploadState:
        with self._device(device_id):
            state = self.upload_state(device_id, segment_id)
            if state is not None:
                if state.size != size:
                    raise StoreError(
                        f"upload exists with size {state.size}, not {size}", 409, Code.MISMATCH
                    )
                return state
            path = self._staged(device_id, segment_id)
            path.parent.mkdir(exist_ok=True)
            with open(path, "wb") as f:
                os.fsync(f.fileno())
            fsync_dir(path.parent)
            with self._tx() as db:
                db.execute(
                    "INSERT INTO uploads(device_id, segment_id, manifest, size, sha256,"
                    " offset, created_at_us) VALUES(?,?,?,?,?,0,?)",
                    (device_id, segment_id, manifest, size, sha256, now_us),
                )
            return UploadState(segment_id, size, 0, False)

    def append_chunk(
        self, device_id: str, segment_id: str, offset: int, data: bytes
    ) -> UploadState:
        with self._device(device_id):
            state = self.upload_state(device_id, segment_id)
            if state is None:
                raise StoreError(
                    "no upload with this segment id; create it first", 404, Code.NOT_FOUND
                )
            if state.complete:
                raise StoreError("upload is already complete", 409, Code.COMPLETE)
            if offset != state.offset:
                raise StoreError(
                    f"offset mismatch: the dock holds {state.offset} bytes", 409, Code.OFFSET
                )
            if offset + len(data) > state.size:
                raise StoreError(
                    f"chunk ends at {offset + len(data)}, past the declared size {state.size}",
                    413,
                    Code.OFFSET,
                )
            path = self._staged(device_id, segment_id)
            if not path.exists():
                self._drop_upload(device_id, segment_id)
                raise StoreError("the dock lost the uploaded bytes; upload again", 409, Code.LOST)
            with open(path, "r+b") as f:
                f.truncate(offset)  # cut off a torn append the index never counted
                f.seek(offset)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            new = offset + len(data)
            with self._tx() as db:
                db.execute(
                    "UPDATE uploads SET offset=? WHERE device_id=? AND segment_id=?",
                    (new, device_id, segment_id),
                )
            return UploadState(segment_id, state.size, new, False)

    def _drop_upload(self, device_id: str, segment_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM uploads WHERE device_id=? AND segment_id=?", (device_id, segment_id)
            )

    def manifest_of_upload(self, device_id: str, segment_id: str) -> bytes:
        rows = self._q(
            "SELECT manifest FROM uploads WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        )
        if not rows:
            raise StoreError("no upload with this segment id", 404, Code.NOT_FOUND)
        return bytes(rows[0][0])

    @contextmanager
    def completing(self, device_id: str, segment_id: str) -> Iterator[BinaryIO]:
        """Hold the device's lock and give the staged blob (or, if a crash struck between
        publishing it and committing, the published object) for verification."""
        with self._device(device_id):
            path = self._staged(device_id, segment_id)
            key = blob_key(device_id, segment_id)
            if path.exists():
                f = open(path, "rb")  # noqa: SIM115 - closed below
            elif self.objects.exists(key):
                f = self.objects.open(key)
            else:
                self._drop_upload(device_id, segment_id)
                raise StoreError("the dock lost the uploaded bytes; upload again", 409, Code.LOST)
            with f:
                yield f

    def commit_segment(
        self,
        device_id: str,
        segment_id: str,
        fields: ManifestFields,
        now_us: int,
        sign: Callable[[dict[str, Any]], SignedReceipt],
        gap_before: bool,
    ) -> SignedReceipt:
        """Publish a verified upload and record it. Call inside ``completing``.

        ``sign`` turns the receipt's fields into a signed receipt (the server holds the key).
        """
        rows = self._q(
            "SELECT manifest, size FROM uploads WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        )
        if not rows:
            raise StoreError("no upload with this segment id", 404, Code.NOT_FOUND)
        manifest, size = bytes(rows[0][0]), rows[0][1]
        self._check_chain(device_id, segment_id, fields)
        staged = self._staged(device_id, segment_id)
        bkey, mkey = blob_key(device_id, segment_id), manifest_key(device_id, segment_id)
        if not self.objects.exists(mkey):
            self.objects.put_bytes(mkey, manifest)
        if staged.exists():
            if self.objects.exists(bkey):  # a previous attempt got this far
                staged.unlink()
            else:
                self.objects.put_file(bkey, staged)
        actor = f"device:{device_id}"
        with self._tx() as db:
            below = db.execute(
                "SELECT MAX(seq) FROM segments WHERE device_id=? AND seq<?", (device_id, fields.seq)
            ).fetchone()[0]
            above = db.execute(
                "SELECT MIN(seq) FROM segments WHERE device_id=? AND seq>?", (device_id, fields.seq)
            ).fetchone()[0]
            entry = self._append_log(
                db,
                actor,
                "received",
                now_us,
                device_id=device_id,
                segment_id=segment_id,
                sha256=fields.stored_sha256,
                detail={
                    "seq": fields.seq,
                    "manifest_sha256": fields.manifest_sha256,
                    "record_type": fields.record_type,
                    "recording_id": fields.recording_id,
                    "segment_index": fields.segment_index,
                    "size": size,
                },
            )
            expected_prev = -1 if below is None else below
            if fields.seq > expected_prev + 1:
                self._append_log(
                    db,
                    "dock",
                    "gap",
                    now_us,
                    device_id=device_id,
                    segment_id=segment_id,
                    detail={
                        "missing_from_seq": expected_prev + 1,
                        "missing_to_seq": fields.seq - 1,
                    },
                )
            if above is not None:
                self._append_log(
                    db,
                    "dock",
                    "gap_filled",
                    now_us,
                    device_id=device_id,
                    segment_id=segment_id,
                    detail={"seq": fields.seq},
                )
            receipt = sign(
                {
                    "device_id": device_id,
                    "segment_id": segment_id,
                    "seq": fields.seq,
                    "manifest_sha256": fields.manifest_sha256,
                    "stored_sha256": fields.stored_sha256,
                    "stored_size": size,
                    "received_at_us": now_us,
                    "log_index": entry.index,
                    "log_entry_hash": entry.entry_hash,
                    "gap_before": gap_before,
                    "dock_key_id": self.dock_key_id,
                }
            )
            db.execute(
                "INSERT INTO segments(device_id, segment_id, seq, manifest_sha256,"
                " prev_manifest_sha256, stored_sha256, stored_size, record_type,"
                " recording_id, segment_index, received_at_us, receipt)"
                " VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    device_id,
                    segment_id,
                    fields.seq,
                    fields.manifest_sha256,
                    fields.prev_manifest_sha256,
                    fields.stored_sha256,
                    size,
                    fields.record_type,
                    fields.recording_id,
                    fields.segment_index,
                    now_us,
                    json.dumps(receipt.to_json()),
                ),
            )
            db.execute(
                "DELETE FROM uploads WHERE device_id=? AND segment_id=?", (device_id, segment_id)
            )
        return receipt

    def _check_chain(self, device_id: str, segment_id: str, fields: ManifestFields) -> None:
        other = self.held_segment(device_id, seq=fields.seq)
        if other is not None and other.segment_id != segment_id:
            raise StoreError(
                f"sequence number {fields.seq} is already held as segment "
                f"{other.segment_id}: sequence numbers are never reused",
                409,
                Code.SEQ_REUSED,
            )
        after = self.held_segment(device_id, seq=fields.seq + 1)
        if after is not None and after.prev_manifest_sha256 != fields.manifest_sha256:
            raise StoreError(
                f"chain break: the held segment {fields.seq + 1} does not name "
                f"this manifest as its predecessor",
                409,
                Code.CHAIN_BREAK,
            )

    def reject_upload(
        self, device_id: str, segment_id: str, reasons: list[str], now_us: int
    ) -> LogEntry:
        """Drop a staged upload that failed verification, and log why."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT sha256 FROM uploads WHERE device_id=? AND segment_id=?",
                (device_id, segment_id),
            ).fetchall()
            db.execute(
                "DELETE FROM uploads WHERE device_id=? AND segment_id=?", (device_id, segment_id)
            )
            entry = self._append_log(
                db,
                f"device:{device_id}",
                "rejected",
                now_us,
                device_id=device_id,
                segment_id=segment_id,
                sha256=rows[0][0] if rows else None,
                detail={"reasons": reasons},
            )
        self._staged(device_id, segment_id).unlink(missing_ok=True)
        return entry

    # -- segments

    def _held(self, where: str, args: tuple) -> list[HeldSegment]:
        rows = self._q(
            "SELECT segment_id, seq, manifest_sha256, prev_manifest_sha256,"
            " stored_sha256, stored_size, received_at_us FROM segments WHERE "
            + where
            + " ORDER BY seq",
            args,
        )
        return [HeldSegment(*r) for r in rows]

    def held_segment(
        self, device_id: str, *, seq: int | None = None, segment_id: str | None = None
    ) -> HeldSegment | None:
        if seq is not None:
            found = self._held("device_id=? AND seq=?", (device_id, seq))
        else:
            found = self._held("device_id=? AND segment_id=?", (device_id, segment_id))
        return found[0] if found else None

    def held_segments(self, device_id: str) -> list[HeldSegment]:
        return self._held("device_id=?", (device_id,))

    def open_object(self, key: str) -> BinaryIO:
        return self.objects.open(key)

    # -- custody log

    def _append_log(
        self,
        db: sqlite3.Connection,
        actor: str,
        action: str,
        now_us: int,
        *,
        device_id: str | None = None,
        segment_id: str | None = None,
        sha256: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> LogEntry:
        last = db.execute(
            "SELECT idx, entry_hash FROM custody_log ORDER BY idx DESC LIMIT 1"
        ).fetchone()
        idx, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        e = LogEntry(idx, now_us, actor, action, device_id, segment_id, sha256, detail or {}, prev)
        h = entry_hash(e)
        sig = b64e(self._key.sign(bytes.fromhex(h)).signature)
        db.execute(
            "INSERT INTO custody_log(idx, at_us, actor, action, device_id, segment_id,"
            " sha256, detail, prev_hash, entry_hash, signature)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?)",
            (
                idx,
                now_us,
                actor,
                action,
                device_id,
                segment_id,
                sha256,
                json.dumps(e.detail, sort_keys=True),
                prev,
                h,
                sig,
            ),
        )
        return LogEntry(
            idx, now_us, actor, action, device_id, segment_id, sha256, e.detail, prev, h, sig
        )

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
        with self._tx() as db:
            return self._append_log(
                db,
                actor,
                action,
                now_us,
                device_id=device_id,
                segment_id=segment_id,
                sha256=sha256,
                detail=detail,
            )

    def custody_log(self, after: int = 0, limit: int = 1000) -> list[LogEntry]:
        rows = self._q(
            "SELECT idx, at_us, actor, action, device_id, segment_id, sha256,"
            " detail, prev_hash, entry_hash, signature FROM custody_log"
            " WHERE idx>? ORDER BY idx LIMIT ?",
            (after, limit),
        )
        return [
            LogEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9], r[10])
            for r in rows
        ]


def verify_custody_log(entries: list[LogEntry], dock_public_key: bytes) -> list[str]:
    """Replay the log's hash chain and signatures; returns the problems found (none: [])."""
    problems = []
    prev, expect_idx = GENESIS, 1
    for e in entries:
        if e.index != expect_idx:
            problems.append(f"entry {e.index}: expected index {expect_idx} (entries missing)")
        if e.prev_hash != prev:
            problems.append(f"entry {e.index}: does not chain to the entry before it")
        if entry_hash(e) != e.entry_hash:
            problems.append(f"entry {e.index}: content does not match its hash")
        try:
            sig, digest = b64d(e.signature), bytes.fromhex(e.entry_hash)
        except ValueError:
            sig, digest = b"", b""
        if not verify_detached(dock_public_key, digest, sig):
            problems.append(f"entry {e.index}: dock signature does not verify")
        prev, expect_idx = e.entry_hash, e.index + 1
    return problems

"""The embedded store's SQLite index and its plumbing: one connection (WAL,
synchronous=FULL), write transactions that turn storage failures into ``StoreError``, the
per-device locks, the staging paths, the held segments and the custody log. The uploads
(dock/store_uploads.py) and the devices (dock/store_sqlite.py) build on it."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from nacl.signing import SigningKey

from dock.custody import COLUMNS, append_entry, entry_of_row
from dock.leaves import LEAF_COLUMNS, Leaf, append_leaf, custody_leaf, leaf_of_row
from dock.objects import DirectoryObjects
from dock.protocol import Code, is_device_id, is_segment_id, key_id
from dock.store import HeldSegment, LogEntry, ObjectStore, StoreError, storage_failure

INDEX_FILE = "index.sqlite3"

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
CREATE TABLE IF NOT EXISTS retired_segments(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, seq INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL, prev_manifest_sha256 TEXT, stored_sha256 TEXT NOT NULL,
    stored_size INTEGER NOT NULL, record_type TEXT NOT NULL, recording_id TEXT,
    segment_index INTEGER, received_at_us INTEGER NOT NULL, receipt TEXT NOT NULL,
    retired_at_us INTEGER NOT NULL, log_index INTEGER NOT NULL, objects_gone_at_us INTEGER,
    PRIMARY KEY(device_id, segment_id), UNIQUE(device_id, seq));
CREATE TABLE IF NOT EXISTS unsigned_tails(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, file TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, received_at_us INTEGER NOT NULL,
    receipt TEXT NOT NULL, PRIMARY KEY(device_id, segment_id));
CREATE TABLE IF NOT EXISTS custody_log(
    idx INTEGER PRIMARY KEY, at_us INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, device_id TEXT, segment_id TEXT, sha256 TEXT, detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log_leaves(
    idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, data BLOB NOT NULL,
    leaf_hash BLOB NOT NULL);
"""


class StoreIndex:
    """``root/index.sqlite3``, ``root/objects/``, ``root/staging/``: what every part of the
    embedded store shares."""

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

    def _q(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
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
    # -- segments

    def _held(self, where: str, args: tuple[Any, ...]) -> list[HeldSegment]:
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
        entry = append_entry(
            db,
            self._key,
            actor,
            action,
            now_us,
            device_id=device_id,
            segment_id=segment_id,
            sha256=sha256,
            detail=detail,
        )
        append_leaf(db, custody_leaf(entry))  # in the same transaction: never one alone
        return entry

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

    def log_leaves(self, after: int = -1, limit: int = 10_000) -> list[Leaf]:
        rows = self._q(
            f"SELECT {LEAF_COLUMNS} FROM log_leaves WHERE idx>? ORDER BY idx LIMIT ?",
            (after, limit),
        )
        return [leaf_of_row(r) for r in rows]

    def log_leaf_hashes(self, size: int) -> list[bytes]:
        rows = self._q("SELECT leaf_hash FROM log_leaves WHERE idx<? ORDER BY idx", (size,))
        return [bytes(r[0]) for r in rows]

    def log_size(self) -> int:
        return int(self._q("SELECT COUNT(*) FROM log_leaves")[0][0])

    def record_leaf_index(self, device_id: str, segment_id: str) -> int | None:
        rows = self._q(
            "SELECT idx FROM log_leaves WHERE kind='record' AND ref=?",
            (f"{device_id}/{segment_id}",),
        )
        return int(rows[0][0]) if rows else None

    def custody_log(self, after: int = 0, limit: int = 1000) -> list[LogEntry]:
        rows = self._q(
            f"SELECT {COLUMNS} FROM custody_log WHERE idx>? ORDER BY idx LIMIT ?", (after, limit)
        )
        return [entry_of_row(r) for r in rows]

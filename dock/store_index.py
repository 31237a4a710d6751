"""The store's index and its plumbing: the index database (dock/sqldb.py: the embedded
SQLite file, or a PostgreSQL database every dock of the agency shares), its write
transactions (storage failures are ``StoreError``), the per-device locks, the staging paths,
the held segments and the custody log. The uploads (dock/store_uploads.py) and the devices
(dock/store_sqlite.py) build on it."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO

from nacl.signing import SigningKey

from dock.custody import COLUMNS, append_entry, entry_of_row
from dock.leaves import LEAF_COLUMNS, Leaf, append_leaf, custody_leaf, leaf_of_row
from dock.objects import DirectoryObjects
from dock.protocol import Code, is_device_id, is_segment_id, key_id
from dock.sqldb import Conn, Database, open_database
from dock.store import HeldSegment, LogEntry, ObjectStore, StoreError

INDEX_FILE = "index.sqlite3"


class StoreIndex:
    """``root/staging/`` (this dock's own), the index (``root/index.sqlite3``, or the
    PostgreSQL database ``index`` names) and the objects (``root/objects/`` unless given):
    what every part of the store shares."""

    def __init__(
        self,
        root: Path,
        dock_key: SigningKey,
        objects: ObjectStore | None = None,
        index: Path | str | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging = self.root / "staging"
        self.staging.mkdir(exist_ok=True)
        self.objects: ObjectStore = (
            objects if objects is not None else DirectoryObjects(self.root / "objects")
        )
        self._key = dock_key
        self.dock_key_id = key_id(bytes(dock_key.verify_key))
        self.db: Database = open_database(index if index is not None else self.root / INDEX_FILE)

    def close(self) -> None:
        self.db.close()

    # -- plumbing

    @property
    def _db(self) -> Any:
        """The embedded index's ``sqlite3.Connection`` (tests reach in to fill the disk)."""
        return self.db.conn  # type: ignore[attr-defined]

    @_db.setter
    def _db(self, conn: Any) -> None:
        self.db.conn = conn  # type: ignore[attr-defined]

    def _tx(self, durable: bool = True) -> AbstractContextManager[Conn]:
        """One write transaction (``Database.tx``)."""
        return self.db.tx(durable)

    def _q(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.db.q(sql, args)

    def _device(self, device_id: str) -> AbstractContextManager[None]:
        """Serialise the uploads and commits of one device (chain checks need it), across
        every dock sharing the index."""
        return self.db.device_lock(device_id)

    def _staged(self, device_id: str, segment_id: str) -> Path:
        if not (is_device_id(device_id) and is_segment_id(segment_id)):
            raise StoreError("bad device or segment id", 400, Code.INVALID)
        return self.staging / device_id / f"{segment_id}.part"

    # -- devices
    # -- segments

    def _held(self, where: str, args: tuple[Any, ...]) -> list[HeldSegment]:
        rows = self._q(
            "SELECT segment_id, seq, manifest_sha256, prev_manifest_sha256,"
            " stored_digest, stored_size, received_at_us FROM segments WHERE "
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
        db: Conn,
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

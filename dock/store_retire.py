"""The store's deletions under retention (``retire_record``): a chain record the
dock holds is forgotten on purpose, and says so.

In one index transaction the custody entry ``retention_deleted`` (its log leaf with it) is
appended and the segment's row moves from ``segments`` to ``retired_segments``; only then
do its objects (blob, manifest, set-aside unsigned bytes) go. A crash between the two leaves
the row retired and the objects present: ``retire_record`` again (or
``unfinished_retirements``) finishes the deletion without a second entry. The log's leaves
stay: the record's leaf and the entry's leaf explain each other to the witness check
(dock/log_audit.py)."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from dock.custody import COLUMNS, entry_of_row
from dock.protocol import Code
from dock.receipts import SignedReceipt, UploadState
from dock.store import LogEntry, StoreError, record_object_keys
from dock.store_commit import SegmentCommits

RETENTION_DELETED = "retention_deleted"


_SEGMENT_COLUMNS = (
    "device_id, segment_id, seq, manifest_sha256, prev_manifest_sha256, stored_digest,"
    " stored_size, record_type, recording_id, segment_index, received_at_us, receipt"
)


@dataclass(frozen=True)
class RetiredRecord:
    """A chain record deleted under retention: what the index keeps of it."""

    device_id: str
    segment_id: str  # the SHA-256 of the record line (its log leaf still holds the line)
    seq: int
    manifest_sha256: str
    record_type: str
    recording_id: str | None
    segment_index: int | None
    stored_size: int
    received_at_us: int
    retired_at_us: int
    log_index: int  # the custody entry ``retention_deleted``
    objects_gone: bool  # its bytes are deleted (False: a crash cut the deletion short)


class SegmentRetirement(SegmentCommits):
    """Held chain records retired (deleted under retention), and what is kept of them."""

    def retire_record(
        self, device_id: str, segment_id: str, actor: str, detail: dict[str, Any], now_us: int
    ) -> LogEntry:
        with self._device(device_id):
            self._refuse_locked(device_id, segment_id)
            with self._tx() as db:
                entry = self._retire_row(db, device_id, segment_id, actor, detail, now_us)
            self._delete_objects(device_id, segment_id, now_us)
        return entry

    def _refuse_locked(self, device_id: str, segment_id: str) -> None:
        """On an object store with Object Lock: refuse (409) a record whose objects it still
        keeps, before any entry says they are deleted. Judged by the object store's clock,
        which is the one its locks obey; a record already retired is let through (its bytes
        are deleted once the lock ends)."""
        lock_state = getattr(self.objects, "lock_state", None)
        if lock_state is None or self._q(
            "SELECT 1 FROM retired_segments WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        ):
            return
        now_s = getattr(self.objects, "clock_s", time.time)()
        for key in record_object_keys(device_id, segment_id):
            try:
                lock = lock_state(key)
            except FileNotFoundError:
                continue
            except OSError as exc:  # the object store cannot say: nothing is deleted
                raise StoreError(f"object store: {exc}", 503, Code.STORAGE) from None
            if lock.legal_hold or (lock.mode and (lock.retain_until_s or 0) > now_s):
                raise StoreError(
                    f"object {key} is still locked by the object store", 409, Code.STORAGE
                )

    def _retire_row(
        self,
        db: Any,
        device_id: str,
        segment_id: str,
        actor: str,
        detail: dict[str, Any],
        now_us: int,
    ) -> LogEntry:
        done = db.execute(
            "SELECT log_index FROM retired_segments WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        ).fetchone()
        if done is not None:
            row = db.execute(f"SELECT {COLUMNS} FROM custody_log WHERE idx=?", done).fetchone()
            return entry_of_row(row)
        row = db.execute(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        ).fetchone()
        if row is None:
            raise StoreError("the dock holds no such record", 404, Code.NOT_FOUND)
        seq, manifest_sha256, recording_id = row[2], row[3], row[8]
        entry = self._append_log(
            db,
            actor,
            RETENTION_DELETED,
            now_us,
            device_id=device_id,
            segment_id=segment_id,
            sha256=row[5],
            detail={
                **detail,
                "record_sha256": manifest_sha256,
                "seq": seq,
                "recording_id": recording_id,
            },
        )
        db.execute(
            f"INSERT INTO retired_segments({_SEGMENT_COLUMNS}, retired_at_us, log_index)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (*row, now_us, entry.index),
        )
        db.execute(
            "DELETE FROM segments WHERE device_id=? AND segment_id=?", (device_id, segment_id)
        )
        return entry

    def _delete_objects(self, device_id: str, segment_id: str, now_us: int) -> None:
        for key in record_object_keys(device_id, segment_id):
            delete = getattr(self.objects, "delete", None)
            if delete is None:
                raise StoreError("this object store cannot delete", 500, Code.STORAGE)
            with contextlib.suppress(FileNotFoundError):
                delete(key)
        with self._tx() as db:
            db.execute(
                "UPDATE retired_segments SET objects_gone_at_us=? WHERE device_id=? AND"
                " segment_id=? AND objects_gone_at_us IS NULL",
                (now_us, device_id, segment_id),
            )

    def _state(self, device_id: str, segment_id: str) -> UploadState | None:
        # a retired record's upload stays complete, with its receipt (Store.upload_state)
        state = super()._state(device_id, segment_id)
        if state is not None:
            return state
        rows = self._q(
            "SELECT stored_size, receipt FROM retired_segments WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        )
        if not rows:
            return None
        size, receipt = int(rows[0][0]), SignedReceipt.from_json(json.loads(rows[0][1]))
        return UploadState(segment_id, size, size, True, receipt)

    def retired_records(self, device_id: str | None = None) -> list[RetiredRecord]:
        where, args = ("WHERE device_id=?", (device_id,)) if device_id else ("", ())
        rows = self._q(
            "SELECT device_id, segment_id, seq, manifest_sha256, record_type, recording_id,"
            " segment_index, stored_size, received_at_us, retired_at_us, log_index,"
            f" objects_gone_at_us IS NOT NULL FROM retired_segments {where}"
            " ORDER BY device_id, seq",
            args,
        )
        return [
            RetiredRecord(
                device_id=r[0],
                segment_id=r[1],
                seq=r[2],
                manifest_sha256=r[3],
                record_type=r[4],
                recording_id=r[5],
                segment_index=r[6],
                stored_size=r[7],
                received_at_us=r[8],
                retired_at_us=r[9],
                log_index=r[10],
                objects_gone=bool(r[11]),
            )
            for r in rows
        ]

    def unfinished_retirements(self) -> list[RetiredRecord]:
        return [r for r in self.retired_records() if not r.objects_gone]

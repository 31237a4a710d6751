"""The embedded store's uploads: staged chunk by chunk in ``staging/<device>/<segment>.part``
(durable before the offset counts), then published as objects and recorded, with the
custody-log entries and the receipt, in one index transaction (``commit_segment``)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from crypto.durable import fsync_dir
from dock.leaves import append_leaf, record_leaf
from dock.protocol import Code
from dock.receipts import SignedReceipt, UploadState
from dock.store import LogEntry, StoreError, blob_key, manifest_key
from dock.store_index import StoreIndex
from dock.verify import ManifestFields


class SegmentUploads(StoreIndex):
    """Uploads of segments, and their commit as held segments."""

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
        self, device_id: str, segment_id: str, offset: int, data: bytes | Path
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
            length = data.stat().st_size if isinstance(data, Path) else len(data)
            if offset + length > state.size:
                raise StoreError(
                    f"chunk ends at {offset + length}, past the declared size {state.size}",
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
                if isinstance(data, Path):
                    with open(data, "rb") as src:
                        shutil.copyfileobj(src, f, 1 << 20)
                else:
                    f.write(data)
                f.flush()
                os.fsync(f.fileno())
            new = offset + length
            with self._tx() as db:
                db.execute(
                    "UPDATE uploads SET offset=? WHERE device_id=? AND segment_id=?",
                    (new, device_id, segment_id),
                )
            return UploadState(segment_id, state.size, new, False)

    def spool_path(self, device_id: str, segment_id: str) -> Path:
        staged = self._staged(device_id, segment_id)
        staged.parent.mkdir(exist_ok=True)
        return staged.with_name(f"{segment_id}.{secrets.token_hex(8)}.in")

    def open_uploads(self, device_id: str) -> tuple[int, int]:
        rows = self._q(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM uploads WHERE device_id=?",
            (device_id,),
        )
        return int(rows[0][0]), int(rows[0][1])

    def expire_uploads(self, now_us: int, max_age_us: int) -> int:
        with self._tx() as db:
            rows = db.execute(
                "SELECT device_id, segment_id, size, offset, created_at_us FROM uploads"
                " WHERE created_at_us < ?",
                (now_us - max_age_us,),
            ).fetchall()
            for dev, seg, size, offset, created in rows:
                db.execute("DELETE FROM uploads WHERE device_id=? AND segment_id=?", (dev, seg))
                self._append_log(
                    db,
                    "dock",
                    "upload_expired",
                    now_us,
                    device_id=dev,
                    segment_id=seg,
                    detail={"size": size, "received": offset, "created_at_us": created},
                )
        for dev, seg, *_ in rows:
            staged = self._staged(dev, seg)
            staged.unlink(missing_ok=True)
            for spool in staged.parent.glob(f"{seg}.*.in"):
                spool.unlink(missing_ok=True)
        return len(rows)

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
        with self._device(device_id):
            path = self._staged(device_id, segment_id)
            key = blob_key(device_id, segment_id)
            f: BinaryIO
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
        manifest, size = self._upload_row(device_id, segment_id)
        self._check_chain(device_id, segment_id, fields)
        self._publish(device_id, segment_id, manifest)
        with self._tx() as db:
            # the record's leaf, then its custody entries' leaves: one transaction
            leaf_index = append_leaf(db, record_leaf(device_id, segment_id, manifest))
            entry = self._log_arrival(db, device_id, segment_id, fields, size, now_us)
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
                    "leaf_index": leaf_index,
                    "gap_before": gap_before,
                    "dock_key_id": self.dock_key_id,
                }
            )
            self._record_segment(db, device_id, segment_id, fields, size, now_us, receipt)
        return receipt

    def _upload_row(self, device_id: str, segment_id: str) -> tuple[bytes, int]:
        """The upload's manifest and declared size."""
        rows = self._q(
            "SELECT manifest, size FROM uploads WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        )
        if not rows:
            raise StoreError("no upload with this segment id", 404, Code.NOT_FOUND)
        return bytes(rows[0][0]), int(rows[0][1])

    def _publish(self, device_id: str, segment_id: str, manifest: bytes) -> None:
        """The manifest and the staged blob as objects (what an earlier attempt published
        is kept, never replaced)."""
        staged = self._staged(device_id, segment_id)
        bkey, mkey = blob_key(device_id, segment_id), manifest_key(device_id, segment_id)
        if not self.objects.exists(mkey):
            self.objects.put_bytes(mkey, manifest)
        if staged.exists():
            if self.objects.exists(bkey):  # a previous attempt got this far
                staged.unlink()
            else:
                self.objects.put_file(bkey, staged)

    def _log_arrival(
        self,
        db: sqlite3.Connection,
        device_id: str,
        segment_id: str,
        fields: ManifestFields,
        size: int,
        now_us: int,
    ) -> LogEntry:
        """Log ``received``, and ``gap`` (records missing before it) or ``gap_filled`` (it
        fills a hole before a held record); the ``received`` entry is the receipt's."""
        held = "(SELECT seq FROM segments WHERE device_id=:d UNION ALL SELECT seq FROM"
        held += " retired_segments WHERE device_id=:d)"  # deleted under retention: not gaps
        args = {"d": device_id, "s": fields.seq}
        below = db.execute(f"SELECT MAX(seq) FROM {held} WHERE seq<:s", args).fetchone()[0]
        above = db.execute(f"SELECT MIN(seq) FROM {held} WHERE seq>:s", args).fetchone()[0]
        entry = self._append_log(
            db,
            f"device:{device_id}",
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
                detail={"missing_from_seq": expected_prev + 1, "missing_to_seq": fields.seq - 1},
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
        return entry

    def _record_segment(
        self,
        db: sqlite3.Connection,
        device_id: str,
        segment_id: str,
        fields: ManifestFields,
        size: int,
        now_us: int,
        receipt: SignedReceipt,
    ) -> None:
        """The segment's row with its receipt; the upload is done."""
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

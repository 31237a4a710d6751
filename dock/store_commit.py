"""The store's commit of a verified upload (``commit_segment``): its objects published,
each with its signed hash, then, in one index transaction, the record's leaf, its custody
entries (``received``, and ``gap`` or ``gap_filled``), the segment row and its receipt.

The checks (a sequence number reused, a held successor that names another manifest, the
segment committed already) are made again inside the transaction, with the index's write
lock held: two docks that commit the same segment at once make one segment row, one
``received`` entry and one receipt, the second answering with the first's receipt. A failure
of the object store is a ``StoreError`` (507 full, else 503), and nothing is receipted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from dock.leaves import append_leaf, record_leaf
from dock.protocol import Code
from dock.receipts import SignedReceipt
from dock.sqldb import Conn
from dock.store import LogEntry, StoreError, blob_key, manifest_key, storage_failure
from dock.store_uploads import Fetch, SegmentUploads
from dock.verify import ManifestFields


class SegmentCommits(SegmentUploads):
    """Verified uploads recorded as held segments."""

    def commit_segment(
        self,
        device_id: str,
        segment_id: str,
        fields: ManifestFields,
        now_us: int,
        sign: Callable[[dict[str, Any]], SignedReceipt],
        gap_before: bool,
    ) -> SignedReceipt:
        done = self._receipt_of(device_id, segment_id)
        if done is not None:  # committed already (by another dock, or request)
            return done
        manifest, size = self._upload_row(device_id, segment_id)
        self._check_chain(self._q, device_id, segment_id, fields)
        self._publish(device_id, segment_id, manifest, fields)
        with self._tx() as db:
            read: Fetch = lambda sql, args: db.execute(sql, args).fetchall()  # noqa: E731
            # checked again, the index's write lock held: what another dock did counts
            done = self._receipt_of(device_id, segment_id, read)
            if done is not None:
                return done
            self._check_chain(read, device_id, segment_id, fields)
            # the record's leaf, then its custody entries' leaves: one transaction
            leaf_index = append_leaf(db, record_leaf(device_id, segment_id, manifest))
            entry = self._log_arrival(db, device_id, segment_id, fields, size, now_us)
            receipt = sign(
                {
                    **self._receipt_fields(device_id, segment_id, fields, size, now_us),
                    "log_index": entry.index,
                    "log_entry_hash": entry.entry_hash,
                    "leaf_index": leaf_index,
                    "gap_before": gap_before,
                }
            )
            self._record_segment(db, device_id, segment_id, fields, size, now_us, receipt)
        return receipt

    def _receipt_fields(
        self, device_id: str, segment_id: str, fields: ManifestFields, size: int, now_us: int
    ) -> dict[str, Any]:
        """The receipt's fields about the segment (the log's are added to them)."""
        return {
            "device_id": device_id,
            "segment_id": segment_id,
            "seq": fields.seq,
            "manifest_sha256": fields.manifest_sha256,
            "stored_digest": fields.stored_digest,
            "stored_size": size,
            "received_at_us": now_us,
            "dock_key_id": self.dock_key_id,
        }

    def _upload_row(self, device_id: str, segment_id: str) -> tuple[bytes, int]:
        """The upload's manifest and declared size."""
        rows = self._q(
            "SELECT manifest, size FROM uploads WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        )
        if not rows:
            raise StoreError("no upload with this segment id", 404, Code.NOT_FOUND)
        return bytes(rows[0][0]), int(rows[0][1])

    def _publish(
        self, device_id: str, segment_id: str, manifest: bytes, fields: ManifestFields
    ) -> None:
        """The manifest and the staged blob as objects, each with its signed hash (what an
        earlier attempt, or another dock, published is kept, never replaced). A failure of
        the object store is a ``StoreError`` (507 full, else 503): nothing is receipted."""
        staged = self._staged(device_id, segment_id)
        bkey, mkey = blob_key(device_id, segment_id), manifest_key(device_id, segment_id)
        try:
            if not self.objects.exists(mkey):
                with contextlib.suppress(FileExistsError):  # published elsewhere meanwhile
                    self.objects.put_bytes(mkey, manifest, sha256=fields.manifest_sha256)
            if staged.exists():
                if self.objects.exists(bkey):  # a previous attempt got this far
                    staged.unlink()
                else:
                    segment = fields.record_type == "manifest"  # others: an empty blob
                    digest = {"stored_digest" if segment else "sha256": fields.stored_digest}
                    try:  # fsync'd before it was verified (``completing``)
                        self.objects.put_file(bkey, staged, **digest, synced=True)
                    except FileExistsError:
                        staged.unlink(missing_ok=True)
        except StoreError:
            raise
        except Exception as exc:  # the object store's own errors, whatever their class
            raise storage_failure(exc, self.root) from exc

    def _log_arrival(
        self,
        db: Conn,
        device_id: str,
        segment_id: str,
        fields: ManifestFields,
        size: int,
        now_us: int,
    ) -> LogEntry:
        """Log ``received``, and ``gap`` (records missing before it) or ``gap_filled`` (it
        fills a hole before a held record); the ``received`` entry is the receipt's."""
        held = "(SELECT seq FROM segments WHERE device_id=? UNION ALL SELECT seq FROM"
        held += " retired_segments WHERE device_id=?) AS held"  # retired: not gaps
        args = (device_id, device_id, fields.seq)
        below = db.execute(f"SELECT MAX(seq) FROM {held} WHERE seq<?", args).fetchone()[0]
        above = db.execute(f"SELECT MIN(seq) FROM {held} WHERE seq>?", args).fetchone()[0]
        entry = self._append_log(
            db,
            f"device:{device_id}",
            "received",
            now_us,
            device_id=device_id,
            segment_id=segment_id,
            sha256=fields.stored_digest,
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
        db: Conn,
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
            " prev_manifest_sha256, stored_digest, stored_size, record_type,"
            " recording_id, segment_index, received_at_us, receipt)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                device_id,
                segment_id,
                fields.seq,
                fields.manifest_sha256,
                fields.prev_manifest_sha256,
                fields.stored_digest,
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

    def _check_chain(
        self, fetch: Fetch, device_id: str, segment_id: str, fields: ManifestFields
    ) -> None:
        """Refuse a reused sequence number, or a held successor that does not name this
        manifest (``fetch``: a read, in the transaction or not)."""
        sql = "SELECT segment_id, prev_manifest_sha256 FROM segments WHERE device_id=? AND seq=?"
        other = fetch(sql, (device_id, fields.seq))
        if other and other[0][0] != segment_id:
            raise StoreError(
                f"sequence number {fields.seq} is already held as segment "
                f"{other[0][0]}: sequence numbers are never reused",
                409,
                Code.SEQ_REUSED,
            )
        after = fetch(sql, (device_id, fields.seq + 1))
        if after and after[0][1] != fields.manifest_sha256:
            raise StoreError(
                f"chain break: the held segment {fields.seq + 1} does not name "
                f"this manifest as its predecessor",
                409,
                Code.CHAIN_BREAK,
            )

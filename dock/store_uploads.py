"""The store's uploads: staged chunk by chunk in ``staging/<device>/<segment>.part``
(durable before the offset counts), then published as objects and recorded, with the
custody-log entries and the receipt, in one index transaction (``commit_segment``).

With a shared index (several docks), the upload's row is shared and its staged bytes are
the dock's that received them: a dock asked about an upload whose committed offset it holds
no staged bytes for starts it again at 0 (the camera sends from the offset it is told:
nothing lost, nothing twice). Committing the same segment on two docks at once makes one
segment row, one ``received`` entry, one receipt (dock/store_commit.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from crypto.durable import fsync_dir
from dock.protocol import Code
from dock.receipts import SignedReceipt, UploadState
from dock.store import LogEntry, StoreError, blob_key
from dock.store_index import StoreIndex

log = logging.getLogger("bwv.dock.store")
Fetch = Callable[[str, tuple[Any, ...]], list[Any]]  # a read: SQL and its arguments, the rows


class SegmentUploads(StoreIndex):
    """Uploads of segments, and their commit as held segments."""

    def _receipt_of(
        self, device_id: str, segment_id: str, read: Fetch | None = None
    ) -> SignedReceipt | None:
        """The held segment's receipt (``read``: in a transaction, or else outside one)."""
        rows = (read or self._q)(
            "SELECT receipt FROM segments WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        )
        return SignedReceipt.from_json(json.loads(rows[0][0])) if rows else None

    def _state(self, device_id: str, segment_id: str) -> UploadState | None:
        """Where the upload stands in the index."""
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
            'SELECT size, "offset" FROM uploads WHERE device_id=? AND segment_id=?',
            (device_id, segment_id),
        )
        if not rows:
            return None
        return UploadState(segment_id, int(rows[0][0]), int(rows[0][1]), False)

    def upload_state(self, device_id: str, segment_id: str) -> UploadState | None:
        state = self._state(device_id, segment_id)
        if state is None or state.complete or not self.db.shared:
            return state
        if self._holds_bytes(device_id, segment_id, state):
            return state
        with self._device(device_id):  # the bytes are on another dock: start again here
            state = self._state(device_id, segment_id)
            if state is None or state.complete:
                return state
            return self._here(device_id, segment_id, state)

    def _holds_bytes(self, device_id: str, segment_id: str, state: UploadState) -> bool:
        """This dock holds the bytes the upload's committed offset counts (staged, or, all
        of them, published by an attempt a crash cut short before its commit)."""
        try:
            return self._staged(device_id, segment_id).stat().st_size >= state.offset
        except FileNotFoundError:
            pass
        return state.offset == state.size and self.objects.exists(blob_key(device_id, segment_id))

    def _here(self, device_id: str, segment_id: str, state: UploadState) -> UploadState:
        """The upload as this dock can continue it (shared index; device lock held): where
        it stands, or, when its staged bytes are on another dock, started again at 0."""
        if self._holds_bytes(device_id, segment_id, state):
            return state
        self._new_staged(device_id, segment_id)
        if state.offset > 0:
            with self._tx() as db:
                db.execute(
                    'UPDATE uploads SET "offset"=0 WHERE device_id=? AND segment_id=?',
                    (device_id, segment_id),
                )
            log.info(
                "upload %s of %s: its %d bytes are staged on another dock; starting again at 0",
                segment_id[:16],
                device_id,
                state.offset,
            )
        return replace(state, offset=0)

    def _new_staged(self, device_id: str, segment_id: str) -> Path:
        """An empty staged file for the upload, durably."""
        path = self._staged(device_id, segment_id)
        path.parent.mkdir(exist_ok=True)
        with open(path, "wb") as f:
            os.fsync(f.fileno())
        fsync_dir(path.parent)
        return path

    def begin_upload(
        self, device_id: str, segment_id: str, manifest: bytes, size: int, sha256: str, now_us: int
    ) -> UploadState:
        with self._device(device_id):
            state = self._state(device_id, segment_id)
            if state is not None:
                if state.size != size:
                    raise StoreError(
                        f"upload exists with size {state.size}, not {size}", 409, Code.MISMATCH
                    )
                if self.db.shared and not state.complete:
                    return self._here(device_id, segment_id, state)
                return state
            self._new_staged(device_id, segment_id)
            with self._tx() as db:
                db.execute(
                    "INSERT INTO uploads(device_id, segment_id, manifest, size, sha256,"
                    ' "offset", created_at_us) VALUES(?,?,?,?,?,0,?)',
                    (device_id, segment_id, manifest, size, sha256, now_us),
                )
            return UploadState(segment_id, size, 0, False)

    def append_chunk(
        self, device_id: str, segment_id: str, offset: int, data: bytes | Path
    ) -> UploadState:
        with self._device(device_id):
            state = self._state(device_id, segment_id)
            if state is None:
                raise StoreError(
                    "no upload with this segment id; create it first", 404, Code.NOT_FOUND
                )
            if state.complete:
                raise StoreError("upload is already complete", 409, Code.COMPLETE)
            if self.db.shared:
                state = self._here(device_id, segment_id, state)
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
                    'UPDATE uploads SET "offset"=? WHERE device_id=? AND segment_id=?',
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
                'SELECT device_id, segment_id, size, "offset", created_at_us FROM uploads'
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
            self._drop_staged(dev, seg)
        if self.db.shared:
            self._sweep_staging()
        return len(rows)

    def _drop_staged(self, device_id: str, segment_id: str) -> None:
        staged = self._staged(device_id, segment_id)
        staged.unlink(missing_ok=True)
        for spool in staged.parent.glob(f"{segment_id}.*.in"):
            spool.unlink(missing_ok=True)

    def _sweep_staging(self) -> None:
        """Staged bytes of uploads gone from the shared index (another dock expired,
        committed or dropped them) go too."""
        for path in self.staging.glob("*/*.part"):
            device_id, segment_id = path.parent.name, path.name[: -len(".part")]
            if "." in segment_id:  # <segment>.unsigned.part: dock/unsigned.py's
                continue
            with self._device(device_id):
                if not self._q(
                    "SELECT 1 FROM uploads WHERE device_id=? AND segment_id=?",
                    (device_id, segment_id),
                ):
                    self._drop_staged(device_id, segment_id)

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
            state = self._state(device_id, segment_id)
            if self.db.shared and state is not None and not state.complete:
                here = self._here(device_id, segment_id, state)
                if here.offset < here.size:
                    raise StoreError(
                        f"upload incomplete: {here.offset} of {here.size} bytes at this dock",
                        409,
                        Code.INCOMPLETE,
                    )
            f: BinaryIO
            if path.exists():
                f = open(path, "rb")  # noqa: SIM115 - closed below
            elif self.objects.exists(key):
                f = self.objects.open(key)
            elif state is not None and state.complete:  # another dock committed it
                f = io.BytesIO(b"")
            else:
                self._drop_upload(device_id, segment_id)
                raise StoreError("the dock lost the uploaded bytes; upload again", 409, Code.LOST)
            with f:
                yield f

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

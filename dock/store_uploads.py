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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from crypto.digests import StoredDigest
from crypto.durable import fsync_dir
from dock.protocol import Code
from dock.receipts import SignedReceipt, UploadState
from dock.store import LogEntry, StoreError, blob_key
from dock.store_index import StoreIndex
from dock.upload_live import SYNC_EVERY, ChunkWriter, LiveUpload, LiveUploads

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
        row = self._upload_row_of(device_id, segment_id)
        if row is None:
            return None
        size, durable = row
        live = self._live_uploads.get((device_id, segment_id), durable)
        return UploadState(segment_id, size, live.offset if live else durable, False)

    def _upload_row_of(self, device_id: str, segment_id: str) -> tuple[int, int] | None:
        """The upload's declared size and durable offset in the index."""
        rows = self._q(
            'SELECT size, "offset" FROM uploads WHERE device_id=? AND segment_id=?',
            (device_id, segment_id),
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    @property
    def _live_uploads(self) -> LiveUploads:
        """The uploads this store object is receiving (dock/upload_live.py)."""
        live = self.__dict__.get("_live")
        if live is None:
            live = self.__dict__["_live"] = LiveUploads()
        return live

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
        self._live_uploads.drop((device_id, segment_id))
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

    def close(self) -> None:
        # A dock that stops in good order keeps what it received: the bytes of uploads it
        # holds in memory only are fsync'd and counted first (a crash loses just those). No
        # device lock is waited for (a request cut off by the stop may hold one): an entry
        # with no chunk being written has all its bytes in the file, and counting them
        # where a commit removed the upload changes nothing.
        for (device_id, segment_id), live in self._live_uploads.unsynced():
            try:
                with open(self._staged(device_id, segment_id), "rb") as f:
                    self._make_durable(device_id, segment_id, f, live)
            except Exception as exc:  # noqa: BLE001 - the durable offset stands: sent again
                log.warning(
                    "upload %s of %s not synced at close: %s", segment_id[:16], device_id, exc
                )
        super().close()

    def _new_staged(self, device_id: str, segment_id: str) -> Path:
        """An empty staged file for the upload (made durable, with its directory entry, at
        the first fsync point: until then the index counts 0 bytes of it, and a chunk at 0
        makes it again if a crash lost it)."""
        path = self._staged(device_id, segment_id)
        path.parent.mkdir(exist_ok=True)
        # a new file, not the old one emptied: a chunk still being written into the old one
        # (its upload started again meanwhile) never reaches the new one
        path.unlink(missing_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
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
            # not waiting for the disk: no receipt names an upload before its completion's
            # durable commit, which makes this one durable with it; a power cut before loses
            # an upload the camera still holds and starts again
            with self._tx(durable=False) as db:
                db.execute(
                    "INSERT INTO uploads(device_id, segment_id, manifest, size, sha256,"
                    ' "offset", created_at_us) VALUES(?,?,?,?,?,0,?)',
                    (device_id, segment_id, manifest, size, sha256, now_us),
                )
            return UploadState(segment_id, size, 0, False)

    def append_chunk(
        self, device_id: str, segment_id: str, offset: int, data: bytes | Path
    ) -> UploadState:
        writer = self.open_chunk(device_id, segment_id, offset)
        ok = False
        try:
            if isinstance(data, Path):
                with open(data, "rb") as src:
                    while block := src.read(1 << 20):
                        writer.write(block)
            else:
                writer.write(data)
            ok = True
        finally:
            state = self.finish_chunk(writer, ok)
        return state

    def open_chunk(
        self, device_id: str, segment_id: str, offset: int, length: int | None = None
    ) -> ChunkWriter:
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
            if length is not None and offset + length > state.size:
                raise StoreError(
                    f"chunk ends at {offset + length}, past the declared size {state.size}",
                    413,
                    Code.OFFSET,
                )
            row = self._upload_row_of(device_id, segment_id)
            assert row is not None  # held under the device's lock since _state
            key = (device_id, segment_id)
            live = self._live_uploads.claim(key, row[0], row[1], offset)
            try:
                f = self._open_staged(device_id, segment_id, offset)
            except BaseException:
                live.busy = False
                raise
            return ChunkWriter(key, live, f, offset)

    def _open_staged(self, device_id: str, segment_id: str, offset: int) -> Any:
        """The staged file open at ``offset``, bytes past it cut off (a chunk a crash or a
        failure left half written: the index never counted them)."""
        path = self._staged(device_id, segment_id)
        if offset == 0:  # nothing to keep: (re)made if a crash lost the empty file
            path.parent.mkdir(exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        else:
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                fd = -1
            if fd < 0 or os.fstat(fd).st_size < offset:  # gone, or cut short under us
                if fd >= 0:
                    os.close(fd)
                self._drop_upload(device_id, segment_id)
                raise StoreError("the dock lost the uploaded bytes; upload again", 409, Code.LOST)
        f = open(fd, "r+b", buffering=0)  # noqa: SIM115 - closed by finish_chunk
        f.truncate(offset)
        f.seek(offset)
        return f

    def finish_chunk(self, writer: ChunkWriter, ok: bool) -> UploadState:
        # counted, or cut off the staged file again; every SYNC_EVERY bytes (each chunk
        # with a shared index, whose offset other docks read) fsync'd and counted
        live, f = writer.live, writer.f
        device_id, segment_id = writer.key
        try:
            with self._device(device_id):
                if not self._live_uploads.is_current(writer.key, live):
                    raise _restarted()  # its file is not the upload's any more: left alone
                if not ok or writer.failed:
                    if writer.written and live.digest is not None:
                        live.digest = None  # fed bytes that do not count: read it at the end
                    f.truncate(writer.start)
                    return UploadState(segment_id, live.size, live.offset, False)
                live.offset = writer.end
                every = 1 if self.db.shared else SYNC_EVERY  # shared: the fleet reads it
                if live.offset - live.durable >= every:
                    self._make_durable(device_id, segment_id, f, live)
                return UploadState(segment_id, live.size, live.offset, False)
        finally:
            try:
                f.close()
            finally:
                live.busy = False

    def _make_durable(self, device_id: str, segment_id: str, f: BinaryIO, live: LiveUpload) -> None:
        """fsync the staged file (and, the first time, its directory entry), then count its
        bytes in the index (device lock held)."""
        f.flush()
        os.fsync(f.fileno())
        if live.durable == 0:
            fsync_dir(self._staged(device_id, segment_id).parent)
        with self._tx() as db:
            cur = db.execute(
                'UPDATE uploads SET "offset"=? WHERE device_id=? AND segment_id=?'
                ' AND "offset"=?',  # the durable offset it stood on, or it was started again
                (live.offset, device_id, segment_id, live.durable),
            )
            if cur.rowcount != 1:
                raise _restarted()
        live.durable = live.offset

    def received_digest(self, device_id: str, segment_id: str) -> StoredDigest | None:
        # None: resumed after a crash, or a chunk failed midway: the file is read
        row = self._upload_row_of(device_id, segment_id)
        if row is None:
            return None
        live = self._live_uploads.get((device_id, segment_id), row[1])
        if live is None or live.busy or live.digest is None or live.digest.size != row[0]:
            return None
        try:  # and the file holds as many bytes as were hashed
            if self._staged(device_id, segment_id).stat().st_size != row[0]:
                return None
        except FileNotFoundError:
            return None
        return live.digest

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
                live = self._live_uploads.get((dev, seg), offset)  # bytes held past the index's
                offset = live.offset if live is not None else offset
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
        self._live_uploads.drop((device_id, segment_id))
        staged = self._staged(device_id, segment_id)
        staged.unlink(missing_ok=True)
        for spool in staged.parent.glob(f"{segment_id}.*.in"):  # an older dock's spools
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
        self._live_uploads.drop((device_id, segment_id))
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
                self._durable_before_verifying(device_id, segment_id, path)
                f = open(path, "rb")  # noqa: SIM115 - closed below
            elif self.objects.exists(key):
                f = self.objects.open(key)
            elif state is not None and state.complete:  # another dock committed it
                f = io.BytesIO(b"")
            else:
                self._drop_upload(device_id, segment_id)
                raise StoreError("the dock lost the uploaded bytes; upload again", 409, Code.LOST)
            try:
                with f:
                    yield f
            finally:  # committed or refused: forgotten (a failed commit keeps its offset)
                if self._upload_row_of(device_id, segment_id) is None:
                    self._live_uploads.drop((device_id, segment_id))

    def _durable_before_verifying(self, device_id: str, segment_id: str, path: Path) -> None:
        """The staged bytes this process wrote but did not yet fsync, fsync'd (device lock
        held): nothing is verified, published or receipted before. Their count in the index
        is left as it is (the commit removes the upload's row; a crash before it leaves an
        offset lower than the bytes on disk, never higher: the camera sends the rest again,
        and the blob a crash published before its commit is kept, never replaced)."""
        row = self._upload_row_of(device_id, segment_id)
        if row is None:
            return
        live = self._live_uploads.get((device_id, segment_id), row[1])
        if live is None or live.offset == live.durable:
            return
        if live.busy:
            raise StoreError("a chunk of this upload is being received", 409, Code.INCOMPLETE)
        with open(path, "rb") as f:
            os.fsync(f.fileno())

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
        self._drop_staged(device_id, segment_id)
        return entry


def _restarted() -> StoreError:
    return StoreError(
        "the upload was started again or ended meanwhile; ask the offset again", 409, Code.OFFSET
    )

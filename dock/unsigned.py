"""A segment's set-aside unsigned bytes, shipped to the dock as exactly what they are.

After a crash, recovery on the camera keeps the chunks the trail signed and sets the bytes
after them aside in ``<segment>.unsigned`` (crypto/evidence.py); the segment's manifest names
that file with its size and SHA-256 (``unsigned_tail``). Those bytes carry no signature of
their own, but they are footage the agency may need, so the camera ships them too, after the
segment, as an upload of their own kind:

- ``GET   /v1/segments/{segment_id}/unsigned``  where the upload stands (offset, receipt)
- ``PATCH /v1/segments/{segment_id}/unsigned``  append a chunk (``Upload-Offset``,
  ``Upload-Checksum``), tus-style; the last byte completes it

(the routes are dock/routes/unsigned.py; this module is the dock's side of them)

``segment_id`` is the segment the dock already holds. The dock takes exactly the size the
signed manifest names and, once complete, checks the SHA-256 it names; it keeps the bytes as
the object ``<device>/<segment>.unsigned`` beside the segment (never as a segment's stored
blob, never as signed evidence), logs ``unsigned_received`` in the custody log and answers
with a receipt of its own type (``bwv-dock-unsigned-receipt-v1``), after which the camera
may delete its copy.
"""

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crypto.durable import fsync_dir
from dock.protocol import Code
from dock.receipts import SignedUnsignedReceipt, UnsignedReceipt, UnsignedState
from dock.store import Store, StoreError, manifest_key, storage_failure, unsigned_key
from dock.store_sqlite import DirectoryStore
from dock.verify import ManifestError, SegmentVerifier

READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class Expected:
    """What the segment's signed manifest says about its unsigned bytes."""

    file: str
    size: int
    sha256: str
    seq: int
    recording_id: str
    segment_index: int | None


def expected_unsigned(
    store: Store, verifier: SegmentVerifier, device_id: str, segment_id: str
) -> Expected:
    if store.held_segment(device_id, segment_id=segment_id) is None:
        raise StoreError(
            "the dock holds no segment with this id: ship the segment first", 404, Code.NOT_FOUND
        )
    with store.open_object(manifest_key(device_id, segment_id)) as f:
        manifest = f.read()
    try:
        fields = verifier.parse(manifest)
    except ManifestError as exc:
        raise StoreError(f"the held manifest cannot be read: {exc}", 422, Code.INVALID) from None
    tail = fields.raw.get("unsigned_tail") if fields.record_type == "manifest" else None
    if not isinstance(tail, dict):
        raise StoreError("this segment's manifest names no unsigned bytes", 404, Code.NOT_FOUND)
    return Expected(
        str(tail["file"]),
        int(tail["size"]),
        str(tail["sha256"]),
        fields.seq,
        str(fields.recording_id),  # a manifest's: always set
        fields.segment_index,
    )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            h.update(block)
    return h.hexdigest()


class UnsignedTails:
    """The dock's side: staged in ``staging/<device>/<segment>.unsigned.part``, then an
    object and an index row (``unsigned_tails``) with its custody-log entry and receipt."""

    def __init__(self, store: DirectoryStore) -> None:
        self.store = store

    def _staged(self, device_id: str, segment_id: str) -> Path:
        return self.store._staged(device_id, segment_id).with_name(f"{segment_id}.unsigned.part")

    def state(self, device_id: str, segment_id: str, exp: Expected) -> UnsignedState:
        rows = self.store._q(
            "SELECT receipt FROM unsigned_tails WHERE device_id=? AND segment_id=?",
            (device_id, segment_id),
        )
        if rows:
            receipt = SignedUnsignedReceipt.from_json(json.loads(rows[0][0]))
            return UnsignedState(segment_id, exp.size, exp.size, True, receipt)
        try:
            offset = self._staged(device_id, segment_id).stat().st_size
        except FileNotFoundError:
            offset = 0
        return UnsignedState(segment_id, exp.size, min(offset, exp.size), False)

    def append(
        self,
        device_id: str,
        segment_id: str,
        exp: Expected,
        offset: int,
        data: bytes,
        now_us: int,
        sign: Callable[[UnsignedReceipt], SignedUnsignedReceipt],
    ) -> UnsignedState:
        with self.store._device(device_id):
            state = self.state(device_id, segment_id, exp)
            if state.complete:
                return state
            if offset != state.offset:
                raise StoreError(
                    f"offset mismatch: the dock holds {state.offset} bytes", 409, Code.OFFSET
                )
            if offset + len(data) > exp.size:
                raise StoreError(
                    f"chunk ends at {offset + len(data)}, past the size the manifest names "
                    f"({exp.size})",
                    413,
                    Code.OFFSET,
                )
            path = self._staged(device_id, segment_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            new = not path.exists()
            with open(path, "wb" if new else "r+b") as f:
                f.truncate(offset)  # a torn append the dock never acknowledged
                f.seek(offset)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if new:
                fsync_dir(path.parent)
            if offset + len(data) < exp.size:
                return UnsignedState(segment_id, exp.size, offset + len(data), False)
            return self._complete(device_id, segment_id, exp, path, now_us, sign)

    def _complete(
        self,
        device_id: str,
        segment_id: str,
        exp: Expected,
        path: Path,
        now_us: int,
        sign: Callable[[UnsignedReceipt], SignedUnsignedReceipt],
    ) -> UnsignedState:
        if _sha256_file(path) != exp.sha256:
            path.unlink(missing_ok=True)
            raise StoreError(
                "the bytes received do not hash to what the manifest recorded: send them again",
                409,
                Code.LOST,
            )
        key = unsigned_key(device_id, segment_id)
        try:
            if self.store.objects.exists(key):  # an earlier attempt published them
                path.unlink()
            else:
                self.store.objects.put_file(key, path, sha256=exp.sha256)
        except FileExistsError:  # another dock published them meanwhile
            path.unlink(missing_ok=True)
        except Exception as exc:  # the object store's own errors: nothing is receipted
            raise storage_failure(exc, self.store.root) from exc
        store = self.store
        with store._tx() as db:
            row = db.execute(  # another dock finished it meanwhile (a shared index)
                "SELECT receipt FROM unsigned_tails WHERE device_id=? AND segment_id=?",
                (device_id, segment_id),
            ).fetchone()
            if row is not None:
                done = SignedUnsignedReceipt.from_json(json.loads(row[0]))
                return UnsignedState(segment_id, exp.size, exp.size, True, done)
            entry = store._append_log(
                db,
                f"device:{device_id}",
                "unsigned_received",
                now_us,
                device_id=device_id,
                segment_id=segment_id,
                sha256=exp.sha256,
                detail={
                    "file": exp.file,
                    "size": exp.size,
                    "seq": exp.seq,
                    "recording_id": exp.recording_id,
                    "segment_index": exp.segment_index,
                    "signed": False,
                },
            )
            receipt = sign(
                UnsignedReceipt(
                    device_id=device_id,
                    segment_id=segment_id,
                    file=exp.file,
                    size=exp.size,
                    sha256=exp.sha256,
                    received_at_us=now_us,
                    log_index=entry.index,
                    log_entry_hash=entry.entry_hash,
                    dock_key_id=store.dock_key_id,
                )
            )
            db.execute(
                "INSERT INTO unsigned_tails(device_id, segment_id, file, size, sha256,"
                " received_at_us, receipt) VALUES(?,?,?,?,?,?,?)",
                (
                    device_id,
                    segment_id,
                    exp.file,
                    exp.size,
                    exp.sha256,
                    now_us,
                    json.dumps(receipt.to_json()),
                ),
            )
        return UnsignedState(segment_id, exp.size, exp.size, True, receipt)

"""What the shipper sends of one record: what it declares (``declared``: the manifest's
stored digest, the file's size), a check of a file the dock holds already
(``check_held_file``), and its chunks.

The next chunk is read and hashed (its ``Upload-Checksum``) in a background thread
while the dock receives the current one or completes the segment before it: the camera's
read and hash of a chunk leave the critical path. One chunk at most is read ahead, so the
shipper holds two chunks at most (bounded memory).

A chunk read ahead is used only for the same file, offset and length; the bytes sent are
the bytes hashed (the dock checks both against the signed digest, then the manifest), so a
file that changed meanwhile is refused by the dock or caught by the check before a delete,
as it is without read-ahead. The first chunk of a file carries the file's stamp, taken before
it was read (dock/ship_stamp.py): that check's evidence that the file did not change since."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from dock.client import DockClient, DockRefused, DockUnavailable
from dock.outbox import OutboxSegment, _digest_file
from dock.protocol import Code
from dock.receipts import UploadState
from dock.ship_stamp import FileStamp, stamp_of
from dock.verify import ManifestError, SegmentVerifier, default_verifier


class ChangedOnCamera(DockRefused):
    """Not the dock's word, the camera's own finding: the file is not the one its manifest
    names. Kept and reported like a segment the dock refuses."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, detail, Code.MISMATCH)


class ReceiptInvalid(DockUnavailable):
    """An answer that is not a valid receipt for this segment's exact bytes."""


def declared(
    manifest: bytes, blob: Path | None, verifier: SegmentVerifier | None = None
) -> tuple[str, int]:
    """The stored digest the record signs (the dock checks the bytes against it, the
    receipt must name it, and the file is checked again before its delete: hashing the
    whole file before sending would add nothing) and the file's size (0 without a file).
    ``verifier``: the outbox's, which has read the record already."""
    try:
        digest = (verifier or default_verifier()).parse(manifest).stored_digest
    except ManifestError as exc:
        raise DockUnavailable(f"unreadable record: {exc}") from None
    if blob is None:
        return digest, 0
    return digest, blob.stat().st_size


def check_held_file(seg: OutboxSegment, digest: str, size: int) -> None:
    """A record the dock holds already: the file here must be the one its manifest names
    (one that changed since its upload stays, refused, and is reported)."""
    if _digest_file(seg.blob_path) != (digest, size):
        raise ChangedOnCamera(
            f"{seg.name}: the file is not the stored bytes its manifest names "
            "(changed on the camera since its upload)"
        )


@dataclass(frozen=True)
class Chunk:
    data: bytes
    sha256: bytes
    stamp: FileStamp | None = None  # the file's, taken before its first chunk was read


def read_chunk(path: Path, offset: int, n: int) -> Chunk:
    """``n`` bytes of ``path`` at ``offset`` (fewer if it is shorter) and their SHA-256; the
    first chunk with the file's stamp, taken before a byte of it is read (dock/ship_stamp.py)."""
    with open(path, "rb") as f:
        stamp = stamp_of(f.fileno()) if offset == 0 else None  # the file read, not a name
        f.seek(offset)
        data = f.read(n)
    return Chunk(data, hashlib.sha256(data).digest(), stamp)


Key = tuple[Path, int, int]


class ReadAhead:
    """One chunk read ahead in its own thread (``start``), taken when it is the one needed
    (``take``); otherwise the chunk is read there and then."""

    def __init__(self, chunk_bytes: int) -> None:
        self.chunk_bytes = chunk_bytes  # the shipper's, for a next record's first chunk
        self._key: Key | None = None
        self._thread: threading.Thread | None = None
        self._result: Chunk | OSError | None = None

    def start(self, path: Path, offset: int, n: int) -> None:
        self.discard()
        self._key = (path, offset, n)
        self._thread = threading.Thread(
            target=self._read, args=self._key, name="bwv-readahead", daemon=True
        )
        self._thread.start()

    def start_next(
        self, blob: Path, at: int, size: int, chunk_bytes: int, after: OutboxSegment | None
    ) -> None:
        """Read the chunk after the one being sent: of this file (from ``at``, of ``size``
        bytes), or else the first of the next record's (``after``)."""
        if at < size:
            self.start(blob, at, min(chunk_bytes, size - at))
            return
        if after is None or after.blob_path is None:
            return
        try:
            n = min(self.chunk_bytes, after.blob_path.stat().st_size)
        except OSError:
            return
        if n:
            self.start(after.blob_path, 0, n)

    def _read(self, path: Path, offset: int, n: int) -> None:
        try:
            self._result = read_chunk(path, offset, n)
        except OSError as exc:  # raised again (by a read of its own) when it is needed
            self._result = exc

    def take(self, path: Path, offset: int, n: int) -> Chunk:
        key, result = self._key, self._wait()
        if key == (path, offset, n) and isinstance(result, Chunk):
            return result
        return read_chunk(path, offset, n)

    def _wait(self) -> Chunk | OSError | None:
        if self._thread is not None:
            self._thread.join()
        result = self._result
        self._key, self._thread, self._result = None, None, None
        return result

    def discard(self) -> None:
        self._wait()

    def send(
        self,
        client: DockClient,
        seg: OutboxSegment,
        sid: str,
        state: UploadState,
        chunk_bytes: int,
        after: OutboxSegment | None,
    ) -> tuple[UploadState, int, FileStamp | None]:
        """Send the record's bytes from the dock's offset to the end, a chunk at a time
        (each read and hashed while the one before was sent); the last answer, the bytes
        sent, and the file's stamp if they were all of its bytes, from offset 0, each chunk
        taken by the dock right after the one before (else None)."""
        sent = 0
        stamp = None
        while state.offset < state.size:
            assert seg.blob_path is not None  # a record with bytes has its file
            n = min(chunk_bytes, state.size - state.offset)
            chunk = self.take(seg.blob_path, state.offset, n)
            if len(chunk.data) != n:
                raise OSError(f"{seg.name}: the file was cut short while shipped")
            if state.offset == 0:
                stamp = chunk.stamp
            self.start_next(seg.blob_path, state.offset + n, state.size, chunk_bytes, after)
            offset = state.offset
            state = client.append(sid, offset, chunk.data, chunk.sha256)
            if state.offset != offset + n and not state.complete:
                stamp = None  # the dock holds other bytes than this run's: hash it again
            sent += n
        return state, sent, stamp

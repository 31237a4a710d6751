"""A whole record in one request (``PUT``, dock/routes/whole.py): which records go so
(``fits_whole``: a stored file of one chunk at most, a record that fits in a header) and the
request (``put_whole``). The file is read as it is sent (the kernel reading ahead of it), its
stamp taken before its first byte (dock/ship_stamp.py); the request is signed by the stored
digest its record names, so the camera hashes nothing.

The dock's answer: the receipt (it took the body); or the upload's state, held already in part
or whole (the shipper goes on from there in chunks, dock/ship_chunks.py); or a refusal that
says to go on in chunks: a dock without the route (404, 405; an older one refuses its
Content-Digest, 401 ``unsigned``) or with smaller bodies (413) is not asked again
(``chunks_only``), a body that is not the declared digest is sent again in
chunks, each with its own checksum, whose verification then says what is wrong.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from dock.client import DockClient, DockRefused
from dock.outbox import OutboxSegment
from dock.protocol import Code
from dock.receipts import SignedReceipt, UploadState
from dock.ship_chunks import ReceiptInvalid
from dock.ship_stamp import FileStamp, stamp_of

WHOLE_MAX_RECORD = 6 << 10  # a record sent in a header (base64: 8 KiB of the dock's 16)


def fits_whole(seg: OutboxSegment | None, chunk_bytes: int) -> bool:
    """A record with a stored file of one chunk at most and a record that fits a header."""
    if seg is None or seg.blob_path is None:
        return False
    try:
        size = seg.blob_path.stat().st_size
        record = seg.manifest_path.stat().st_size
    except OSError:
        return False
    return 0 < size <= chunk_bytes and record <= WHOLE_MAX_RECORD


@dataclass(frozen=True)
class WholeAnswer:
    state: UploadState | None = None  # None: go on as if the dock had not been asked
    receipt: SignedReceipt | None = None  # the dock took the body
    stamp: FileStamp | None = None  # the file's, taken before its first byte was read
    chunks_only: bool = False  # the dock takes no whole segment: do not ask it again


def put_whole(
    client: DockClient,
    seg: OutboxSegment,
    sid: str,
    manifest: bytes,
    digest: str,
    size: int,
    next_file: Path | None = None,
) -> WholeAnswer:
    """PUT the record's whole file and say what the dock answered. The file is read ahead
    by the kernel as it is sent, and ``next_file`` (the next record's) once its last byte has
    gone, while the dock completes this one (``prefetch``)."""
    assert seg.blob_path is not None
    try:
        with open(seg.blob_path, "rb") as f:
            stamp = stamp_of(f.fileno())
            _will_need(f.fileno())
            state, took = client.put_segment(
                sid, manifest, digest, size, f, on_sent=lambda: prefetch(next_file)
            )
    except DockRefused as exc:
        if exc.status in (404, 405) or exc.code in (Code.BODY_TOO_LARGE, Code.UNSIGNED):
            return WholeAnswer(chunks_only=True)
        if exc.code in Code.REREAD:
            return WholeAnswer()
        raise
    if not took:  # held already, in part or whole
        return WholeAnswer(state)
    if not state.complete or state.receipt is None:
        raise ReceiptInvalid(f"{seg.name}: whole segment taken but no receipt given")
    return WholeAnswer(state, state.receipt, stamp)


def prefetch(path: Path | None) -> None:
    """Have the kernel read ``path`` into the page cache in the background, so that sending
    it later does not wait on the camera's card: best effort, nothing is read here."""
    if path is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # gone or unreadable: its own step says what is wrong
    try:
        _will_need(fd)
    finally:
        os.close(fd)


def _will_need(fd: int) -> None:
    """``posix_fadvise(POSIX_FADV_WILLNEED)`` over the whole file, where there is one."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    with contextlib.suppress(OSError):
        advise(fd, 0, 0, os.POSIX_FADV_WILLNEED)

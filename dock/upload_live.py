"""Uploads this dock process is receiving: bytes written past the durable offset, and the
stored digest taken as they came.

Durable offsets. The index's ``uploads.offset`` counts only bytes that are on disk for good:
it is written only right after an fsync of the staged file (``sync_every`` bytes at most
apart, at the upload's completion before anything is verified or receipted, and after
every chunk with a shared index, whose offset other docks read). Between those points the
offset the dock answers with is the one held here, in memory (``LiveUpload.offset``): the
bytes are written, in the page cache. A dock that stops in good order (``close``) fsyncs and
counts them first. One that crashes loses this table: it answers with the index's durable
offset again and cuts its staged file back to it before the next chunk, so the offset it
reports never counts a byte that is not on disk, and the camera, told a lower offset than
it reached, sends the rest again (nothing lost, nothing counted twice). A receipt is signed
only after the fsync at completion.

Order. One chunk of an upload is received at a time (``busy``): a second PATCH for it while
one is being written is refused (409, the camera asks the offset again), so writes never
interleave. A chunk whose body fails (cut, checksum mismatch, past the declared size) is cut
off the staged file again; the offset stays where it was.

The stored digest (``crypto.digests.StoredDigest``) is fed every byte in order from byte 0
as it is written; when it covers the whole upload the verification takes it instead of
reading the file again. An upload resumed from a durable offset by a fresh process, or
whose chunk failed after some bytes were fed, has none: the file is read at completion.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from crypto.digests import StoredDigest
from dock.protocol import Code
from dock.store import StoreError

SYNC_EVERY = 64 << 20  # unsynced bytes at most, per upload, before an fsync and its count

WRITEBACK_STEP = 1 << 20  # start writing back every this many bytes received
Key = tuple[str, str]  # (device id, segment id)


def _writeback_starter() -> Callable[[int, int, int], None] | None:
    """Linux's ``sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE)``: start writing a
    range back to disk without waiting for it, so that the fsync before the receipt has
    little left to do (durability is still the fsync's alone). None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def start(fd: int, offset: int, n: int) -> None:
        fn(fd, offset, n, 2)  # SYNC_FILE_RANGE_WRITE; a failure only means no head start

    return start


_start_writeback = _writeback_starter()


@dataclass
class LiveUpload:
    size: int  # declared
    durable: int  # bytes fsync'd and counted in the index (as this process last wrote it)
    offset: int  # bytes written to the staged file (>= durable)
    digest: StoredDigest | None  # fed every byte from 0 in order (digest.size == offset)
    busy: bool = False  # a chunk is being written


class LiveUploads:
    """The table of live uploads (one per store object: a restarted store starts empty)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[Key, LiveUpload] = {}

    def get(self, key: Key, durable: int) -> LiveUpload | None:
        """The upload's live entry if it still stands on the index's durable offset (another
        dock sharing the index may have moved it: the entry is then forgotten)."""
        with self._lock:
            live = self._by.get(key)
            if live is None or live.durable == durable:
                return live
            if not live.busy:
                del self._by[key]
            return None

    def claim(self, key: Key, size: int, durable: int, offset: int) -> LiveUpload:
        """The upload's entry, marked busy, for a chunk at ``offset`` (StoreError 409 if
        another chunk of it is being written, or the offset is not the one held)."""
        with self._lock:
            live = self._by.get(key)
            if live is not None and live.busy:
                raise StoreError(
                    "another chunk of this upload is being received; ask the offset again",
                    409,
                    Code.OFFSET,
                )
            if live is None or live.durable != durable:
                digest = StoredDigest() if durable == 0 else None
                live = self._by[key] = LiveUpload(size, durable, durable, digest)
            if offset != live.offset:
                raise StoreError(
                    f"offset mismatch: the dock holds {live.offset} bytes", 409, Code.OFFSET
                )
            if offset == 0 and live.digest is None:  # nothing held: hashed from the start
                live.digest = StoredDigest()
            live.busy = True
            return live

    def unsynced(self) -> list[tuple[Key, LiveUpload]]:
        """The uploads holding bytes not yet fsync'd, no chunk of theirs being written."""
        with self._lock:
            return [(k, v) for k, v in self._by.items() if v.offset > v.durable and not v.busy]

    def drop(self, key: Key) -> None:
        """Forget the upload (started again, expired, committed): a chunk of it still being
        written is then no longer current and counts for nothing (``is_current``)."""
        with self._lock:
            self._by.pop(key, None)

    def is_current(self, key: Key, live: LiveUpload) -> bool:
        with self._lock:
            return self._by.get(key) is live


class ChunkWriter:
    """One chunk being written into the staged file at its offset, hashed as it comes."""

    def __init__(self, key: Key, live: LiveUpload, f: BinaryIO, start: int) -> None:
        self.key = key
        self.live = live
        self.f = f
        self.start = start
        self.written = 0
        self.failed = False
        self._kicked = start  # writeback asked for up to here

    def write(self, block: bytes) -> None:
        end = self.start + self.written + len(block)
        if end > self.live.size:
            self.failed = True
            raise StoreError(
                f"chunk ends past the declared size {self.live.size}", 413, Code.OFFSET
            )
        view = memoryview(block)
        while view:  # an unbuffered file: a write error is raised here, not at close
            n = self.f.write(view)
            if not n:
                raise OSError(f"short write to the staged file ({self.key[1][:16]})")
            view = view[n:]
        if self.live.digest is not None:
            self.live.digest.update(block)
        self.written += len(block)
        if _start_writeback is not None and end - self._kicked >= WRITEBACK_STEP:
            _start_writeback(self.f.fileno(), self._kicked, end - self._kicked)
            self._kicked = end

    @property
    def end(self) -> int:
        return self.start + self.written

"""The shipper's next chunk, read and hashed (its ``Upload-Checksum``) in a background thread
while the dock receives the current one or completes the segment before it: the camera's
read and hash of a chunk leave the critical path. One chunk at most is read ahead, so the
shipper holds two chunks at most (bounded memory).

A chunk read ahead is used only for the same file, offset and length; the bytes sent are
the bytes hashed (the dock checks both against the signed digest, then the manifest), so a
file that changed meanwhile is refused by the dock or caught by the check before a delete,
as it is without read-ahead."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Chunk:
    data: bytes
    sha256: bytes


def read_chunk(path: Path, offset: int, n: int) -> Chunk:
    """``n`` bytes of ``path`` at ``offset`` (fewer if it is shorter) and their SHA-256."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(n)
    return Chunk(data, hashlib.sha256(data).digest())


Key = tuple[Path, int, int]


class ReadAhead:
    """One chunk read ahead in its own thread (``start``), taken when it is the one needed
    (``take``); otherwise the chunk is read there and then."""

    def __init__(self) -> None:
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

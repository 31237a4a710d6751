"""A durable append-only Merkle tree on disk (RFC 9162 hashing), for one writer.

Files in the store's folder:

- ``leaves``: one 48-byte entry per leaf: its leaf hash (32 bytes), then the offset and the
  length of its data in ``data`` (u64 big-endian each);
- ``data``: the leaves' data, one after another.

``append`` (and ``extend``) write the data, fsync it, then the entries, fsync them, and only
then return the new index: a leaf whose index was returned survives a crash. A crash in
between leaves a torn tail (a partial entry, or data no entry points to): opening the
store cuts it back to the last whole leaf (read-only: ignores it).

Proofs come from the stored leaf hashes and the hashes of the complete (power-of-two,
aligned) subtrees, kept in memory per level and extended as leaves are appended: a root or
a proof costs O(log n) hashes, never a recomputation of the tree.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

from base.fsync import fsync_dir
from tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_proof_by,
    inclusion_proof_by,
    leaf_hash,
    node_hash,
    split_point,
)

ENTRY = struct.Struct(">32sQQ")  # leaf hash, data offset, data length
LEAVES, DATA = "leaves", "data"


class StoreError(Exception):
    """A log store that cannot be opened or used (names the path and the problem)."""


def _append(fd: int, start: int, data: bytes) -> None:
    """Write ``data`` at ``start`` (the end of the file) and fsync; on failure cut back."""
    try:
        view = memoryview(data)
        pos = start
        while view:
            n = os.pwrite(fd, view, pos)
            view, pos = view[n:], pos + n
        os.fsync(fd)
    except OSError:
        try:
            os.ftruncate(fd, start)
            os.fsync(fd)
        except OSError:
            pass
        raise


class LogStore:
    """An append-only Merkle tree in ``directory`` (made if missing, unless read-only)."""

    def __init__(self, directory: Path | str, readonly: bool = False) -> None:
        self.directory = Path(directory)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._levels: list[bytearray] = [bytearray()]
        self._entries = bytearray()
        self._fds: tuple[int, int] | None = None
        try:
            self._open()
        except OSError as exc:
            raise StoreError(f"{self.directory}: cannot open the log ({exc.strerror})") from None

    # -- opening -------------------------------------------------------------------------
    def _open(self) -> None:
        d = self.directory
        if self.readonly:
            entries = (d / LEAVES).read_bytes() if (d / LEAVES).exists() else b""
            data_len = (d / DATA).stat().st_size if (d / DATA).exists() else 0
            self._load(entries, data_len, cut=False)
            return
        created = not d.exists()
        d.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT
        leaves_fd = os.open(d / LEAVES, flags, 0o644)
        data_fd = os.open(d / DATA, flags, 0o644)
        self._fds = (leaves_fd, data_fd)
        if created or os.fstat(leaves_fd).st_size == 0:
            fsync_dir(d)
            if created:
                fsync_dir(d.parent)
        entries = os.pread(leaves_fd, os.fstat(leaves_fd).st_size, 0)
        self._load(entries, os.fstat(data_fd).st_size, cut=True)

    def _load(self, entries: bytes, data_len: int, cut: bool) -> None:
        whole = len(entries) - len(entries) % ENTRY.size
        entries = entries[:whole]
        end = 0
        if entries:
            _, off, length = ENTRY.unpack_from(entries, whole - ENTRY.size)
            end = off + length
        if data_len < end:
            raise StoreError(
                f"{self.directory}: the log's data file is shorter than its leaves say "
                f"({data_len} < {end} bytes): the store is damaged"
            )
        if cut and self._fds is not None:
            leaves_fd, data_fd = self._fds
            if os.fstat(leaves_fd).st_size != whole:
                os.ftruncate(leaves_fd, whole)
                os.fsync(leaves_fd)
            if data_len != end:
                os.ftruncate(data_fd, end)
                os.fsync(data_fd)
        self._entries = bytearray(entries)
        self._levels = [bytearray()]
        for i in range(whole // ENTRY.size):
            self._add_hash(entries[i * ENTRY.size : i * ENTRY.size + HASH_SIZE])
        if entries:
            last = self.size - 1
            if leaf_hash(self.leaf_data(last)) != self.leaf_hash(last):
                raise StoreError(f"{self.directory}: the last leaf's data does not match its hash")

    def close(self) -> None:
        with self._lock:
            if self._fds is not None:
                for fd in self._fds:
                    os.close(fd)
                self._fds = None

    def __enter__(self) -> LogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the tree ------------------------------------------------------------------------
    def _add_hash(self, h: bytes) -> None:
        levels = self._levels
        levels[0] += h
        j, level = len(levels[0]) // HASH_SIZE - 1, 0
        while j & 1:  # a right child completes a subtree one level up
            row = levels[level]
            left = bytes(row[(j - 1) * HASH_SIZE : j * HASH_SIZE])
            right = bytes(row[j * HASH_SIZE : (j + 1) * HASH_SIZE])
            if len(levels) == level + 1:
                levels.append(bytearray())
            levels[level + 1] += node_hash(left, right)
            j, level = j >> 1, level + 1

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def leaf_hash(self, index: int) -> bytes:
        with self._lock:
            self._check_index(index, self.size)
            return bytes(self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def leaf_data(self, index: int) -> bytes:
        with self._lock:
            self._check_index(index, self.size)
            _, off, length = ENTRY.unpack_from(self._entries, index * ENTRY.size)
            if self._fds is not None:
                return os.pread(self._fds[1], length, off)
            with open(self.directory / DATA, "rb") as f:
                f.seek(off)
                return f.read(length)

    def subtree_hash(self, lo: int, hi: int) -> bytes:
        """The Merkle Tree Hash of the leaves ``[lo, hi)``."""
        n = hi - lo
        if not 0 <= lo < hi <= self.size:
            raise ValueError(f"no subtree [{lo}, {hi}) in a tree of {self.size}")
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            j = lo >> level
            return bytes(self._levels[level][j * HASH_SIZE : (j + 1) * HASH_SIZE])
        k = split_point(n)
        return node_hash(self.subtree_hash(lo, lo + k), self.subtree_hash(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        with self._lock:
            size = self.size if size is None else size
            self._check_size(size)
            return EMPTY_ROOT if size == 0 else self.subtree_hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self._lock:
            self._check_size(size)
            return inclusion_proof_by(index, size, self.subtree_hash)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        with self._lock:
            self._check_size(new)
            return consistency_proof_by(old, new, self.subtree_hash)

    def _check_size(self, size: int) -> None:
        if not (isinstance(size, int) and 0 <= size <= self.size):
            raise ValueError(f"tree size {size!r} is not in [0, {self.size}]")

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not (isinstance(index, int) and 0 <= index < size):
            raise IndexError(f"leaf index {index!r} is not in [0, {size})")

    # -- appending -----------------------------------------------------------------------
    def append(self, leaf_data: bytes) -> int:
        """Append one leaf; its index, once it is on disk."""
        return self.extend([leaf_data])[0]

    def extend(self, leaves: Iterable[bytes]) -> list[int]:
        """Append leaves in order with one fsync of each file; their indexes, once on disk."""
        with self._lock:
            if self._fds is None:
                raise StoreError(f"{self.directory}: the log is read-only or closed")
            leaves_fd, data_fd = self._fds
            datas = [bytes(d) for d in leaves]
            if not datas:
                return []
            data_start = os.fstat(data_fd).st_size
            entries_start = len(self._entries)
            entries, hashes, off = bytearray(), [], data_start
            for d in datas:
                h = leaf_hash(d)
                hashes.append(h)
                entries += ENTRY.pack(h, off, len(d))
                off += len(d)
            _append(data_fd, data_start, b"".join(datas))
            try:
                _append(leaves_fd, entries_start, bytes(entries))
            except OSError:
                os.ftruncate(data_fd, data_start)  # no data without its entry
                raise
            first = self.size
            self._entries += entries
            for h in hashes:
                self._add_hash(h)
            return list(range(first, first + len(datas)))

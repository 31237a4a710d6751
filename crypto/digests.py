"""The stored digest and the plain digest (docs/evidence-format.md, "Stored digest and plain
digest"): a stored segment and its plaintext named by digests made from the chunk hashes the
trail signs one by one, so that no byte is hashed twice for one purpose.

- ``stored_digest_from(header_sha256, cipher_sha256s)`` / ``plain_digest_from(plain_sha256s)``:
  from the hashes (the camera, and a check of a manifest against itself);
- ``StoredDigest``: from the file's bytes, fed in pieces of any size (the dock as an upload
  arrives, the verifiers); a file that does not split exactly into a header and whole chunks
  has no stored digest (``hexdigest()`` is None, ``problem`` says why);
- ``digest_of(data)`` / ``stored_digest_of(data)``: the same over bytes in memory or a file.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

STORED_DOMAIN = b"bwv:stored-digest:v3\x00"
PLAIN_DOMAIN = b"bwv:plain-digest:v3\x00"
MAGIC = b"BWVSEG"
_FIXED = len(MAGIC) + 6  # magic, version u16, context length u32
_AFTER_CONTEXT = 80 + 24  # sealed segment key, secretstream header
MAX_CONTEXT = 4096
MIN_CHUNK = 17  # secretstream's ABYTES: a shorter chunk is impossible
_LEN = struct.Struct(">I")
READ = 1 << 20


def _raw(h: str | bytes) -> bytes:
    return bytes.fromhex(h) if isinstance(h, str) else bytes(h)


def stored_digest_from(header_sha256: str | bytes, cipher_sha256s: Iterable[str | bytes]) -> str:
    """The stored digest from the header's SHA-256 and each chunk ciphertext's, in order."""
    out = hashlib.sha256(STORED_DOMAIN + _raw(header_sha256))
    for h in cipher_sha256s:
        out.update(_raw(h))
    return out.hexdigest()


def plain_digest_from(plain_sha256s: Iterable[str | bytes]) -> str:
    """The plain digest from the SHA-256 of each plaintext blob (the non-final chunks)."""
    out = hashlib.sha256(PLAIN_DOMAIN)
    for h in plain_sha256s:
        out.update(_raw(h))
    return out.hexdigest()


class StoredDigest:
    """The stored digest of a file fed in pieces (``update``), as it is read or received.

    One SHA-256 pass over the bytes: the header, then each chunk's ciphertext, each hashed on
    its own and folded into the digest as its chunk ends."""

    def __init__(self) -> None:
        self.size = 0
        self.chunks = 0
        self.problem: str | None = None
        self._pending = bytearray()  # bytes of a header or a length prefix not yet whole
        self._header_len: int | None = None
        self._part = hashlib.sha256()  # the header's, then the current chunk's hash
        self._left = 0  # ciphertext bytes still to come in the current chunk
        self._in_chunk = False
        self._out: hashlib._Hash | None = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.size += len(view)
        while view and self.problem is None:
            if self._out is None:
                view = self._take_header(view)
            elif self._in_chunk:
                n = min(self._left, len(view))
                self._part.update(view[:n])
                self._left -= n
                view = view[n:]
                if self._left == 0:
                    self._out.update(self._part.digest())
                    self.chunks += 1
                    self._in_chunk = False
            else:
                view = self._take_length(view)

    def _take_header(self, view: memoryview) -> memoryview:
        need = (self._header_len or _FIXED) - len(self._pending)
        self._pending += view[:need]
        view = view[need:]
        if self._header_len is None and len(self._pending) >= _FIXED:
            if bytes(self._pending[: len(MAGIC)]) != MAGIC:
                self.problem = "not a bwv stored segment (bad magic)"
                return view
            (n,) = _LEN.unpack_from(self._pending, len(MAGIC) + 2)
            if n > MAX_CONTEXT:
                self.problem = "context length out of range"
                return view
            self._header_len = _FIXED + n + _AFTER_CONTEXT
            return view
        if self._header_len is not None and len(self._pending) == self._header_len:
            self._out = hashlib.sha256(STORED_DOMAIN + hashlib.sha256(self._pending).digest())
            self._pending.clear()
        return view

    def _take_length(self, view: memoryview) -> memoryview:
        need = _LEN.size - len(self._pending)
        self._pending += view[:need]
        view = view[need:]
        if len(self._pending) == _LEN.size:
            (size,) = _LEN.unpack(self._pending)
            self._pending.clear()
            if size < MIN_CHUNK:
                at = self.size - len(view) - _LEN.size
                self.problem = f"impossible chunk length {size} at offset {at}"
                return view
            self._part = hashlib.sha256()
            self._left = size
            self._in_chunk = True
        return view

    def hexdigest(self) -> str | None:
        """The stored digest, or None when the bytes so far are not a header and whole chunks."""
        if self.problem is not None or self._out is None or self._in_chunk or self._pending:
            return None
        return self._out.hexdigest()

    def why_none(self) -> str:
        """Why ``hexdigest()`` is None (for a finding or an error message)."""
        if self.problem is not None:
            return self.problem
        if self._out is None:
            return "header cut short"
        return "the last chunk is cut short"


Source = bytes | bytearray | memoryview | BinaryIO | Path


def digest_of(data: Source) -> StoredDigest:
    """A whole file's ``StoredDigest`` (bytes, an open binary file read to its end, or a
    path): its ``hexdigest()`` and the ``size`` it was fed."""
    d = StoredDigest()
    if isinstance(data, Path):
        with open(data, "rb") as f:
            _feed(d, f)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        d.update(data)
    else:
        _feed(d, data)
    return d


def stored_digest_of(data: Source) -> str | None:
    """The stored digest of a whole file (as ``digest_of`` takes it); None when it does not
    split exactly into a header and whole chunks."""
    return digest_of(data).hexdigest()


def _feed(d: StoredDigest, f: BinaryIO) -> None:
    while block := f.read(READ):
        d.update(block)

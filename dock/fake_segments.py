"""Stand-ins for stored segments where only their bytes matter (the dock, the shipper,
the console's tests and benches): shaped as the format's stored segment file, so that they
have a stored digest (docs/evidence-format.md, "Stored digest and plain digest"), with
random bytes for ciphertext. Nothing decrypts them."""

from __future__ import annotations

import os
import random
import struct
from typing import Any

from crypto.digests import stored_digest_of
from crypto.records import sha256_hex
from dock.verify import EMPTY_SHA256


def _random_bytes(n: int, seed: int | None) -> bytes:
    """Deterministic bytes for a seed (os.urandom when seed is None)."""
    return os.urandom(n) if seed is None else random.Random(seed).randbytes(n)


_FAKE_HEADER = 6 + 2 + 4 + 2 + 80 + 24  # magic, version, context length, "{}", key, header
FAKE_CHUNK = 1 << 20


def segment_bytes(n: int, seed: int | None = 0) -> bytes:
    """``n`` deterministic bytes shaped as a stored segment file (docs/evidence-format.md,
    "Stored segment file"): a header whose context is ``{}``, then random "ciphertext"
    in framed chunks of up to 1 MiB, so that it has a stored digest. Nothing decrypts it:
    it stands for a segment wherever only its bytes matter (the dock, the shipper)."""
    body = n - _FAKE_HEADER
    if body < 4 + 17:
        raise ValueError(f"a stored segment has at least {_FAKE_HEADER + 21} bytes")
    rand = _random_bytes(n, seed)
    out = bytearray(b"BWVSEG" + struct.pack(">HI", 2, 2) + b"{}" + rand[:104])
    k = -(-body // (FAKE_CHUNK + 4))
    sizes = [(body - 4 * k) // k] * k
    sizes[-1] += body - 4 * k - sum(sizes)
    pos = _FAKE_HEADER
    for size in sizes:
        out += struct.pack(">I", size) + rand[pos : pos + size]
        pos += size
    return bytes(out)


def declared_digest(stored: bytes) -> str | None:
    """What a camera declares for an upload's bytes: their stored digest, or for an end
    record's empty upload the SHA-256 of nothing (docs/evidence-format.md, "Receipt")."""
    return stored_digest_of(stored) if stored else EMPTY_SHA256


def stored_parts(stored: bytes) -> dict[str, Any]:
    """``manifest_fields``' header hash, size and chunks for a file made by
    ``segment_bytes`` (or any stored segment): each chunk's ciphertext hash as it is, its
    "plaintext" hash and size made up (the dock never sees plaintext)."""
    (n,) = struct.unpack_from(">I", stored, 8)
    pos = 12 + n + 104
    header = stored[:pos]
    chunks: list[dict[str, Any]] = []
    while pos < len(stored):
        (size,) = struct.unpack_from(">I", stored, pos)
        cipher = stored[pos + 4 : pos + 4 + size]
        if len(cipher) != size:
            raise ValueError("not a stored segment: make it with segment_bytes()")
        i = len(chunks)
        chunks.append(
            {
                "chunk": i,
                "kind": "init" if i == 0 else "fragment",
                "first_us": 0,
                "end_us": 1,
                "plain_sha256": sha256_hex(cipher[17:]),
                "plain_size": size - 17,
                "cipher_sha256": sha256_hex(cipher),
                "cipher_size": size,
                "trail_seq": i,
            }
        )
        pos += 4 + size
    return {"header_sha256": sha256_hex(header), "stored_size": len(stored), "chunks": chunks}

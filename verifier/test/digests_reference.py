"""The spec's reference for the stored and plain digests (docs/evidence-format.md, "Stored
digest and plain digest"), on small synthetic files; prints JSON for run_digests.mjs.
Standard library only: `python3 verifier/test/digests_reference.py`."""

from __future__ import annotations

import hashlib
import json
import struct


# -- verbatim from docs/evidence-format.md -------------------------------------------------
# fmt: off
def stored_digest(data: bytes) -> str | None:
    (n,) = struct.unpack_from(">I", data, 8)
    pos = 116 + n
    out = hashlib.sha256(b"bwv:stored-digest:v3\0" + hashlib.sha256(data[:pos]).digest())
    while pos < len(data):
        if pos + 4 > len(data): return None  # noqa: E701
        (size,) = struct.unpack_from(">I", data, pos)
        if size < 17 or pos + 4 + size > len(data): return None  # noqa: E701
        out.update(hashlib.sha256(data[pos + 4 : pos + 4 + size]).digest()); pos += 4 + size  # noqa: E702
    return out.hexdigest()
# fmt: on
# ------------------------------------------------------------------------------------------


def plain_digest(blobs: list[bytes]) -> str:
    h = hashlib.sha256(b"bwv:plain-digest:v3\0")
    for b in blobs:
        h.update(hashlib.sha256(b).digest())
    return h.hexdigest()


def pattern(size: int, seed: int) -> bytes:
    return bytes((seed * 31 + i * 7) % 256 for i in range(size))


def main() -> None:
    context = b'{"a":1}xy'
    header = b"BWVSEG" + struct.pack(">HI", 2, len(context)) + context + pattern(104, 1)
    ciphers = [pattern(40, 2), pattern(100, 3), pattern(17, 4)]
    body = b"".join(struct.pack(">I", len(c)) + c for c in ciphers)
    files = {
        "closed": header + body,
        "no chunks": header,
        "torn last chunk": (header + body)[:-5],
        "bytes left over": header + body + b"\x00\x00\x01",
        "impossible chunk length": header + body + struct.pack(">I", 5) + pattern(5, 5),
    }
    blobs = [pattern(33, 6), pattern(70, 7)]
    out = {
        "files": {k: {"hex": v.hex(), "stored_digest": stored_digest(v)} for k, v in files.items()},
        "header_sha256": hashlib.sha256(header).hexdigest(),
        "cipher_sha256": [hashlib.sha256(c).hexdigest() for c in ciphers],
        "blobs": [b.hex() for b in blobs],
        "plain_sha256": [hashlib.sha256(b).hexdigest() for b in blobs],
        "plain_digest": plain_digest(blobs),
        "empty_plain_digest": plain_digest([]),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""What the evidence sink could not sign yet because the disk was full, kept for later.

When the disk fills, the segment writer aborts the open segment and ends the recording with
reason ``storage_fault``; both need a chain record written, and on a full disk neither may
fit. The sink then remembers them (in memory, and here), and signs them at its next
successful write or at the next start, with the true reason: an abort is not a crash, and
the recording did not end ``interrupted``.

The file (``<chain state>.pending``, device bookkeeping like the chain state, not evidence)
is reserved at start-up with ``RESERVE`` bytes while there is space, and rewritten in place
(its blocks are already allocated), so it can still be written when nothing else can.
It holds ``{"aborted": [partial file names], "ends": {recording id: {"reason", "end_us"}}}``
as JSON, padded with spaces. A file that cannot be read counts as empty: recovery then does
what it did before (``interrupted``), and loses no footage either way.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from crypto.durable import write_atomic

RESERVE = 4096
SUFFIX = ".pending"


@dataclass(frozen=True)
class PendingEnd:
    reason: str
    end_us: int


class PendingEnds:
    """End records and aborted segments waiting to be signed (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.ends: dict[str, PendingEnd] = {}
        self.aborted: set[str] = set()
        self._load()
        with contextlib.suppress(OSError):  # a full disk at start: memory will do
            if not self.path.exists() or self.path.stat().st_size < RESERVE:
                write_atomic(self.path, self._encode(), mode=0o600)

    def __bool__(self) -> bool:
        return bool(self.ends or self.aborted)

    def _load(self) -> None:
        try:
            obj = json.loads(self.path.read_bytes())
            ends = {
                str(k): PendingEnd(str(v["reason"]), int(v["end_us"]))
                for k, v in obj["ends"].items()
            }
            aborted = {str(n) for n in obj["aborted"]}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return
        self.ends, self.aborted = ends, aborted

    def _encode(self) -> bytes:
        data = json.dumps(
            {
                "aborted": sorted(self.aborted),
                "ends": {k: {"reason": v.reason, "end_us": v.end_us} for k, v in self.ends.items()},
            },
            sort_keys=True,
        ).encode()
        if len(data) < RESERVE:
            data += b" " * (RESERVE - len(data) - 1) + b"\n"
        return data

    def save(self) -> bool:
        """Write the current state; in place when it fits the reserved blocks. False when it
        could not be written (it stays in memory)."""
        data = self._encode()
        try:
            if len(data) == RESERVE and self.path.stat().st_size == RESERVE:
                fd = os.open(self.path, os.O_WRONLY)
                try:
                    os.pwrite(fd, data, 0)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            else:
                write_atomic(self.path, data, mode=0o600)
        except OSError:
            return False
        return True

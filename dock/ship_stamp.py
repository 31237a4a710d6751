"""Whether a stored file is still the one the shipper read and sent (``FileStamp``), so that
the check before its delete need not read and hash every byte of it again.

The rule (the camera deletes only the bytes the dock's receipt names). The shipper stamps
the file (``os.stat``: device, inode, size, modification and change times) right before it
reads the first byte of it for an upload, and then reads and sends every byte of it, from
offset 0 in one unbroken run of chunks the dock took one after the other. The dock checks
each chunk against its signed checksum, and the receipt names the stored digest of the bytes
it holds: of the bytes read after the stamp. If the file's stamp right before the delete is
the same, it was neither replaced (inode), cut or grown (size), nor written, truncated or
touched (every write changes the modification and change times to the kernel's clock, and
the change time cannot be set back from user space), so it holds those same bytes.

Timestamps have a granularity (a clock tick; seconds on FAT): a write in the same tick as the
stamp's times would not change them. So the stamp counts only when the file's times are older
than the moment it was taken by a margin (``RACY_NS``; ``COARSE_RACY_NS`` when its times look
coarse), as git treats a "racily clean" file; otherwise, and whenever any condition above does
not hold (an upload resumed, a chunk refused, a record already held), the file is hashed again.

What a stamp cannot see: a writable shared memory mapping of the file that another process
kept from before the stamp and whose pages are still dirty (such writes update no timestamp
until the page is written back). Nothing on the camera maps its segments; a process that
could do that could as well rewrite the file after any check."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RACY_NS = 100_000_000  # 0.1 s: many clock ticks, for file systems with fine timestamps
COARSE_RACY_NS = 5_000_000_000  # 5 s: FAT's 2 s modification times, with margin
COARSE_TICK_NS = 10_000_000  # times that are whole multiples of 10 ms look coarse


@dataclass(frozen=True)
class FileStamp:
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    taken_ns: int  # the wall clock right before the stat

    @property
    def settled(self) -> bool:
        """The file's times are old enough that a later write must change them."""
        coarse = self.mtime_ns % COARSE_TICK_NS == 0 or self.ctime_ns % COARSE_TICK_NS == 0
        margin = COARSE_RACY_NS if coarse else RACY_NS
        return max(self.mtime_ns, self.ctime_ns) <= self.taken_ns - margin

    def same_file(self, other: FileStamp) -> bool:
        return (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns) == (
            other.dev,
            other.ino,
            other.size,
            other.mtime_ns,
            other.ctime_ns,
        )


def stamp_of(file: Path | int, now_ns: Callable[[], int] = time.time_ns) -> FileStamp:
    """The stamp of a file, by its name or an open descriptor of it."""
    taken = now_ns()
    st = os.stat(file)
    return FileStamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, taken)


def unchanged_since(stamp: FileStamp | None, path: Path | None) -> bool:
    """True only if ``path`` is provably the file stamped, unchanged since (see the module's
    rule); False means: hash it again."""
    if stamp is None or path is None or not stamp.settled:
        return False
    try:
        return stamp.same_file(stamp_of(path))
    except OSError:
        return False

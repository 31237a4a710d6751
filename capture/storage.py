"""Durable file operations, behind one small object so faults (a full disk) can be injected.

Write ahead, then acknowledge: ``append`` returns only once the bytes are on disk (fsync);
files appear under their final name by atomic rename, with the directory fsync'd.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

from crypto.durable import append_durable, rename_durable, truncate_durable


class LocalStorage:
    """The device's storage directory on a real filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def create(self, name: str) -> BinaryIO:
        return open(self.root / name, "xb")  # noqa: SIM115 - the caller owns the handle

    def append(self, f: BinaryIO, data: bytes) -> None:
        """Write ``data`` at the end of ``f`` and fsync. On failure (a full disk) the file is
        cut back to where it was, so it never ends in a torn write."""
        append_durable(f, data)

    def truncate(self, path: Path, length: int) -> None:
        truncate_durable(path, length)

    def publish(self, tmp: Path, final: Path) -> None:
        """Atomically give ``tmp`` its final name (and make the rename durable)."""
        rename_durable(tmp, final)


class QuotaStorage(LocalStorage):
    """LocalStorage with a byte quota: writes past it fail with ENOSPC, as a full disk does.

    Used by tests and the simulator to fill the disk on purpose; ``quota`` can be raised
    again to model space coming back.
    """

    def __init__(self, root: Path, quota: int) -> None:
        super().__init__(root)
        self.quota = quota

    def _used(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def free_bytes(self) -> int:
        return max(0, self.quota - self._used())

    def append(self, f: BinaryIO, data: bytes) -> None:
        f.flush()
        if self._used() + len(data) > self.quota:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().append(f, data)

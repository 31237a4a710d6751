"""``fsync_dir``: make a rename or a new name in a directory durable (standard library only,
so the lowest layers, ``tlog`` among them, use it too; crypto/durable.py builds the atomic
writes on it)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """fsync a directory, so the names created or renamed in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

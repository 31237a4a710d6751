"""Durable file operations: write ahead, then acknowledge (shared/DESIGN.md, Principles 3).

- ``write_atomic(path, data)``: the file appears under its name whole or not at all (temp
  file, fsync, rename, fsync of the directory);
- ``append_durable(f, *parts)``: returns once the bytes are on disk; on failure the file is cut
  back to where it was, so it never ends in a torn write that we made;
- ``link_atomic(src, path)``: ``path`` becomes another name of the durable file ``src``
  atomically (a hard link renamed into place: no bytes written, no second fsync);
- ``fsync_dir(path)``: make a rename or a new name in ``path`` durable.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

from base.fsync import fsync_dir as fsync_dir  # its home is base: the lowest layers use it

TMP_SUFFIX = ".tmp"


def write_atomic(path: Path, data: bytes, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically and durably, the file having ``mode``.

    The temp file is created with ``mode`` from the start (never chmod'ed after the fact).
    With ``overwrite=False`` an existing ``path`` is an error (``FileExistsError``).
    """
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; we want exactly ``mode``
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if ``path`` exists: no race with another writer
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def link_atomic(src: Path, path: Path) -> None:
    """Make ``path`` name the file ``src`` (written and fsync'd already, never written in
    place after) atomically and durably: a hard link beside ``path``, renamed over it, then
    an fsync of the directory. A filesystem without hard links gets a copy (``write_atomic``)."""
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        write_atomic(path, Path(src).read_bytes(), os.stat(src).st_mode & 0o777)
        return
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def append_durable(f: BinaryIO, *parts: bytes) -> None:
    """Append ``parts`` (one after the other, none copied into another) to ``f`` and fsync;
    on failure cut ``f`` back and re-raise."""
    start = f.seek(0, os.SEEK_END)
    try:
        for data in parts:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    except OSError:
        try:
            f.truncate(start)
            f.seek(start)
            os.fsync(f.fileno())
        except OSError:
            pass
        raise


def truncate_durable(path: Path, length: int) -> None:
    """Cut ``path`` to ``length`` bytes and fsync it."""
    with open(path, "r+b") as f:
        f.truncate(length)
        f.flush()
        os.fsync(f.fileno())


def rename_durable(src: Path, dst: Path) -> None:
    """Atomically rename ``src`` to ``dst`` (same directory or filesystem) and fsync the
    directories involved."""
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)
    if Path(src).parent != Path(dst).parent:
        fsync_dir(Path(src).parent)

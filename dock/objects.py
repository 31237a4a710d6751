"""Objects as files: the directory ``ObjectStore`` (dock/store.py) of the embedded dock."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from crypto.durable import fsync_dir
from dock.protocol import is_device_id, is_segment_id


class DirectoryObjects:
    """Objects as files under ``root``: ``<device>/<segment>.blob``, ``.manifest`` and (a
    segment's set-aside unsigned bytes) ``.unsigned``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        device, _, name = key.partition("/")
        stem, _, ext = name.partition(".")
        kinds = ("blob", "manifest", "unsigned")
        if not (is_device_id(device) and is_segment_id(stem) and ext in kinds):
            raise ValueError(f"not an object key: {key!r}")
        return self.root / device / name

    def put_file(
        self,
        key: str,
        src: Path,
        sha256: str | None = None,
        stored_digest: str | None = None,
        synced: bool = False,
    ) -> None:
        """``sha256`` and ``stored_digest`` are not checked here: the dock hashed these very
        bytes as it verified them, and the file is renamed, not copied (fsync'd first,
        unless ``synced``: the caller did)."""
        dst = self._path(key)
        dst.parent.mkdir(exist_ok=True)
        if dst.exists():
            raise FileExistsError(f"object {key} exists; objects are never replaced")
        if not synced:
            with open(src, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(src, 0o440)
        os.replace(src, dst)
        fsync_dir(dst.parent)

    def put_bytes(self, key: str, data: bytes, sha256: str | None = None) -> None:
        """``sha256``, when given, is checked (cheap: a manifest's few hundred bytes)."""
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
            raise ValueError(f"object {key}: the bytes do not hash to {sha256}")
        dst = self._path(key)
        dst.parent.mkdir(exist_ok=True)
        tmp = dst.with_name(dst.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.put_file(key, tmp, sha256, synced=True)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it

    def delete(self, key: str) -> None:
        """Remove an object for good (a deletion under retention, dock/store_retire.py);
        ``FileNotFoundError`` if there is none."""
        path = self._path(key)
        path.unlink()
        fsync_dir(path.parent)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

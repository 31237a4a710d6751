"""The dock's own secrets in its store directory: its signing key and the admin token.

Both are created on first start with mode 0600 (created that way, never chmod'ed after the
fact), and are never logged. A file with wider permissions is refused.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from nacl.signing import SigningKey

from crypto.durable import fsync_dir

DOCK_KEY_FILE = "dock.key"
ADMIN_TOKEN_FILE = "admin.token"


class KeyFileError(RuntimeError):
    pass


def write_secret(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _read_secret(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"{path}: readable by others (mode {mode:o}); it must be 0600")
    return path.read_bytes()


def load_or_create_signing_key(path: Path) -> SigningKey:
    """The Ed25519 key in ``path`` (32-byte seed, hex), made there on first use."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_secret(path, SigningKey.generate().encode().hex().encode() + b"\n")
    try:
        seed = bytes.fromhex(_read_secret(path).decode().strip())
    except (UnicodeDecodeError, ValueError):
        raise KeyFileError(f"{path}: not a hex Ed25519 seed") from None
    if len(seed) != 32:
        raise KeyFileError(f"{path}: an Ed25519 seed is 32 bytes")
    return SigningKey(seed)


def load_or_create_token(path: Path) -> str:
    """A random bearer token in ``path``, made there on first use."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_secret(path, secrets.token_urlsafe(32).encode() + b"\n")
    return _read_secret(path).decode().strip()

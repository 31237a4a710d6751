"""The dock's log on disk (``STORE/log/``), and who it asks to vouch for it.

- ``tree/``                the Merkle tree (``tlog.store.LogStore``), rebuilt from the store's
                           ``log_leaves`` table if it is behind (dock/translog.py)
- ``checkpoint``           the latest checkpoint: a C2SP signed note (origin
                           ``bwv-dock/<dock key id>``, signed by the dock key) with the
                           cosignature lines of the witnesses that cosigned it
- ``checkpoint.tsr``       the RFC 3161 token over SHA-256 of its body (absent: none)
- ``checkpoints/<size>``   every checkpoint issued, by tree size (and ``<size>.tsr``)
- ``config.json``          the witnesses (URL and vkey) and the time-stamping authority
- ``tsa-ca.pem``           the TSA's CA certificate (its tokens are checked against it)
- ``witnesses.json``       per witness, the tree size it last cosigned
- ``lock``                 held by the one process that appends to the tree

Every file is written atomically (temp file, fsync, rename, fsync of the directory).

Where the checkpoints and witness sizes are kept is a ``CheckpointStore``: these files for
the embedded store (``FileCheckpoints``), the shared index's tables when several docks share
a PostgreSQL index (dock/checkpoint_table.py; ``checkpoint_store`` chooses by the store's
index). The tree, the configuration and the TSA's CA stay files under the dock's own
directory either way.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from crypto.durable import link_atomic, write_atomic

LOG_DIR = "log"
TREE_DIR = "tree"
CHECKPOINT_FILE = "checkpoint"
TOKEN_FILE = "checkpoint.tsr"
BY_SIZE_DIR = "checkpoints"
CONFIG_FILE = "config.json"
TSA_CA_FILE = "tsa-ca.pem"
WITNESS_STATE_FILE = "witnesses.json"
LOCK_FILE = "lock"
ORIGIN_PREFIX = "bwv-dock/"

_VKEY = re.compile(r"^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+$")


class LogConfigError(ValueError):
    """A witness or TSA setting that cannot be used; the text says which, in one line."""


def origin_for(dock_key_id: str) -> str:
    """The dock log's origin line (and its signed-note key name)."""
    return ORIGIN_PREFIX + dock_key_id


def log_dir(store_dir: Path) -> Path:
    return Path(store_dir) / LOG_DIR


@dataclass(frozen=True)
class WitnessConfig:
    url: str
    vkey: str  # the witness's cosignature/v1 verifier key

    @property
    def name(self) -> str:
        return self.vkey.split("+", 1)[0]


def parse_witness(value: str) -> WitnessConfig:
    """``URL=VKEY`` (split at the last ``=``: an Ed25519 vkey's base64 has no padding)."""
    url, sep, vkey = value.strip().rpartition("=")
    if not sep or not url.startswith(("http://", "https://")) or not _VKEY.match(vkey):
        raise LogConfigError(
            f"{value!r}: expected URL=VKEY (the witness's address and its verifier key, "
            "as `bwv witness vkey` prints it)"
        )
    return WitnessConfig(url.rstrip("/"), vkey)


def read_witness_file(path: Path) -> list[WitnessConfig]:
    """A file of ``URL=VKEY`` (or ``URL VKEY``) lines; ``#`` starts a comment."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LogConfigError(f"{path}: cannot read the witness list ({exc})") from None
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(parse_witness("=".join(line.split(None, 1)) if " " in line else line))
    return out


@dataclass(frozen=True)
class LogConfig:
    """Who the dock asks to vouch for its checkpoints: witnesses, and a TSA for the time."""

    witnesses: tuple[WitnessConfig, ...] = ()
    tsa_url: str | None = None
    tsa_ca_pem: bytes | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "witnesses": [{"url": w.url, "vkey": w.vkey} for w in self.witnesses],
            "tsa_url": self.tsa_url,
        }


def load_log_config(store_dir: Path) -> LogConfig:
    """The configuration kept in the store (none: a log nobody else vouches for)."""
    d = log_dir(store_dir)
    try:
        raw = json.loads((d / CONFIG_FILE).read_bytes())
    except FileNotFoundError:
        return LogConfig()
    except (OSError, ValueError) as exc:
        raise LogConfigError(f"{d / CONFIG_FILE}: unreadable ({exc})") from None
    try:
        witnesses = tuple(WitnessConfig(str(w["url"]), str(w["vkey"])) for w in raw["witnesses"])
        tsa_url = raw.get("tsa_url")
    except (KeyError, TypeError) as exc:
        raise LogConfigError(f"{d / CONFIG_FILE}: malformed ({exc})") from None
    ca = (d / TSA_CA_FILE).read_bytes() if tsa_url and (d / TSA_CA_FILE).exists() else None
    return LogConfig(witnesses, tsa_url, ca)


def save_log_config(store_dir: Path, config: LogConfig) -> None:
    d = log_dir(store_dir)
    d.mkdir(parents=True, exist_ok=True)
    if config.tsa_ca_pem is not None:
        write_atomic(d / TSA_CA_FILE, config.tsa_ca_pem)
    text = json.dumps(config.to_json(), indent=2, sort_keys=True).encode() + b"\n"
    write_atomic(d / CONFIG_FILE, text)


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    note: bytes  # the signed note, with the cosignatures gathered
    token: bytes | None  # RFC 3161 token over SHA-256(body)


def save_checkpoint(store_dir: Path, cp: StoredCheckpoint) -> None:
    """Keep ``cp`` by its size, then as the latest (each file atomically; the latest is
    another name of the one kept by size, whose file is replaced, never written in place)."""
    d = log_dir(store_dir)
    by_size = d / BY_SIZE_DIR
    by_size.mkdir(parents=True, exist_ok=True)
    if cp.token is not None:
        write_atomic(by_size / f"{cp.size}.tsr", cp.token)
    write_atomic(by_size / str(cp.size), cp.note)
    if cp.token is not None:
        link_atomic(by_size / f"{cp.size}.tsr", d / TOKEN_FILE)
    else:
        (d / TOKEN_FILE).unlink(missing_ok=True)
    link_atomic(by_size / str(cp.size), d / CHECKPOINT_FILE)


def _size_of(note: bytes) -> int | None:
    try:
        lines = note.split(b"\n", 2)
        return int(lines[1]) if len(lines) > 2 and lines[1].isdigit() else None
    except ValueError:
        return None


def latest_checkpoint(store_dir: Path) -> StoredCheckpoint | None:
    """The latest checkpoint kept (its token if it matches: a token kept beside an older
    checkpoint, left by a crash between the two writes, is not this one's)."""
    d = log_dir(store_dir)
    try:
        note = (d / CHECKPOINT_FILE).read_bytes()
    except FileNotFoundError:
        return None
    size = _size_of(note)
    if size is None:
        return None
    return checkpoint_at(store_dir, size) or StoredCheckpoint(size, note, None)


def checkpoint_at(store_dir: Path, size: int) -> StoredCheckpoint | None:
    """The checkpoint issued at tree size ``size``, or None."""
    by_size = log_dir(store_dir) / BY_SIZE_DIR
    try:
        note = (by_size / str(size)).read_bytes()
    except FileNotFoundError:
        return None
    try:
        token: bytes | None = (by_size / f"{size}.tsr").read_bytes()
    except FileNotFoundError:
        token = None
    return StoredCheckpoint(size, note, token)


def checkpoint_sizes(store_dir: Path) -> list[int]:
    by_size = log_dir(store_dir) / BY_SIZE_DIR
    if not by_size.is_dir():
        return []
    return sorted(int(p.name) for p in by_size.iterdir() if p.name.isdigit())


def load_witness_sizes(store_dir: Path) -> dict[str, int]:
    try:
        raw = json.loads((log_dir(store_dir) / WITNESS_STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def save_witness_sizes(store_dir: Path, sizes: dict[str, int]) -> None:
    path = log_dir(store_dir) / WITNESS_STATE_FILE
    write_atomic(path, json.dumps(sizes, sort_keys=True).encode() + b"\n")


def lock_path(store_dir: Path) -> Path:
    d = log_dir(store_dir)
    d.mkdir(parents=True, exist_ok=True)
    return d / LOCK_FILE


def try_lock(store_dir: Path) -> int | None:
    """An fd holding the log's lock (exclusive, this process), or None when another holds it."""
    import fcntl

    fd = os.open(lock_path(store_dir), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


# --------------------------------------------------------------------------- where they are kept


class IssuerLock(Protocol):
    """Held by the one issuer of the log's checkpoints, until ``release``."""

    def held(self) -> bool:
        """Still this process's (False once lost: a shared index's connection cut)."""
        ...

    def release(self) -> None: ...


class StaleIssuer(RuntimeError):
    """The shared index already holds a later checkpoint than the one offered: another dock
    issues now (this one lost the log's lock)."""


class CheckpointStore(Protocol):
    """Where the log's checkpoints (by size, and the latest) and the witnesses' sizes are
    kept, and who may issue the next. ``shared``: other docks issue into it too (read it
    afresh rather than keep a copy)."""

    shared: bool

    def latest(self) -> StoredCheckpoint | None: ...
    def at(self, size: int) -> StoredCheckpoint | None: ...
    def sizes(self) -> list[int]: ...
    def save(self, cp: StoredCheckpoint) -> StoredCheckpoint: ...
    def witness_sizes(self) -> dict[str, int]: ...
    def save_witness_sizes(self, sizes: dict[str, int]) -> None: ...
    def try_issuer_lock(self) -> IssuerLock | None: ...


class _TreeLockIsIssuer:
    """The embedded store's issuer: whoever holds ``STORE/log/lock`` (``try_lock``)."""

    def held(self) -> bool:
        return True

    def release(self) -> None:
        return None


class FileCheckpoints:
    """The files under ``STORE/log`` (the functions above); the issuer is the process that
    holds the directory's lock, which ``DockLog`` takes before it asks."""

    shared = False

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = Path(store_dir)

    def latest(self) -> StoredCheckpoint | None:
        return latest_checkpoint(self.store_dir)

    def at(self, size: int) -> StoredCheckpoint | None:
        return checkpoint_at(self.store_dir, size)

    def sizes(self) -> list[int]:
        return checkpoint_sizes(self.store_dir)

    def save(self, cp: StoredCheckpoint) -> StoredCheckpoint:
        save_checkpoint(self.store_dir, cp)
        return cp

    def witness_sizes(self) -> dict[str, int]:
        return load_witness_sizes(self.store_dir)

    def save_witness_sizes(self, sizes: dict[str, int]) -> None:
        save_witness_sizes(self.store_dir, sizes)

    def try_issuer_lock(self) -> IssuerLock | None:
        return _TreeLockIsIssuer()


def checkpoint_store(store_dir: Path, store: Any = None) -> CheckpointStore:
    """The checkpoints of the log of ``store`` (its state under ``store_dir``): in the
    store's index when that is shared (PostgreSQL), else the files under ``store_dir/log``."""
    from dock.checkpoint_table import TableCheckpoints, shared_index

    db = shared_index(store)
    if db is None:
        return FileCheckpoints(store_dir)
    return TableCheckpoints(db, origin_for(store.dock_key_id))

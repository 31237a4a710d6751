"""The witness's state folder, every file written with fsync and an atomic rename.

STATE/witness.key          the Ed25519 seed, 64 hex digits (mode 0600; refused if group
                           or others may read it)
STATE/witness.vkey         the witness's cosignature/v1 vkey (its name and public key)
STATE/logs.json            the logs it witnesses: {"<origin>": ["<log vkey>", ...]}
STATE/checkpoints/<H>      the latest checkpoint it cosigned for the log whose origin
                           has SHA-256 (hex) H: the log's verified signature lines and
                           the witness's cosignature
STATE/forks/<H>-<size>-<id>.json   evidence of a fork or of an inconsistent checkpoint:
                           the checkpoint it held and the one it was offered, both signed
STATE/lock                 held (flock) by the one witness serving this state
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

from crypto.durable import write_atomic
from crypto.identity import SECRET_MODE, IdentityError, parse_key_text
from tlog.cosignature import CosignatureSigner, CosignatureVerifier
from tlog.note import NoteError, NoteVerifier, valid_name

KEY_FILE, VKEY_FILE, LOGS_FILE, LOCK_FILE = "witness.key", "witness.vkey", "logs.json", "lock"
CHECKPOINTS_DIR, FORKS_DIR = "checkpoints", "forks"
DIR_MODE = 0o700


class StateError(Exception):
    """A witness state that cannot be used: one line naming the file and the problem."""


def origin_hash(origin: str) -> str:
    return hashlib.sha256(origin.encode()).hexdigest()


def _read_seed(path: Path) -> bytes:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise StateError(f"{path}: no witness key (run `bwv witness keygen`)") from None
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode):
        raise StateError(f"{path}: the witness key is not a regular file")
    if mode & 0o077:
        raise StateError(
            f"{path}: the witness key has mode {mode:04o}; it must not be readable by group "
            f"or others (chmod 600 {path})"
        )
    try:
        return parse_key_text(path.read_bytes()[:4096], "witness key", path)
    except IdentityError as exc:
        raise StateError(str(exc)) from None


def keygen(state: Path, name: str) -> CosignatureSigner:
    """A new witness key in ``state`` (made if missing); an existing key is never replaced."""
    if not valid_name(name):
        raise StateError(f"{name!r} is not a key name (non-empty, no spaces, no '+')")
    key_path, vkey_path = state / KEY_FILE, state / VKEY_FILE
    for p in (key_path, vkey_path):
        if os.path.lexists(p):
            raise StateError(f"{p} exists: not replacing a witness key")
    state.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    sk = SigningKey.generate()
    signer = CosignatureSigner(name, sk)
    try:
        write_atomic(key_path, bytes(sk).hex().encode() + b"\n", mode=SECRET_MODE, overwrite=False)
        write_atomic(vkey_path, signer.vkey.encode() + b"\n", overwrite=False)
    except FileExistsError:
        raise StateError(f"a witness key appeared in {state} meanwhile: not replaced") from None
    return signer


def read_vkey(state: Path) -> str:
    path = state / VKEY_FILE
    try:
        vkey = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise StateError(f"{path}: no witness key (run `bwv witness keygen`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"{path}: cannot read the witness vkey ({exc})") from None
    try:
        CosignatureVerifier.from_vkey(vkey)
    except NoteError as exc:
        raise StateError(f"{path}: {exc}") from None
    return vkey


def load_signer(state: Path) -> CosignatureSigner:
    verifier = CosignatureVerifier.from_vkey(read_vkey(state))
    sk = SigningKey(_read_seed(state / KEY_FILE))
    if bytes(sk.verify_key) != verifier.public_key:
        raise StateError(f"{state / KEY_FILE} does not match {state / VKEY_FILE}")
    return CosignatureSigner(verifier.name, sk)


def load_logs(state: Path) -> dict[str, list[str]]:
    path = state / LOGS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(f"{path}: cannot read the witnessed logs ({exc})") from None
    ok = isinstance(raw, dict) and all(
        isinstance(o, str) and isinstance(v, list) and all(isinstance(k, str) for k in v)
        for o, v in raw.items()
    )
    if not ok:
        raise StateError(f"{path}: not a map of origins to lists of vkeys")
    for origin, vkeys in raw.items():
        for vkey in vkeys:
            try:
                NoteVerifier.from_vkey(vkey)
            except NoteError as exc:
                raise StateError(f"{path}: log {origin!r}: {exc}") from None
    return raw


def add_log(state: Path, origin: str, vkey: str) -> bool:
    """Witness the log ``origin`` signed by ``vkey`` (Ed25519); False if already known."""
    if not origin or "\n" in origin or any(ord(c) < 0x20 for c in origin):
        raise StateError(f"{origin!r} is not a log origin (one non-empty line)")
    try:
        NoteVerifier.from_vkey(vkey)
    except NoteError as exc:
        raise StateError(f"--vkey: {exc}") from None
    if not (state / VKEY_FILE).exists():
        raise StateError(f"{state}: no witness key (run `bwv witness keygen` first)")
    logs = load_logs(state)
    if vkey in logs.get(origin, []):
        return False
    logs.setdefault(origin, []).append(vkey)
    data = json.dumps(logs, indent=1, sort_keys=True).encode() + b"\n"
    write_atomic(state / LOGS_FILE, data)
    return True


def read_latest(state: Path, origin: str) -> bytes | None:
    """The latest cosigned checkpoint (note bytes) held for ``origin``, or None."""
    path = state / CHECKPOINTS_DIR / origin_hash(origin)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write_latest(state: Path, origin: str, note: bytes) -> None:
    d = state / CHECKPOINTS_DIR
    d.mkdir(mode=DIR_MODE, exist_ok=True)
    write_atomic(d / origin_hash(origin), note)


@dataclass(frozen=True)
class ForkEvidence:
    origin: str
    reason: str
    held: bytes  # the cosigned checkpoint the witness held
    offered: bytes  # the log-signed checkpoint it refused
    old_size: int
    proof: list[str]  # base64 hashes, as offered
    received_at: int  # POSIX seconds


def write_fork(state: Path, ev: ForkEvidence, offered_size: int) -> Path:
    d = state / FORKS_DIR
    d.mkdir(mode=DIR_MODE, exist_ok=True)
    ident = hashlib.sha256(ev.offered).hexdigest()[:16]
    path = d / f"{origin_hash(ev.origin)[:16]}-{offered_size}-{ident}.json"
    doc = {
        "origin": ev.origin,
        "reason": ev.reason,
        "held": ev.held.decode(),
        "offered": ev.offered.decode(),
        "old_size": ev.old_size,
        "proof": ev.proof,
        "received_at": ev.received_at,
    }
    write_atomic(path, json.dumps(doc, indent=1).encode() + b"\n")
    return path


class StateLock:
    """The one server on a state folder: an exclusive flock on STATE/lock."""

    def __init__(self, state: Path) -> None:
        self.path = state / LOCK_FILE
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise StateError(f"{state}: another witness is serving this state") from None

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

"""``bwv provision --force``: a new device key, after moving the old identity aside.

A new key starts a new chain and trail, so the old key, its ``.pub`` and the evidence store
it signed (``outbox/`` and ``chain_state.json``) are renamed to ``<name>.replaced-<UTC time>``:
never deleted, never overwriting anything; footage that had not shipped stays verifiable with
the old public key.
"""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from pathlib import Path

import click

from bwv.errors import CannotCheck
from bwv.status_cmd import outbox_facts
from capture.config import Config
from capture.evidence_setup import chain_state_path, outbox_dir
from crypto.durable import fsync_dir
from crypto.identity import DeviceIdentity, IdentityError, public_key_path

KEY_DIR_MODE = 0o700


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _aside_name(path: Path, stamp: str) -> Path:
    """``path.replaced-<stamp>``, or ``...-1``, ``-2``: a name nothing has yet (nor its .pub)."""
    base = path.with_name(f"{path.name}.replaced-{stamp}")
    candidate, i = base, 1
    while os.path.lexists(candidate) or os.path.lexists(public_key_path(candidate)):
        candidate = base.with_name(f"{base.name}-{i}")
        i += 1
    return candidate


def _move_aside(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` without ever replacing an existing ``dst``; durable."""
    if src.is_dir():
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "already exists", str(dst))
        os.rename(src, dst)
    else:
        try:
            os.link(src, dst)  # fails if dst exists: nothing is overwritten
            os.unlink(src)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if os.path.lexists(dst):  # a filesystem without hard links
                raise FileExistsError(errno.EEXIST, "already exists", str(dst)) from None
            os.rename(src, dst)
    fsync_dir(dst.parent)


def _move_old_outbox(cfg: Config, stamp: str, old_pub: Path) -> list[str]:
    """Move the evidence store the old key signed aside; warn if it holds unshipped footage."""
    outbox = outbox_dir(cfg)
    if not os.path.lexists(outbox):
        return []
    facts = outbox_facts(Path(cfg.storage.dir))
    dst = _aside_name(outbox, stamp)
    _move_aside(outbox, dst)
    waiting = facts["segments"] + facts["partial"]
    if waiting:
        click.echo(
            f"WARNING: {waiting} segment(s) signed by the old key had not shipped; they are "
            f"kept in {dst} (check them with `bwv verify {dst} --device-pub "
            f"{old_pub}`) and do not ship by themselves",
            err=True,
        )
    return [f"old evidence store -> {dst}"]


def replace_old_identity(cfg: Config, key_path: Path, stamp: str) -> list[str]:
    """Move an old key, its public key and the evidence store it signed aside (a new key
    starts a new chain and trail); say what moved. Nothing is deleted."""
    moved: list[str] = []
    aside = _aside_name(key_path, stamp)
    pub = public_key_path(key_path)
    if os.path.lexists(key_path):
        _move_aside(key_path, aside)
        moved.append(f"old device key -> {aside}")
    if os.path.lexists(pub):
        _move_aside(pub, public_key_path(aside))
        moved.append(f"old public key -> {public_key_path(aside)}")
    stamp = aside.name[len(f"{key_path.name}.replaced-") :]  # "<stamp>[-n]"
    moved += _move_old_outbox(cfg, stamp, public_key_path(aside))
    state = chain_state_path(cfg)
    if os.path.lexists(state):
        dst = _aside_name(state, stamp)
        _move_aside(state, dst)
        moved.append(f"old chain state -> {dst}")
    return moved


def make_key(cfg: Config, key_path: Path) -> DeviceIdentity:
    """A new device key at ``key_path``, after moving aside what an old one left."""
    stamp = utc_stamp()
    try:
        # with --force the old key; without, what a lost key left (its .pub, its footage)
        for line in replace_old_identity(cfg, key_path, stamp):
            click.echo(f"moved aside: {line}")
        if not key_path.parent.exists():
            key_path.parent.mkdir(parents=True, mode=KEY_DIR_MODE)
        return DeviceIdentity.generate(key_path, cfg.device_id)
    except IdentityError as exc:
        raise CannotCheck(f"cannot make the device key: {exc}") from None
    except OSError as exc:
        raise CannotCheck(
            f"cannot make the device key at {key_path}: {exc.strerror or exc}"
        ) from None

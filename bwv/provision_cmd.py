"""``bwv provision``: give a camera its identity, pin the agency's key, enrol it at a dock.

1. Check everything first (the agency key, the dock key file if given, that the key files can
   be written), so that a mistake changes nothing.
2. Make the device key (``keys.device_key``, mode 0600, and ``.pub`` beside it) with
   :meth:`crypto.identity.DeviceIdentity.generate`. An existing key is kept: with ``--token``
   it is the key enrolled (so a retry after a mistyped token enrols the same key); without,
   the command refuses. ``--force`` replaces it: the old key (and its ``.pub``) is moved aside to
   ``device.key.replaced-<UTC time>``, never deleted, and so is the evidence store it signed
   (``outbox/`` and ``chain_state.json``), because a new key starts a new chain: footage that
   had not shipped stays there, verifiable with the old public key.
3. Pin the agency's X25519 public key at ``keys.agency_public_key`` (atomically).
4. With ``--token`` (and ``--dock-url`` or ``dock.url``): enrol at the dock with the one-time
   token (:func:`dock.client.enroll`) and pin the dock's key at ``keys.dock_public_key``.
   With ``--dock-key`` the dock must answer with that key; without, it is taken on first use,
   and its key id is printed for the technician to compare with the dock's.

Only key ids (the first 16 hex digits of the SHA-256 of a public key) are printed, never key
bytes; the enrolment token is never printed.
"""

from __future__ import annotations

import errno
import getpass
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from bwv.status_cmd import config_option, load_config, outbox_facts, read_daemon_status
from capture.config import Config
from capture.evidence_setup import chain_state_path, outbox_dir
from crypto.durable import fsync_dir, write_atomic
from crypto.identity import (
    DeviceIdentity,
    IdentityError,
    key_id_of,
    load_agency_public_key,
    load_dock_public_key,
    load_public_key,
    public_key_path,
)

PUBLIC_MODE = 0o644
KEY_DIR_MODE = 0o700


def _fail(message: str) -> click.ClickException:
    from bwv.errors import CannotCheck

    return CannotCheck(message)  # exit 2, as every command that cannot do its job


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _check_agency_key(path: Path) -> bytes:
    """The agency's X25519 public key from ``path``, or a click error saying why not."""
    try:  # checked as the daemon and selftest check it (crypto.identity.check_public_key)
        pk = load_agency_public_key(path)
    except IdentityError as exc:
        raise _fail(f"refusing the agency key: {exc}") from None
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = 0o644
    if not mode & 0o044:
        click.echo(
            f"note: {path} is readable only by its owner, like a secret key: make sure "
            "it is the agency's PUBLIC key (compare the key id below with the agency's)",
            err=True,
        )
    return bytes(pk)


def _writable_problem(target: Path) -> str | None:
    """Why ``target`` could not be created or replaced by this user, or None."""
    d = target.parent
    while not d.exists() and d != d.parent:
        d = d.parent
    if not d.is_dir():
        return f"cannot write {target}: {d} is not a directory"
    if not os.access(d, os.W_OK | os.X_OK):
        return (
            f"cannot write {target}: {d} is not writable by user {getpass.getuser()} "
            "(see the technician's guide: docs/technicians-guide.md)"
        )
    return None


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


def _existing_key_id(key_path: Path) -> str:
    try:
        return key_id_of(load_public_key(public_key_path(key_path)))
    except (IdentityError, OSError):
        return "unknown"


def _replace_old_identity(cfg: Config, key_path: Path, stamp: str) -> list[str]:
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
    suffix = aside.name[len(key_path.name) :]  # ".replaced-<stamp>[-n]"
    outbox = outbox_dir(cfg)
    if os.path.lexists(outbox):
        facts = outbox_facts(Path(cfg.storage.dir))
        dst = _aside_name(outbox, suffix[len(".replaced-") :])
        _move_aside(outbox, dst)
        moved.append(f"old evidence store -> {dst}")
        waiting = facts["segments"] + facts["partial"]
        if waiting:
            click.echo(
                f"WARNING: {waiting} segment(s) signed by the old key had not shipped; they are "
                f"kept in {dst} (check them with `bwv verify {dst} --device-pub "
                f"{public_key_path(aside)}`) and do not ship by themselves",
                err=True,
            )
    state = chain_state_path(cfg)
    if os.path.lexists(state):
        dst = _aside_name(state, suffix[len(".replaced-") :])
        _move_aside(state, dst)
        moved.append(f"old chain state -> {dst}")
    return moved


def _make_key(cfg: Config, key_path: Path) -> DeviceIdentity:
    """A new device key at ``key_path``, after moving aside what an old one left."""
    stamp = _utc_stamp()
    try:
        # with --force the old key; without, what a lost key left (its .pub, its footage)
        for line in _replace_old_identity(cfg, key_path, stamp):
            click.echo(f"moved aside: {line}")
        if not key_path.parent.exists():
            key_path.parent.mkdir(parents=True, mode=KEY_DIR_MODE)
        return DeviceIdentity.generate(key_path, cfg.device_id)
    except IdentityError as exc:
        raise _fail(f"cannot make the device key: {exc}") from None
    except OSError as exc:
        raise _fail(f"cannot make the device key at {key_path}: {exc.strerror or exc}") from None


def _pin(path: Path, raw: bytes) -> str | None:
    """Write a pinned public key (64 hex digits) atomically; the key id it replaced, if any."""
    old = None
    if path.exists():
        try:
            old_raw = load_public_key(path)
            old = key_id_of(old_raw) if old_raw != raw else None
        except (IdentityError, OSError):
            old = "unreadable"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, raw.hex().encode("ascii") + b"\n", mode=PUBLIC_MODE)
    return old


def _enroll_error(exc: Exception, url: str, expected: bool) -> click.ClickException:
    from dock.client import DockRefused
    from dock.protocol import Code

    if isinstance(exc, DockRefused) and exc.code == Code.BAD_TOKEN:
        why = (
            "it was issued for another device id"
            if exc.status == 403
            else "unknown, already used or expired"
        )
        return _fail(
            f"the dock at {url} refused the enrollment token: {why}; ask for a new one "
            "(`bwv dock token --device ID` on the dock)"
        )
    if isinstance(exc, DockRefused):
        hint = {
            Code.ENROLLED: "this device id is enrolled at the dock already (with another key): "
            "give the camera a new device_id",
            Code.REVOKED: "this device id was revoked: give the camera a new device_id",
        }.get(exc.code or "", "")
        msg = f"the dock at {url} refused the enrolment ({exc.status}): {exc.detail}"
        return _fail(msg + (f"; {hint}" if hint else ""))
    msg = f"cannot enrol at {url}: {exc}"
    if expected and "not signed" in str(exc):
        msg += " (the answer is not signed by the key in --dock-key: wrong dock, or wrong key file)"
    return _fail(msg)


@click.command()
@config_option
@click.option(
    "--agency-pub",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The agency's X25519 public key (hex or base64): footage is sealed to it.",
)
@click.option("--dock-url", help="The dock to enrol at (default: dock.url of the configuration).")
@click.option(
    "--token",
    envvar="BWV_ENROLL_TOKEN",
    show_envvar=True,
    help="One-time enrolment token from the dock; '-' reads it from stdin.",
)
@click.option(
    "--dock-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The dock's Ed25519 public key, given out of band: the dock must answer "
    "with it. Without it the dock's key is taken on first use (compare the "
    "printed key id with the dock's).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing device key. The old key, its public key and the "
    "footage it signed are moved aside (never deleted).",
)
def provision(
    config_path: Path,
    agency_pub: Path,
    dock_url: str | None,
    token: str | None,
    dock_key: Path | None,
    force: bool,
) -> None:
    """Make this camera's key, pin the agency's key and, with --token, enrol at the dock.

    Run it as the service user (sudo -u bwv ...). It prints the device id and the key ids to
    compare at the dock, never key bytes. A camera that has a key keeps it: with --token
    that key is enrolled (a retry after a wrong token needs no --force); without --token
    the command refuses, unless --force replaces the key.
    """
    cfg = load_config(config_path)
    k = cfg.keys
    key_path = Path(k.device_key)
    agency_path, dock_path = Path(k.agency_public_key), Path(k.dock_public_key)

    # -- check everything before changing anything --------------------------------------
    if token == "-":
        if sys.stdin.isatty():
            token = click.prompt("enrolment token", hide_input=True, err=True).strip()
        else:
            token = sys.stdin.readline().strip()
    url = dock_url or (cfg.dock.url if token else None)
    if url and not token:
        raise click.UsageError("--dock-url needs --token (the one-time enrolment token)")
    if token and not url:
        raise click.UsageError("--token needs --dock-url (or dock.url in the configuration)")
    if url and not url.startswith(("http://", "https://")):
        raise click.BadParameter(
            f"must start with http:// or https:// (got {url!r})", param_hint="--dock-url"
        )
    if dock_key is not None and not token:
        raise click.UsageError("--dock-key is only used when enrolling (--token)")
    agency_raw = _check_agency_key(agency_pub)
    expected_dock = None
    if dock_key is not None:
        try:
            expected_dock = bytes(load_dock_public_key(dock_key))
        except IdentityError as exc:
            raise _fail(f"refusing --dock-key: {exc}") from None

    kept = None  # the key made before, enrolled as it is (a retry after a wrong token)
    if os.path.lexists(key_path) and not force:
        if not token:
            raise _fail(
                f"this camera already has a device key ({key_path}, key id "
                f"{_existing_key_id(key_path)}); not replacing it. To enrol it at a dock, "
                "run again with --token (the key is kept); to replace it, run again with "
                "--force: the old key is moved aside, never deleted."
            )
        try:
            kept = DeviceIdentity.load(key_path, cfg.device_id)
        except IdentityError as exc:
            raise _fail(
                f"cannot use the device key made before: {exc}; to replace it, run again "
                "with --force (the old key is moved aside, never deleted)"
            ) from None
    daemon = read_daemon_status(cfg)
    if force and daemon.running:
        raise _fail(
            f"the bwv daemon is running ({daemon.detail}): stop it before replacing "
            "the key (sudo systemctl stop bwv)"
        )
    targets = [key_path, agency_path] + ([dock_path] if token else [])
    problems = [p for p in (_writable_problem(t) for t in targets) if p]
    for old in (outbox_dir(cfg), chain_state_path(cfg)):
        if force and os.path.lexists(old):
            problems += [p for p in (_writable_problem(old),) if p]
    if problems:
        raise _fail("nothing was changed:\n  " + "\n  ".join(problems))

    # -- the device key -------------------------------------------------------------------
    if kept is not None:
        identity = kept
        click.echo(f"note: keeping this camera's device key (key id {identity.key_id}); "
                   "enrolling it", err=True)
    else:
        identity = _make_key(cfg, key_path)

    # -- the agency key -------------------------------------------------------------------
    try:
        replaced = _pin(agency_path, agency_raw)
    except OSError as exc:
        raise _fail(
            f"the device key is in place ({identity.key_id}) but the agency key could "
            f"not be pinned at {agency_path}: {exc.strerror or exc}"
        ) from None
    if replaced:
        click.echo(f"note: replaced the agency key pinned before (key id {replaced})", err=True)

    click.echo(f"device id:      {identity.device_id}")
    click.echo(f"device key id:  {identity.key_id}   (public key: {public_key_path(key_path)})")
    click.echo(f"agency key id:  {key_id_of(agency_raw)}   (pinned at {agency_path})")

    # -- the dock -----------------------------------------------------------------------------
    if token:
        assert url is not None
        from dock.client import DockError, enroll

        try:
            got = enroll(
                url,
                identity.device_id,
                identity,
                identity.public_key,
                token,
                wall_clock=lambda: time.time_ns() // 1000,
                expected_dock_key=expected_dock,
                timeout=15.0,
            )
        except DockError as exc:
            err = _enroll_error(exc, url, expected_dock is not None)
            err.message += (
                f"\nThe device key ({identity.key_id}) and the agency key are in "
                "place but the camera is NOT enrolled. Fix the cause and run this "
                "again: the same key is enrolled (no --force needed)."
            )
            raise err from None
        if got.device_id != identity.device_id or got.key_id != identity.key_id:
            raise _fail(
                "the dock enrolled another device or key than this one: "
                f"{got.device_id} / {got.key_id}"
            )
        if len(got.dock_public_key) != 32:
            raise _fail("the dock answered with a malformed key; nothing pinned")
        try:
            replaced = _pin(dock_path, got.dock_public_key)
        except OSError as exc:
            raise _fail(
                f"enrolled, but the dock key could not be pinned at {dock_path}: "
                f"{exc.strerror or exc}"
            ) from None
        if replaced:
            click.echo(f"note: replaced the dock key pinned before (key id {replaced})", err=True)
        how = (
            "checked against --dock-key"
            if expected_dock
            else (
                "taken on first use: compare it with the dock key id `bwv dock status` shows "
                "on the dock"
            )
        )
        click.echo(f"dock key id:    {got.dock_key_id}   (pinned at {dock_path}; {how})")
        if url != cfg.dock.url:
            click.echo(
                f"note: the camera ships to dock.url of {config_path} "
                f"({cfg.dock.url or 'not set'}), not to {url}: set dock.url = "
                f'"{url}" there',
                err=True,
            )
    else:
        click.echo("dock:           not enrolled (no --token): footage cannot ship until it is")
        if force and dock_path.exists():
            click.echo(
                f"note: {dock_path} still pins a dock, which does not know this new key: "
                "enrol it there (with a new device_id if the old one was enrolled)",
                err=True,
            )
    if daemon.running:
        click.echo(
            "the daemon is running: restart it to use the new keys (sudo systemctl restart bwv)",
            err=True,
        )
    sys.stdout.flush()

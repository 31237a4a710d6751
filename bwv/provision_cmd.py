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

import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from bwv.errors import CannotCheck
from bwv.provision_aside import make_key
from bwv.provision_enrol import Enrolment, enrol_and_pin, pin
from bwv.provision_time import pin_tsa_ca, read_tsa_ca
from bwv.provision_tpm import FILE_STORE, KEY_STORES, TPM_STORE, describe, make_tpm_key
from bwv.status_cmd import DaemonStatus, config_option, load_config, read_daemon_status
from capture.config import Config
from capture.device_key import FILE, DeviceKey, open_device_key
from capture.evidence_setup import chain_state_path, outbox_dir
from crypto.identity import (
    IdentityError,
    key_id_of,
    load_agency_public_key,
    load_dock_public_key,
    load_public_key,
    public_key_path,
)


def _fail(message: str) -> click.ClickException:
    return CannotCheck(message)  # exit 2, as every command that cannot do its job


@dataclass(frozen=True)
class _Request:
    """What ``bwv provision`` was asked to do, every part of it checked: nothing changed yet."""

    cfg: Config
    config_path: Path
    key_path: Path
    agency_path: Path
    dock_path: Path
    agency_raw: bytes
    enrolment: Enrolment | None  # None: no --token, the camera is not enrolled
    force: bool
    kept: DeviceKey | None  # the key made before, enrolled as it is (a retry)
    key_store: str = FILE_STORE  # where a new key is made: a file or the TPM
    witness_keys: tuple[str, ...] = ()  # to pin at keys.witnesses (none given: left as is)


# -- checking everything before changing anything ---------------------------------------------


def _read_token(token: str | None) -> str | None:
    """The token as given; ``-`` reads it from stdin (prompted, hidden, on a terminal)."""
    if token != "-":
        return token
    if sys.stdin.isatty():
        return str(click.prompt("enrolment token", hide_input=True, err=True)).strip()
    return sys.stdin.readline().strip()


def _dock_url(
    cfg: Config, dock_url: str | None, token: str | None, dock_key: str | None
) -> str | None:
    """The dock to enrol at (None: no enrolment); a usage error for options that clash."""
    url = dock_url or (cfg.dock.url if token else None)
    if url and not token:
        raise click.UsageError("--dock-url needs --token (the one-time enrolment token)")
    if token and not url:
        raise click.UsageError("--token needs --dock-url (or dock.url in the configuration)")
    if url and not url.lower().startswith("https://"):
        raise click.BadParameter(
            f"must start with https:// (a dock serves TLS only; got {url!r})",
            param_hint="--dock-url",
        )
    if dock_key is not None and not token:
        raise click.UsageError("--dock-key is only used when enrolling (--token)")
    return url


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


def _dock_fingerprint(dock_key: str | None) -> str | None:
    """--dock-key as `bwv dock serve` prints it (64 hex digits; or the key itself in hex)."""
    raw = (dock_key or "").strip().lower().removeprefix("sha256:")
    if len(raw) == 64 and all(c in "0123456789abcdef" for c in raw):
        return raw
    return None


def _expected_dock_key(dock_key: str | None) -> bytes | None:
    """The dock key given as a file with --dock-key, checked; None if none was given (or a
    fingerprint was)."""
    if dock_key is None or _dock_fingerprint(dock_key) is not None:
        return None
    try:
        return bytes(load_dock_public_key(Path(dock_key)))
    except IdentityError as exc:
        raise _fail(f"refusing --dock-key: {exc}") from None
    except OSError as exc:
        raise _fail(
            f"refusing --dock-key: {dock_key}: {exc.strerror} (give the dock's key file, or "
            "the 64 hex digits `bwv dock serve` prints)"
        ) from None


def _witness_keys(given: tuple[str, ...], quorum: int) -> tuple[str, ...]:
    """--witness-key values (a vkey, or a file of vkey lines), each checked."""
    from dock.log_proof import WitnessKeysError, WitnessPolicy, read_witness_keys

    vkeys: list[str] = []
    try:
        for value in given:
            value = value.strip()
            if value.count("+") < 2 and Path(value).is_file():
                vkeys += read_witness_keys(Path(value))
            else:
                vkeys.append(value)
        vkeys = list(dict.fromkeys(vkeys))
        if vkeys:
            WitnessPolicy(tuple(vkeys), min(quorum, len(vkeys))).check()
    except WitnessKeysError as exc:
        raise click.BadParameter(
            f"{exc} (give the witness's verifier key as `bwv witness vkey` prints it, or a "
            "file of them)",
            param_hint="--witness-key",
        ) from None
    if vkeys and quorum > len(vkeys):
        raise click.BadParameter(
            f"keys.witness_quorum is {quorum}, but only {len(vkeys)} witness key(s) given",
            param_hint="--witness-key",
        )
    return tuple(vkeys)


def _existing_key_id(key_path: Path) -> str:
    try:
        return key_id_of(load_public_key(public_key_path(key_path)))
    except (IdentityError, OSError):
        return "unknown"


def _kept_identity(
    cfg: Config, key_path: Path, token: str | None, force: bool, key_store: str = FILE_STORE
) -> DeviceKey | None:
    """The key made before, to enrol as it is; None when a new one is to be made. Without
    --token or --force an existing key is a refusal: it is never replaced silently."""
    if not os.path.lexists(key_path) or force:
        return None
    if not token:
        raise _fail(
            f"this camera already has a device key ({key_path}, key id "
            f"{_existing_key_id(key_path)}); not replacing it. To enrol it at a dock, "
            "run again with --token (the key is kept); to replace it, run again with "
            "--force: the old key is moved aside, never deleted."
        )
    try:
        kept = open_device_key(key_path, cfg.device_id, cfg.keys.tpm_tcti)
    except IdentityError as exc:
        raise _fail(
            f"cannot use the device key made before: {exc}; to replace it, run again "
            "with --force (the old key is moved aside, never deleted)"
        ) from None
    if kept.store != key_store:
        kept.close()
        raise _fail(
            f"this camera's device key is {describe(kept)}, not in the {key_store} store "
            f"asked for: run again with --key-store {kept.store} to enrol it, or with "
            "--force to replace it (the old key is moved aside, never deleted)"
        )
    return kept


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


def _check_can_change(req: _Request, daemon: DaemonStatus) -> None:
    """Refuse, changing nothing, if the daemon holds the key or a file cannot be written."""
    if req.force and daemon.running:
        raise _fail(
            f"the bwv daemon is running ({daemon.detail}): stop it before replacing "
            "the key (sudo systemctl stop bwv)"
        )
    targets = [req.key_path, req.agency_path] + ([req.dock_path] if req.enrolment else [])
    problems = [p for p in (_writable_problem(t) for t in targets) if p]
    for old in (outbox_dir(req.cfg), chain_state_path(req.cfg)):
        if req.force and os.path.lexists(old):
            problems += [p for p in (_writable_problem(old),) if p]
    if problems:
        raise _fail("nothing was changed:\n  " + "\n  ".join(problems))


def _check_request(
    config_path: Path,
    agency_pub: Path,
    dock_url: str | None,
    token: str | None,
    dock_key: str | None,
    force: bool,
    trust_first_dock: bool = False,
    witness_key: tuple[str, ...] = (),
    key_store: str = FILE_STORE,
) -> _Request:
    """Everything checked, in the order a technician fixes it: the options, the agency key,
    --dock-key, an existing device key."""
    cfg = load_config(config_path)
    k = cfg.keys
    key_path = Path(k.device_key)
    token = _read_token(token)
    url = _dock_url(cfg, dock_url, token, dock_key)
    agency_raw = _check_agency_key(agency_pub)
    expected_dock = _expected_dock_key(dock_key)
    fingerprint = _dock_fingerprint(dock_key)
    if token and dock_key is None and not trust_first_dock:
        raise click.UsageError(
            "say which dock to trust: --dock-key KEY (the dock key `bwv dock serve` prints, "
            "or its dock.pub file), or --trust-first-dock to take whichever dock answers "
            "(selftest will warn about it)"
        )
    if trust_first_dock and dock_key is not None:
        raise click.UsageError("--trust-first-dock and --dock-key: give only one")
    return _Request(
        cfg=cfg,
        config_path=config_path,
        key_path=key_path,
        agency_path=Path(k.agency_public_key),
        dock_path=Path(k.dock_public_key),
        agency_raw=agency_raw,
        enrolment=(
            Enrolment(url, token, expected_dock, trust_first_dock, fingerprint)
            if url and token
            else None
        ),
        force=force,
        kept=_kept_identity(cfg, key_path, token, force, key_store),
        witness_keys=_witness_keys(witness_key, k.witness_quorum),
        key_store=key_store,
    )


# -- the changes, in order ----------------------------------------------------------------------


def _device_identity(req: _Request) -> DeviceKey:
    """The key made before (a retry of the enrolment), or a new one."""
    if req.kept is None and req.key_store == TPM_STORE:
        return make_tpm_key(req.cfg, req.key_path)
    if req.kept is None:
        return DeviceKey(make_key(req.cfg, req.key_path), None, FILE)
    click.echo(
        f"note: keeping this camera's device key (key id {req.kept.key_id}); enrolling it", err=True
    )
    return req.kept


def _pin_agency_key(req: _Request, identity: DeviceKey) -> None:
    try:
        replaced = pin(req.agency_path, req.agency_raw)
    except OSError as exc:
        raise _fail(
            f"the device key is in place ({identity.key_id}) but the agency key could "
            f"not be pinned at {req.agency_path}: {exc.strerror or exc}"
        ) from None
    if replaced:
        click.echo(f"note: replaced the agency key pinned before (key id {replaced})", err=True)


def _pin_witnesses(req: _Request) -> None:
    """Pin the witnesses whose cosignature a delete waits for (keys.witnesses)."""
    from crypto.durable import write_atomic

    path = Path(req.cfg.keys.witnesses)
    if not req.witness_keys:
        if not path.exists():
            click.echo(
                "witnesses:      none pinned: unwitnessed (footage is deleted on the dock's "
                "receipt alone; --witness-key pins one)"
            )
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, "".join(v + "\n" for v in req.witness_keys).encode())
    except OSError as exc:
        raise _fail(f"cannot pin the witness keys at {path}: {exc.strerror or exc}") from None
    names = ", ".join(v.split("+", 1)[0] for v in req.witness_keys)
    click.echo(f"witnesses:      {names}   (pinned at {path})")


def _print_identity(req: _Request, identity: DeviceKey) -> None:
    click.echo(f"device id:      {identity.device_id}")
    click.echo(f"device key id:  {identity.key_id}   (public key: {public_key_path(req.key_path)})")
    click.echo(f"device key:     {describe(identity)}")
    click.echo(f"agency key id:  {key_id_of(req.agency_raw)}   (pinned at {req.agency_path})")


def _pin_tsa(req: _Request, pem: bytes) -> None:
    target = Path(req.cfg.keys.tsa_ca)
    try:
        digest = pin_tsa_ca(target, pem)
    except OSError as exc:
        raise _fail(f"the TSA CA could not be pinned at {target}: {exc.strerror or exc}") from None
    click.echo(f"TSA CA:         {digest}   (SHA-256 fingerprint; pinned at {target})")


def _enrol(req: _Request, enrolment: Enrolment, identity: DeviceKey) -> None:
    """Enrol at the dock; note it when the camera ships to another dock than this one. A TPM
    key is enrolled with the TPM's proof that it holds it (attestation)."""
    enrol_and_pin(identity.signer, enrolment, req.dock_path, attestor=identity.attestor)
    url, configured = enrolment.url, req.cfg.dock.url
    if url != configured:
        click.echo(
            f"note: the camera ships to dock.url of {req.config_path} "
            f"({configured or 'not set'}), not to {url}: set dock.url = "
            f'"{url}" there',
            err=True,
        )


def _say_not_enrolled(req: _Request) -> None:
    click.echo("dock:           not enrolled (no --token): footage cannot ship until it is")
    if req.force and req.dock_path.exists():
        click.echo(
            f"note: {req.dock_path} still pins a dock, which does not know this new key: "
            "enrol it there (with a new device_id if the old one was enrolled)",
            err=True,
        )


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
    metavar="KEY|FILE",
    help="The dock's fingerprint as `bwv dock serve` prints it (64 hex digits), or its "
    "dock.pub file: the camera talks only to the dock that holds it (its TLS certificate and "
    "its signed answers).",
)
@click.option(
    "--trust-first-dock",
    is_flag=True,
    help="No --dock-key: pin whichever dock answers (trust on first use). Compare the "
    "printed key id with the dock's; `bwv selftest` warns about it.",
)
@click.option(
    "--tsa-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The time-stamping authority's CA certificate (PEM), pinned at keys.tsa_ca: a "
    "clock correction over clock.max_step_s is applied only with a token it vouches for.",
)
@click.option(
    "--witness-key",
    "witness_key",
    multiple=True,
    metavar="VKEY|FILE",
    help="A witness's verifier key (as `bwv witness vkey` prints it), or a file of them, "
    "pinned at keys.witnesses (repeatable): the camera deletes footage only once "
    "keys.witness_quorum of them have cosigned the dock's checkpoint that holds it.",
)
@click.option(
    "--key-store",
    type=click.Choice(KEY_STORES),
    default=FILE_STORE,
    show_default=True,
    help="Where a new device key is made: 'tpm' inside the camera's TPM 2.0 module (ECDSA "
    "P-256, cannot be copied; the dock enrols it only with the TPM's attestation; "
    "keys.tpm_tcti says where the TPM is), 'file' a 0600 Ed25519 key file.",
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
    dock_key: str | None,
    trust_first_dock: bool,
    witness_key: tuple[str, ...],
    force: bool,
    tsa_ca: Path | None = None,
    key_store: str = FILE_STORE,
) -> None:
    """Make this camera's key, pin the agency's key and, with --token, enrol at the dock.

    Run it as the service user (sudo -u bwv ...). It prints the device id and the key ids to
    compare at the dock, never key bytes. A camera that has a key keeps it: with --token
    that key is enrolled (a retry after a wrong token needs no --force); without --token
    the command refuses, unless --force replaces the key.
    """
    req = _check_request(
        config_path,
        agency_pub,
        dock_url,
        token,
        dock_key,
        force,
        trust_first_dock,
        witness_key,
        key_store,
    )
    try:
        tsa_pem = read_tsa_ca(tsa_ca) if tsa_ca is not None else None
        daemon = read_daemon_status(req.cfg)
        _check_can_change(req, daemon)
    except BaseException:
        if req.kept is not None:
            req.kept.close()
        raise
    with _device_identity(req) as identity:
        _provision(req, identity, tsa_pem, daemon)


def _provision(
    req: _Request, identity: DeviceKey, tsa_pem: bytes | None, daemon: DaemonStatus
) -> None:
    _pin_agency_key(req, identity)
    _print_identity(req, identity)
    _pin_witnesses(req)
    if tsa_pem is not None:
        _pin_tsa(req, tsa_pem)
    if req.enrolment is not None:
        _enrol(req, req.enrolment, identity)
    else:
        _say_not_enrolled(req)
    if daemon.running:
        click.echo(
            "the daemon is running: restart it to use the new keys (sudo systemctl restart bwv)",
            err=True,
        )
    sys.stdout.flush()

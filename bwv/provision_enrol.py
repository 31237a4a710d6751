"""``bwv provision --token``: enrol the camera's key at the dock and pin the dock's key.

With ``--dock-key`` the dock must hold that key (its TLS certificate and its signed answers);
with ``--trust-first-dock`` instead, the key of whichever dock answers is taken on first use,
its key id printed for the technician to compare with the dock's, and a marker left beside the
pinned key (``FIRST_USE_SUFFIX``) for ``bwv selftest`` to warn about. The token is never
printed; a refusal says what to do next, and that the keys made so far stay in place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from bwv.errors import CannotCheck
from crypto.durable import write_atomic
from crypto.identity import IdentityError, key_id_of, load_public_key
from crypto.records import Signer

PUBLIC_MODE = 0o644
FIRST_USE_SUFFIX = ".first-use"  # beside the pinned dock key: it was taken on first use


@dataclass(frozen=True)
class Enrolment:
    """Where and how to enrol: the dock's URL, the one-time token, the key it must have."""

    url: str
    token: str
    expected_dock_key: bytes | None
    trust_first_dock: bool = False
    dock_fingerprint: str | None = None  # --dock-key as `bwv dock serve` prints it

    @property
    def pinned(self) -> bool:
        return self.expected_dock_key is not None or self.dock_fingerprint is not None


def pin(path: Path, raw: bytes) -> str | None:
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


def enroll_error(exc: Exception, url: str, expected: bool) -> click.ClickException:
    """The user's line for a failed enrolment: the token, the device id, or the dock."""
    from dock.client import DockError, DockRefused
    from dock.protocol import Code

    if isinstance(exc, DockRefused) and exc.code == Code.BAD_TOKEN:
        why = (
            "it was issued for another device id"
            if exc.status == 403
            else "unknown, already used or expired"
        )
        return CannotCheck(
            f"the dock at {url} refused the enrollment token: {why}; ask for a new one "
            "(`bwv dock token --device ID` on the dock)"
        )
    if isinstance(exc, DockRefused):
        hint = {
            Code.ENROLLED: "this device id is enrolled at the dock already (with another key): "
            "give the camera a new device_id",
            Code.REVOKED: "this device id was revoked: give the camera a new device_id",
            Code.ATTESTATION: "a key held in a TPM is enrolled only on its TPM's attestation, "
            "vouched for by a TPM maker's CA the dock trusts (`bwv dock init --tpm-ca`, "
            "technician's guide, section 9)",
        }.get(exc.code or "", "")
        msg = f"the dock at {url} refused the enrolment ({exc.status}): {exc.detail}"
        return CannotCheck(msg + (f"; {hint}" if hint else ""))
    if not isinstance(exc, DockError):  # the TPM's own words
        return CannotCheck(f"cannot enrol at {url}: the TPM failed: {exc}")
    msg = f"cannot enrol at {url}: {exc}"
    if expected and ("not signed" in str(exc) or "pinned dock key" in str(exc)):
        msg += " (that dock does not hold the key in --dock-key: wrong dock, or wrong key)"
    return CannotCheck(msg)


def _enrolled_dock_key(
    identity: Signer, how: Enrolment, attestor: Any | None = None
) -> tuple[bytes, str]:
    """Enrol ``identity`` at the dock; the dock's public key and key id, checked."""
    from dock.client import DockError, enroll
    from tpm.connect import TpmError  # a key in a TPM that cannot sign or attest

    try:
        got = enroll(
            how.url,
            identity.device_id,
            identity,
            identity.public_key,
            how.token,
            wall_clock=lambda: time.time_ns() // 1000,
            expected_dock_key=how.expected_dock_key,
            dock_fingerprint=how.dock_fingerprint,
            trust_first_dock=how.trust_first_dock,
            timeout=15.0,
            attestor=attestor,
        )
    except (DockError, TpmError) as exc:
        why = enroll_error(exc, how.url, how.pinned).message
        raise CannotCheck(
            f"{why}\nThe device key ({identity.key_id}) and the agency key are in "
            "place but the camera is NOT enrolled. Fix the cause and run this "
            "again: the same key is enrolled (no --force needed)."
        ) from None
    if got.device_id != identity.device_id or got.key_id != identity.key_id:
        raise CannotCheck(
            f"the dock enrolled another device or key than this one: {got.device_id} / {got.key_id}"
        )
    if len(got.dock_public_key) != 32:
        raise CannotCheck("the dock answered with a malformed key; nothing pinned")
    if got.key_store == "tpm":
        click.echo(f"enrolled as:    key held in a TPM, attested by {got.attested_by}")
    return got.dock_public_key, got.dock_key_id


def enrol_and_pin(
    identity: Signer, how: Enrolment, dock_path: Path, attestor: Any | None = None
) -> None:
    """Enrol at the dock, pin its key at ``dock_path`` and print its key id, and how it
    was checked (against --dock-key, or taken on first use). ``attestor``: a TPM key's proof
    that the TPM holds it (``tpm.attest``), which the dock requires of such a key."""
    dock_key, dock_key_id = _enrolled_dock_key(identity, how, attestor)
    try:
        replaced = pin(dock_path, dock_key)
    except OSError as exc:
        raise CannotCheck(
            f"enrolled, but the dock key could not be pinned at {dock_path}: {exc.strerror or exc}"
        ) from None
    if replaced:
        click.echo(f"note: replaced the dock key pinned before (key id {replaced})", err=True)
    _mark_first_use(dock_path, not how.pinned)
    checked = (
        "checked against --dock-key"
        if how.pinned
        else (
            "TAKEN ON FIRST USE (--trust-first-dock): compare it with the dock key id "
            "`bwv dock serve` shows on the dock"
        )
    )
    click.echo(f"dock key id:    {dock_key_id}   (pinned at {dock_path}; {checked})")


def _mark_first_use(dock_path: Path, first_use: bool) -> None:
    """Leave (or clear) the marker that says the pinned dock key was taken on first use."""
    marker = dock_path.with_name(dock_path.name + FIRST_USE_SUFFIX)
    try:
        if first_use:
            write_atomic(marker, b"taken on first use by bwv provision\n", mode=PUBLIC_MODE)
        else:
            marker.unlink(missing_ok=True)
    except OSError as exc:
        click.echo(f"note: could not update {marker}: {exc.strerror or exc}", err=True)

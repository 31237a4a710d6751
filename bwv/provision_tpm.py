"""``bwv provision --key-store tpm``: the device key made inside the camera's TPM.

The key is an ECDSA P-256 key created by the TPM with fixedTPM | fixedParent: its private
part never exists outside the chip, so an image of the SD card holds nothing to sign with.
Beside it the TPM keeps an NV monotonic counter that numbers every chain record (the
evidence format's ``counter``): a restored SD-card snapshot cannot take the counter back.

On the card there is only a reference (``capture.device_key.TpmKeyRef``, at
``keys.device_key``, mode 0600) and the public key (``device.key.pub``, 130 hex digits).
A replaced TPM key (``--force``) is evicted from the TPM after its public key and footage were
moved aside (footage stays verifiable with the public key); the counter is never deleted or
set back: a new key goes on counting from where the old one stopped.
"""

from __future__ import annotations

from pathlib import Path

import click

from bwv.errors import CannotCheck
from bwv.provision_aside import KEY_DIR_MODE, replace_old_identity, utc_stamp
from capture.config import Config
from capture.device_key import TPM, DeviceKey, tpm_software
from capture.device_key import make_tpm_key as make_key_in_tpm
from crypto.identity import IdentityError

FILE_STORE, TPM_STORE = "file", TPM
KEY_STORES = (FILE_STORE, TPM_STORE)


def make_tpm_key(cfg: Config, key_path: Path) -> DeviceKey:
    """A new device key in the TPM, its reference at ``key_path`` and its ``.pub``, after
    moving aside what an old key left; the key opened, ready to sign and to attest."""
    try:
        tpm_software()  # missing: said before anything is moved aside
        for line in replace_old_identity(cfg, key_path, utc_stamp()):
            click.echo(f"moved aside: {line}")
        if not key_path.parent.exists():
            key_path.parent.mkdir(parents=True, mode=KEY_DIR_MODE)
        made = make_key_in_tpm(key_path, cfg.device_id, cfg.keys.tpm_tcti)
    except IdentityError as exc:
        raise CannotCheck(f"--key-store tpm: {exc}") from None
    except OSError as exc:
        raise CannotCheck(f"cannot make the device key: {exc.strerror or exc}") from None
    if made.evicted:
        click.echo(
            "note: the TPM's previous device key was evicted (its public key was moved aside)"
        )
    return made.key


def describe(key: DeviceKey) -> str:
    """How the technician is told where the key is."""
    if key.store == TPM_STORE:
        return "held in the TPM (ECDSA P-256; it cannot be copied off the camera)"
    return "in a file (Ed25519; 0600)"

"""The simulator's throwaway identities, kept in its state directory.

A real device makes its key at provisioning and pins the agency's and the dock's public
keys; the agency's private key never exists on a device. The simulator stands in for the
agency too, so it keeps a stand-in agency key pair, to decrypt what it recorded into
playable copies; it keeps it outside the simulated device's keys (``agency/`` beside the
device's ``keys/``, or wherever the caller says: a raid's ``OUT/agency/``), as an agency
would. Nothing here is ever a real agency's key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nacl.public import PrivateKey, PublicKey

from crypto.durable import write_atomic
from crypto.identity import (
    DeviceIdentity,
    IdentityError,
    load_agency_private_key,
    load_agency_public_key,
    public_key_path,
    write_secret_key,
)

KEYS_DIR = "keys"
AGENCY_DIR = "agency"  # the stand-in agency's keys: not the device's
DEVICE_KEY = "device.key"
AGENCY_KEY = "agency.key"
AGENCY_PUB = "agency.pub"


@dataclass(frozen=True)
class SimKeys:
    identity: Any  # crypto.records.Signer: a DeviceIdentity, or the TPM's key
    device_pub_path: Path
    agency_public: PublicKey
    agency_private_path: Path
    chain_state_path: Path
    counter: Any | None = None  # the TPM's NV counter (None: a key in a file)
    attestor: Any | None = None  # the TPM's proof that it holds the key, for enrolment
    key_store: str = "file"
    tpm_ca_certs: tuple[Path, ...] = ()  # the simulated TPM maker's CA, for the sim's dock
    device_key: Any | None = None  # capture.device_key.DeviceKey (its TPM connection)

    def close(self) -> None:
        if self.device_key is not None:
            self.device_key.close()

    def agency_private(self) -> PrivateKey:
        return load_agency_private_key(self.agency_private_path)


def keys_dir(state_dir: Path) -> Path:
    return Path(state_dir) / KEYS_DIR


def agency_dir_of(state_dir: Path) -> Path:
    """Where the stand-in agency keeps its keys for a simulator's state folder."""
    return Path(state_dir) / AGENCY_DIR


def sim_keys(
    state_dir: Path,
    device_id: str,
    agency_dir: Path | None = None,
    tpm_tcti: str | None = None,
    tpm_ca_certs: tuple[Path, ...] = (),
) -> SimKeys:
    """Load the simulated device's keys from ``state_dir``, making them the first time; with
    ``tpm_tcti`` the device key is made in (and used from) that TPM (a swtpm).

    A key file there that cannot be used raises ``IdentityError``: one line naming the file,
    and how to start afresh."""
    agency = agency_dir or agency_dir_of(state_dir)
    try:
        keys = _sim_keys(Path(state_dir), device_id, agency, tpm_tcti)
        return replace(keys, tpm_ca_certs=tuple(tpm_ca_certs))
    except OSError as exc:
        problem = f"{exc.filename or keys_dir(state_dir)}: {exc.strerror or exc}"
    except IdentityError as exc:
        problem = str(exc)
    raise IdentityError(
        f"{problem} (one of the simulator's own keys, in {keys_dir(state_dir)} or {agency}: "
        "remove those folders to start with new ones)"
    )


def _device_key(key_path: Path, device_id: str, tpm_tcti: str | None) -> Any:
    """A ``capture.device_key.DeviceKey``: the file key (made the first time), or the key in
    the TPM behind ``tpm_tcti`` (made there the first time, as provisioning does)."""
    from capture.device_key import FILE, DeviceKey, make_tpm_key, open_device_key

    if tpm_tcti is None:
        return DeviceKey(DeviceIdentity.load_or_generate(key_path, device_id), None, FILE)
    if not key_path.exists():
        return make_tpm_key(key_path, device_id, tpm_tcti).key
    return open_device_key(key_path, device_id, tpm_tcti)


def _sim_keys(state_dir: Path, device_id: str, agency_dir: Path, tpm_tcti: str | None) -> SimKeys:
    d = keys_dir(state_dir)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _device_key(d / DEVICE_KEY, device_id, tpm_tcti)
    agency_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    agency_sk_path, agency_pk_path = agency_dir / AGENCY_KEY, agency_dir / AGENCY_PUB
    for name in (AGENCY_KEY, AGENCY_PUB):  # an earlier version kept them with the device's
        if (d / name).exists() and not (agency_dir / name).exists():
            (d / name).replace(agency_dir / name)
    if not agency_sk_path.exists():
        sk = PrivateKey.generate()
        write_secret_key(agency_sk_path, bytes(sk))
        write_atomic(agency_pk_path, bytes(sk.public_key).hex().encode() + b"\n")
    agency_public = load_agency_public_key(agency_pk_path)
    if load_agency_private_key(agency_sk_path).public_key != agency_public:
        raise IdentityError(f"{agency_pk_path}: is not the public key of {agency_sk_path}")
    return SimKeys(
        identity=key.signer,
        device_pub_path=public_key_path(d / DEVICE_KEY),
        agency_public=agency_public,
        agency_private_path=agency_sk_path,
        chain_state_path=state_dir / "chain_state.json",
        counter=key.counter,
        attestor=key.attestor,
        key_store=key.store,
        device_key=key,
    )

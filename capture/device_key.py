"""The device's signing key, wherever it is kept: in a file (Ed25519) or in a TPM (ECDSA P-256).

``keys.device_key`` names the key either way. For a file key it holds the Ed25519 seed
(``crypto.identity``). For a key made inside a TPM by ``bwv provision --key-store tpm`` it
holds no secret at all, only where the key and the counter are in the TPM, one line::

    bwv-tpm-key handle=0x81010042 counter=0x01500042

The private key never leaves the TPM (it was made there with fixedTPM | fixedParent); the
counter is the TPM's monotonic NV counter that every chain record is numbered by (the
evidence format's ``counter``). ``device.key.pub`` beside it holds the public key either way
(64 hex digits for Ed25519, 130 for a P-256 point), and the key loaded must be that one.

``tpm`` (tpm2-pytss) is imported only when a TPM key is opened: a camera without a TPM, the
simulator and the dock never load it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.durable import write_atomic
from crypto.identity import (
    SECRET_MODE,
    DeviceIdentity,
    IdentityError,
    load_device_public_key,
    public_key_path,
)

FILE, TPM = "file", "tpm"
TPM_REF_PREFIX = b"bwv-tpm-key "
_REF = re.compile(rb"bwv-tpm-key handle=0x([0-9a-f]{8}) counter=0x([0-9a-f]{8})\n\Z")


@dataclass(frozen=True)
class TpmKeyRef:
    """Where a TPM-held device key and its counter are: persistent handle and NV index."""

    handle: int
    counter_index: int

    def encode(self) -> bytes:
        return b"bwv-tpm-key handle=0x%08x counter=0x%08x\n" % (self.handle, self.counter_index)

    @classmethod
    def parse(cls, data: bytes, where: Path | str) -> TpmKeyRef:
        m = _REF.match(data)
        if m is None:
            raise IdentityError(
                f"{where}: not a TPM key reference (expected one line: "
                "bwv-tpm-key handle=0x... counter=0x...)"
            )
        return cls(int(m.group(1), 16), int(m.group(2), 16))


@dataclass
class DeviceKey:
    """The device's signer, its chain-record counter (a TPM's; None for a file key), and
    which kind of store holds it. ``close`` lets go of the TPM connection."""

    signer: Any  # crypto.records.Signer: DeviceIdentity or tpm.signer.TpmSigner
    counter: Any | None  # crypto Counter: next() -> int
    store: str  # FILE or TPM
    _close: Callable[[], None] | None = field(default=None, repr=False)
    attestor: Any | None = None  # a TPM key's proof of where it lives (dock.client.Attestor)

    @property
    def device_id(self) -> str:
        return str(self.signer.device_id)

    @property
    def key_id(self) -> str:
        return str(self.signer.key_id)

    @property
    def public_key(self) -> bytes:
        return bytes(self.signer.public_key)

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> DeviceKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tpm_key_ref(key_path: Path) -> TpmKeyRef | None:
    """The TPM reference at ``key_path``; None when the file there is (or would be) a file
    key. IdentityError for a reference that cannot be read."""
    try:
        st = os.lstat(key_path)
    except FileNotFoundError:
        raise IdentityError(f"{key_path}: no device key file: run `bwv provision`") from None
    except OSError as exc:
        raise IdentityError(f"{key_path}: cannot read the device key ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode) or st.st_size > 4096:
        return None  # crypto.identity says what is wrong with it
    try:
        with open(key_path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise IdentityError(f"{key_path}: cannot read the device key ({exc.strerror})") from None
    if not head.startswith(TPM_REF_PREFIX):
        return None
    return TpmKeyRef.parse(head, key_path)


def open_device_key(key_path: Path, device_id: str, tcti: str = "") -> DeviceKey:
    """The device key at ``key_path``, file or TPM; IdentityError (one line, no secret) if it
    cannot be used: missing, too open, malformed, no TPM, or not the key in ``.pub``."""
    key_path = Path(key_path)
    ref = tpm_key_ref(key_path)
    if ref is None:
        return DeviceKey(DeviceIdentity.load(key_path, device_id), None, FILE)
    key = _open_tpm_key(ref, device_id, tcti)
    try:
        _check_pinned(key, key_path)
    except IdentityError:
        key.close()
        raise
    return key


def open_configured_key(cfg: Any) -> DeviceKey:
    """The key a ``capture.config.Config`` names (``keys.device_key``, ``keys.tpm_tcti``)."""
    return open_device_key(Path(cfg.keys.device_key), cfg.device_id, cfg.keys.tpm_tcti)


def _check_pinned(key: DeviceKey, key_path: Path) -> None:
    pub = public_key_path(key_path)
    if not pub.exists():
        raise IdentityError(f"{pub}: missing: the TPM key's public key is kept there")
    if load_device_public_key(pub) != key.public_key:
        raise IdentityError(f"{pub}: does not match the key in the TPM ({key_path})")


@dataclass(frozen=True)
class MadeTpmKey:
    key: DeviceKey  # opened, ready to sign, count and attest
    evicted: bool  # a device key was at the TPM's handle before, and is gone now


def make_tpm_key(key_path: Path, device_id: str, tcti: str = "") -> MadeTpmKey:
    """A new device key made in the TPM (replacing one at its handle) with the counter if
    the TPM has none (one there is kept: it is never set back); its reference at
    ``key_path`` (0600) and its public key beside it; opened. IdentityError (one line) if the
    TPM cannot, or the files cannot be written (provisioning; the simulator)."""
    tpm = tpm_software()
    try:
        made = tpm.make_device_key(tcti or None, tpm.KEY_HANDLE, tpm.COUNTER_INDEX)
    except tpm.TpmError as exc:
        raise IdentityError(f"cannot make the device key in the TPM: {exc}") from None
    try:
        write_atomic(key_path, TpmKeyRef(tpm.KEY_HANDLE, tpm.COUNTER_INDEX).encode(), SECRET_MODE)
        write_atomic(public_key_path(key_path), made.public_key.hex().encode() + b"\n")
    except OSError as exc:
        raise IdentityError(
            f"made the key in the TPM, but cannot write {key_path}: {exc.strerror or exc}"
        ) from None
    return MadeTpmKey(open_device_key(key_path, device_id, tcti), made.evicted)


def tpm_software() -> Any:
    """``tpm.device``, or IdentityError saying the TPM software is missing."""
    try:
        import tpm.device
    except ImportError as exc:
        raise IdentityError(
            f"the TPM software is not installed (tpm2-pytss: {exc}); run install.sh "
            "(it installs tpm2-tools and tpm2-pytss)"
        ) from None
    return tpm.device


def _open_tpm_key(ref: TpmKeyRef, device_id: str, tcti: str) -> DeviceKey:
    tpm = tpm_software()
    TpmError, open_device_tpm = tpm.TpmError, tpm.open_device_tpm
    try:
        tpm = open_device_tpm(device_id, ref.handle, ref.counter_index, tcti or None)
    except TpmError as exc:
        raise IdentityError(f"cannot use the device key in the TPM: {exc}") from None
    return DeviceKey(tpm.signer, tpm.counter, TPM, tpm.close, tpm.attestor)

"""The device's TPM as the rest of bwv sees it: make the key and counter once (provisioning),
then open them together (the daemon, the self-test, the simulator).

One ESAPI context serves the signer and the counter; the recorder's thread and the shipper's
both sign with it, so every use goes through one lock (an ESAPI context is not thread-safe).
Every TPM or TSS failure comes out as ``tpm.connect.TpmError`` with a message a person can act
on (the signer, the counter and the attestor raise it themselves; what is made here through
the bare TPM commands is turned into it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tpm.attest import TpmAttestor
from tpm.connect import TpmError, open_tpm
from tpm.counter import COUNTER_INDEX, TpmCounter, define_counter, nv_index
from tpm.signer import (
    KEY_HANDLE,
    TpmSigner,
    create_device_key,
    load_signer,
    persistent,
)

__all__ = ["COUNTER_INDEX", "KEY_HANDLE", "MadeKey", "TpmDevice", "TpmError"]


@contextmanager
def _as_tpm_error(what: str) -> Iterator[None]:
    """A bare TSS error from the TPM commands as a ``TpmError`` naming ``what`` was asked."""
    try:
        from tpm2_pytss import TSS2_Exception
    except ImportError:  # open_tpm says what to install, as a TpmError
        yield
        return
    try:
        yield
    except TSS2_Exception as exc:
        raise TpmError(f"{what}: the TPM refused ({exc})") from None


@dataclass(frozen=True)
class MadeKey:
    public_key: bytes  # the 65-byte P-256 point
    evicted: bool  # a device key was at the handle before, and is gone now
    counter: int  # the counter's value now (it is never reset)


def make_device_key(
    tcti: str | None, handle: int = KEY_HANDLE, counter_index: int = COUNTER_INDEX
) -> MadeKey:
    """A new device key in the TPM at ``handle`` (replacing one there), and the counter at
    ``counter_index`` defined if it is not yet (an existing one is kept as it is)."""
    with _as_tpm_error("making the device key"), open_tpm(tcti) as esapi:
        evicted = persistent(esapi, handle) is not None
        public_key = create_device_key(esapi, handle, replace=True)
        if nv_index(esapi, counter_index) is None:
            define_counter(esapi, counter_index)
        value = TpmCounter(esapi, counter_index).value()
    return MadeKey(public_key, evicted, value)


@dataclass
class LockedSigner:
    """``crypto.records.Signer`` over the TPM key, one caller at a time."""

    inner: TpmSigner = field(repr=False)
    lock: Any = field(repr=False)

    @property
    def device_id(self) -> str:
        return self.inner.device_id

    @property
    def key_id(self) -> str:
        return self.inner.key_id

    @property
    def public_key(self) -> bytes:
        return self.inner.public_key

    @property
    def suite(self) -> str:
        return self.inner.suite

    def sign(self, message: bytes) -> bytes:
        with self.lock:
            return self.inner.sign(message)


@dataclass
class LockedCounter:
    """``crypto`` ``Counter`` over the TPM's NV counter, one caller at a time."""

    inner: TpmCounter = field(repr=False)
    lock: Any = field(repr=False)

    def next(self) -> int:
        with self.lock:
            return self.inner.next()

    def value(self) -> int:
        with self.lock:
            return self.inner.value()


@dataclass
class TpmDevice:
    signer: LockedSigner
    counter: LockedCounter
    attestor: TpmAttestor
    close: Callable[[], None]


def open_device_tpm(
    device_id: str,
    handle: int = KEY_HANDLE,
    counter_index: int = COUNTER_INDEX,
    tcti: str | None = None,
) -> TpmDevice:
    """The device key and counter in the TPM, checked to be there; ``close`` when done."""
    with _as_tpm_error("opening the device key"):
        signer = load_signer(device_id, tcti, handle)
    lock = threading.Lock()
    counter = TpmCounter(signer.esapi, counter_index)
    try:
        counter.value()  # it is there (NoCounter) and answers
    except TpmError:
        signer.close()
        raise
    return TpmDevice(
        LockedSigner(signer, lock),
        LockedCounter(counter, lock),
        TpmAttestor(tcti, handle),
        signer.close,
    )

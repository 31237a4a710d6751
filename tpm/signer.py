"""The device key in the TPM: ECDSA P-256, made inside the TPM (sensitiveDataOrigin), bound to
it (fixedTPM, fixedParent: TPM2_Duplicate is refused, the private part never leaves the chip
in the clear) and kept at a persistent handle under a storage primary of our own.

:class:`TpmSigner` is a ``crypto.records.Signer``: ``sign(message)`` is TPM2_Sign over
SHA-256(message), returned as 64 bytes r‖s with s ≤ n/2 (the evidence format's low-S rule).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crypto.identity import key_id_of
from crypto.suites import ECDSA_P256 as SUITE
from crypto.suites import low_s
from tpm.connect import TpmError, open_tpm

if TYPE_CHECKING:
    from tpm2_pytss import ESAPI

PRIMARY_HANDLE = 0x81000042  # the ECC P-256 storage primary (an SRK of our own)
KEY_HANDLE = 0x81010042  # the device key


def storage_template() -> Any:
    from tpm2_pytss import TPM2B_PUBLIC, TPMA_OBJECT

    attrs = (
        TPMA_OBJECT.FIXEDTPM
        | TPMA_OBJECT.FIXEDPARENT
        | TPMA_OBJECT.SENSITIVEDATAORIGIN
        | TPMA_OBJECT.USERWITHAUTH
        | TPMA_OBJECT.RESTRICTED
        | TPMA_OBJECT.DECRYPT
        | TPMA_OBJECT.NODA
    )
    return TPM2B_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=attrs)


def device_key_template(attrs: int | None = None) -> Any:
    """ECDSA P-256 with SHA-256, a signing key only; ``attrs`` overrides the attributes
    (the tests make a key without fixedTPM to see it refused)."""
    from tpm2_pytss import TPM2B_PUBLIC, TPMA_OBJECT

    if attrs is None:
        attrs = (
            TPMA_OBJECT.FIXEDTPM
            | TPMA_OBJECT.FIXEDPARENT
            | TPMA_OBJECT.SENSITIVEDATAORIGIN
            | TPMA_OBJECT.USERWITHAUTH
            | TPMA_OBJECT.SIGN_ENCRYPT
        )
    return TPM2B_PUBLIC.parse("ecc256:ecdsa-sha256", objectAttributes=attrs)


def persistent(esapi: ESAPI, handle: int) -> Any | None:
    """The ESYS_TR of the persistent object at ``handle``, or None if there is none."""
    from tpm2_pytss import TPM2_CAP, TPM2_HT

    more, data = esapi.get_capability(TPM2_CAP.HANDLES, TPM2_HT.PERSISTENT << 24, 256)
    if handle not in list(data.data.handles):
        return None
    return esapi.tr_from_tpmpublic(handle)


def storage_primary(esapi: ESAPI) -> Any:
    """The storage primary (made and persisted at :data:`PRIMARY_HANDLE` the first time)."""
    from tpm2_pytss import ESYS_TR

    found = persistent(esapi, PRIMARY_HANDLE)
    if found is not None:
        return found
    transient, _pub, _, _, _ = esapi.create_primary(None, storage_template(), ESYS_TR.OWNER)
    try:
        return esapi.evict_control(ESYS_TR.OWNER, transient, PRIMARY_HANDLE)
    finally:
        esapi.flush_context(transient)


def point_of(public: Any) -> bytes:
    """The SEC1 uncompressed point (65 bytes) of a TPM2B_PUBLIC's ECC key."""
    ecc = public.publicArea.unique.ecc
    return b"\x04" + bytes(ecc.x).rjust(32, b"\0") + bytes(ecc.y).rjust(32, b"\0")


def create_key(esapi: ESAPI, parent: Any, template: Any) -> tuple[Any, Any]:
    """A key made under ``parent`` and loaded (transient): (ESYS_TR, TPM2B_PUBLIC)."""
    private, public, _, _, _ = esapi.create(parent, None, template)
    return esapi.load(parent, private, public), public


def create_device_key(esapi: ESAPI, handle: int = KEY_HANDLE, *, replace: bool = False) -> bytes:
    """Make the device key in the TPM and persist it at ``handle``; its 65-byte public key.
    A key already there is kept (its public key returned) unless ``replace``."""
    from tpm2_pytss import ESYS_TR

    existing = persistent(esapi, handle)
    if existing is not None:
        if not replace:
            public, _, _ = esapi.read_public(existing)
            return point_of(public)
        esapi.evict_control(ESYS_TR.OWNER, existing, handle)
    transient, public = create_key(esapi, storage_primary(esapi), device_key_template())
    try:
        esapi.evict_control(ESYS_TR.OWNER, transient, handle)
    finally:
        esapi.flush_context(transient)
    return point_of(public)


def sign_digest(esapi: ESAPI, key: Any, digest: bytes) -> bytes:
    """TPM2_Sign of a SHA-256 digest with an ECDSA key: low-S r‖s."""
    from tpm2_pytss import (
        TPM2_ALG,
        TPM2_RH,
        TPM2_ST,
        TPMT_SIG_SCHEME,
        TPMT_TK_HASHCHECK,
    )

    scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.ECDSA)
    scheme.details.any.hashAlg = TPM2_ALG.SHA256
    ticket = TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL)
    sig = esapi.sign(key, digest, scheme, ticket)
    r = bytes(sig.signature.ecdsa.signatureR).rjust(32, b"\0")
    s = bytes(sig.signature.ecdsa.signatureS).rjust(32, b"\0")
    return low_s(r + s)


@dataclass
class TpmSigner:
    """The device key in the TPM as a ``crypto.records.Signer``. Holds an open ESAPI context:
    ``close()`` (or ``with``) when done."""

    device_id: str
    public_key: bytes
    esapi: ESAPI = field(repr=False)
    handle: int = KEY_HANDLE
    suite: str = SUITE
    # the key's ESAPI handle, made once: one per signature would pile up in the context (and
    # cost a ReadPublic each) over a shift's thousands of records
    _key: Any = field(default=None, repr=False)

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        from tpm2_pytss import TSS2_Exception

        try:
            if self._key is None:
                self._key = self.esapi.tr_from_tpmpublic(self.handle)
            return sign_digest(self.esapi, self._key, hashlib.sha256(message).digest())
        except TSS2_Exception as e:
            self._key = None  # made again next time (the TPM may have been restarted)
            raise TpmError(f"the TPM did not sign with the device key ({e})") from None

    def close(self) -> None:
        self.esapi.close()

    def __enter__(self) -> TpmSigner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NoDeviceKey(TpmError):
    """The TPM has no device key at the handle (``bwv provision`` makes one)."""


def load_signer(device_id: str, tcti: str | None = None, handle: int = KEY_HANDLE) -> TpmSigner:
    """A signer with the device key already in the TPM at ``handle``. Raises
    ``tpm.connect.TpmUnavailable`` or :class:`NoDeviceKey`."""
    esapi = open_tpm(tcti)
    try:
        key = persistent(esapi, handle)
        if key is None:
            raise NoDeviceKey(f"the TPM has no device key at {handle:#x}")
        public, _, _ = esapi.read_public(key)
    except BaseException:
        esapi.close()
        raise
    return TpmSigner(device_id, point_of(public), esapi, handle)

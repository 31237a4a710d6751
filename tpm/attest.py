"""The device's side of enrollment with attestation (the dock's side: ``dock.attest``).

:class:`TpmAttestor` is the ``Attestor`` ``dock.client.enroll`` takes:

- ``begin()``: the endorsement key's certificate (NV 0x01c00002, the RSA 2048 EK's) and the
  public area of a fresh attestation key (AK: a restricted ECDSA P-256 signing key, fixedTPM,
  under our storage primary), for ``POST /v1/enroll/challenge``'s ``"tpm"`` object.
- ``finish(credential, challenge)``: TPM2_ActivateCredential of the dock's credential with the
  EK (made again from the TCG's standard template; its policy is PolicySecret(endorsement))
  and the AK, then TPM2_Certify of the device key by the AK over the challenge's 32 bytes:
  the ``"attestation"`` object of ``POST /v1/enroll``. All values hex.

Transient objects are flushed before each call returns: nothing is left in the TPM's few
slots, and each call opens and closes its own connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tpm.connect import TpmError, open_tpm
from tpm.counter import nv_index
from tpm.signer import KEY_HANDLE, persistent, storage_primary

if TYPE_CHECKING:
    from tpm2_pytss import ESAPI

EK_CERT_INDEX = 0x01C00002  # RSA 2048 EK certificate (TCG EK Credential Profile)
NV_CHUNK = 512


class Attestor(Protocol):
    def begin(self) -> dict[str, str]: ...

    def finish(self, credential: dict[str, str], challenge: str) -> dict[str, str]: ...


class AttestError(TpmError):
    """The TPM could not attest (no EK certificate, no device key, a refused command)."""


def ak_template() -> Any:
    from tpm2_pytss import TPM2B_PUBLIC, TPMA_OBJECT

    attrs = (
        TPMA_OBJECT.FIXEDTPM
        | TPMA_OBJECT.FIXEDPARENT
        | TPMA_OBJECT.SENSITIVEDATAORIGIN
        | TPMA_OBJECT.USERWITHAUTH
        | TPMA_OBJECT.RESTRICTED
        | TPMA_OBJECT.SIGN_ENCRYPT
    )
    # symmetric null: a restricted key would otherwise get AES, which a signing key refuses
    return TPM2B_PUBLIC.parse("ecc256:ecdsa-sha256:null", objectAttributes=attrs)


def nv_read_all(esapi: ESAPI, index: int) -> bytes:
    """An NV index's whole contents, read with owner authorization, in chunks."""
    from tpm2_pytss import ESYS_TR

    nv = esapi.tr_from_tpmpublic(index)
    public, _name = esapi.nv_read_public(nv)
    size = public.nvPublic.dataSize
    out = b""
    while len(out) < size:
        n = min(NV_CHUNK, size - len(out))
        out += bytes(esapi.nv_read(nv, n, len(out), ESYS_TR.OWNER))
    return out


def ek_certificate(esapi: ESAPI) -> bytes:
    """The RSA EK's certificate (DER) from NV."""
    from tpm2_pytss import TSS2_Exception

    try:
        return nv_read_all(esapi, EK_CERT_INDEX)
    except TSS2_Exception as e:
        raise AttestError(
            f"the TPM has no endorsement key certificate at {EK_CERT_INDEX:#x} ({e})"
        ) from None


@contextlib.contextmanager
def endorsement_key(esapi: ESAPI) -> Iterator[Any]:
    """The RSA 2048 EK, made (again: it is the same key each time) from the standard template
    (or the one the TPM maker stored in NV), flushed afterwards."""
    from tpm2_pytss import ESYS_TR
    from tpm2_pytss.utils import create_ek_template

    def read(index: Any) -> bytes:
        from tpm2_pytss.utils import NoSuchIndex

        if nv_index(esapi, int(index)) is None:
            raise NoSuchIndex(int(index))
        return nv_read_all(esapi, int(index))

    _cert, template = create_ek_template("EK-RSA2048", read)
    ek, _pub, _, _, _ = esapi.create_primary(None, template, ESYS_TR.ENDORSEMENT)
    try:
        yield ek
    finally:
        esapi.flush_context(ek)


@contextlib.contextmanager
def policy_session(esapi: ESAPI) -> Iterator[Any]:
    """A policy session satisfied by PolicySecret(TPM_RH_ENDORSEMENT): the EK's policy."""
    from tpm2_pytss import ESYS_TR, TPM2_ALG, TPM2_SE, TPMT_SYM_DEF

    session = esapi.start_auth_session(
        tpm_key=ESYS_TR.NONE,
        bind=ESYS_TR.NONE,
        session_type=TPM2_SE.POLICY,
        symmetric=TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
        auth_hash=TPM2_ALG.SHA256,
    )
    try:
        esapi.policy_secret(ESYS_TR.ENDORSEMENT, session)
        yield session
    finally:
        with contextlib.suppress(Exception):
            esapi.flush_context(session)


def make_ak(esapi: ESAPI) -> tuple[Any, Any]:
    """A fresh attestation key under the storage primary: (TPM2B_PRIVATE, TPM2B_PUBLIC). The
    private part is the TPM's wrapped blob (useless outside this TPM); nothing stays loaded."""
    private, public, _, _, _ = esapi.create(storage_primary(esapi), None, ak_template())
    return private, public


def activate_and_certify(
    esapi: ESAPI,
    ak: tuple[Any, Any],
    credential: tuple[Any, Any],
    qualifying: bytes,
    key_handle: int = KEY_HANDLE,
) -> dict[str, str]:
    """ActivateCredential (``credential``: TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET) with the
    EK and ``ak``, then Certify of the device key by ``ak`` over ``qualifying``: the
    attestation's fields but the EK certificate (hex)."""
    from tpm2_pytss import ESYS_TR, TPM2_ALG, TPMT_SIG_SCHEME

    key = persistent(esapi, key_handle)
    if key is None:
        raise AttestError(f"the TPM has no device key at {key_handle:#x}")
    key_public, _, _ = esapi.read_public(key)
    loaded = esapi.load(storage_primary(esapi), *ak)
    try:
        with endorsement_key(esapi) as ek, policy_session(esapi) as session:
            secret = esapi.activate_credential(
                loaded, ek, *credential, session1=ESYS_TR.PASSWORD, session2=session
            )
        null_scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL)  # the AK's own
        info, signature = esapi.certify(key, loaded, qualifying, null_scheme)
    finally:
        esapi.flush_context(loaded)
    return {
        "ak_public": ak[1].marshal().hex(),
        "key_public": key_public.marshal().hex(),
        "activated_secret": bytes(secret).hex(),
        "certify_info": bytes(info).hex(),
        "certify_signature": signature.marshal().hex(),
    }


@dataclass
class TpmAttestor:
    """The ``Attestor`` for the device key at ``key_handle`` in the TPM behind ``tcti``.
    Errors are :class:`AttestError` or ``tpm.connect.TpmUnavailable`` (both ``TpmError``),
    each one plain sentence."""

    tcti: str | None = None
    key_handle: int = KEY_HANDLE
    _ak: tuple[Any, Any] | None = field(default=None, repr=False)  # (TPM2B_PRIVATE, TPM2B_PUBLIC)
    _ek_cert: bytes = field(default=b"", repr=False)

    def begin(self) -> dict[str, str]:
        from tpm2_pytss import TSS2_Exception

        with open_tpm(self.tcti) as esapi:
            try:
                self._ek_cert = ek_certificate(esapi)
                self._ak = make_ak(esapi)
            except TSS2_Exception as e:
                raise AttestError(f"the TPM could not make an attestation key ({e})") from None
        return {"ek_certificate": self._ek_cert.hex(), "ak_public": self._ak[1].marshal().hex()}

    def finish(self, credential: dict[str, str], challenge: str) -> dict[str, str]:
        from tpm2_pytss import TPM2B_ENCRYPTED_SECRET, TPM2B_ID_OBJECT, TSS2_Exception

        if self._ak is None:
            raise AttestError("finish() before begin()")
        try:
            blob, _ = TPM2B_ID_OBJECT.unmarshal(bytes.fromhex(credential["credential_blob"]))
            enc, _ = TPM2B_ENCRYPTED_SECRET.unmarshal(bytes.fromhex(credential["encrypted_secret"]))
            qualifying = bytes.fromhex(challenge)
        except (KeyError, ValueError, TypeError) as e:
            raise AttestError(f"the dock's credential cannot be read ({e})") from None
        with open_tpm(self.tcti) as esapi:
            try:
                fields = activate_and_certify(
                    esapi, self._ak, (blob, enc), qualifying, self.key_handle
                )
            except TSS2_Exception as e:
                raise AttestError(f"the TPM refused to attest ({e})") from None
        return {"ek_certificate": self._ek_cert.hex(), **fields}

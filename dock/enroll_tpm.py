"""Enrolling a key held in a TPM: the dock's side of the attestation (wire: dock/README.md,
"Enrollment").

A device key is Ed25519 (32 bytes: a key in a file, enrolled as ever) or P-256 (the 65-byte
point 0x04||X||Y: a key in a TPM). The dock enrolls a P-256 key only with the TPM's word for
it, checked against the TPM makers' CAs it trusts (dock/tpm_trust.py):

1. ``POST /v1/enroll/challenge`` with the TPM's endorsement key certificate and attestation
   key: the dock makes a credential that only the TPM holding both can activate
   (``dock.attest.make_credential``) and keeps its secret with the challenge
   (``dock.enroll.TpmChallenge``), for one use.
2. ``POST /v1/enroll`` with the attestation: the activated secret (the attestation key is on
   that TPM), and the attestation key's certification of the device key over the challenge
   (the key was made in the TPM and cannot leave it). ``dock.attest.check_attestation``
   checks it all; the dock records the CA that vouched (``attested_by``).

Every refusal is ``AttestationRefused`` (403, code ``attestation``) with its reason in words.
``dock.attest`` (pure Python + cryptography) is imported only when a TPM key is enrolled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crypto.suites import ECDSA_P256, suite_of
from dock.enroll import TpmChallenge
from dock.middleware import Refused
from dock.protocol import Code
from dock.tpm_trust import NO_CA

FILE = "file"
TPM = "tpm"


class AttestationRefused(Refused):
    """A TPM key the dock will not enroll: answered 403 ``attestation``, the detail saying
    why, for the technician."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, Code.ATTESTATION, detail)


@dataclass(frozen=True)
class KeyCustody:
    """Where the enrolled key is held, and who vouched for it (a TPM key only)."""

    key_store: str  # FILE | TPM
    attested_by: str | None = None


def key_store_of(public_key: bytes) -> str:
    """FILE for an Ed25519 key (32 bytes), TPM for a P-256 one (65 bytes, 0x04 first): the
    format's rule (``crypto.suites.suite_of``); ValueError for neither."""
    return TPM if suite_of(public_key) == ECDSA_P256 else FILE


def precheck(public_key: bytes, attested: bool, trusted_cas: Sequence[Any]) -> str:
    """The key's store, once it is clear the dock could enroll it: a TPM key comes with an
    attestation and the dock trusts some TPM CA; an Ed25519 key comes without one."""
    store = key_store_of(public_key)
    if store == FILE:
        if attested:
            raise AttestationRefused(
                "an attestation goes with a P-256 key held in a TPM; this key is Ed25519"
            )
        return store
    if not attested:
        raise AttestationRefused(
            "a P-256 device key is enrolled only with its TPM's attestation "
            '(ask the challenge with {"tpm": ...} and send "attestation")'
        )
    if not trusted_cas:
        raise AttestationRefused(NO_CA)
    return store


def open_credential(
    ek_certificate_hex: str, ak_public_hex: str
) -> tuple[TpmChallenge, dict[str, str]]:
    """The credential for the challenge's answer, and what the challenge keeps of it."""
    from dock.attest import AttestationError, make_credential

    try:
        secret, blob, encrypted = make_credential(
            bytes.fromhex(ek_certificate_hex), bytes.fromhex(ak_public_hex)
        )
    except (AttestationError, ValueError, TypeError) as exc:
        raise AttestationRefused(f"no credential for this TPM: {_reason(exc)}") from None
    answer = {"credential_blob": blob.hex(), "encrypted_secret": encrypted.hex()}
    return TpmChallenge(secret), answer


def check(
    attestation: Mapping[str, str],
    *,
    public_key: bytes,
    challenge: str,
    bound: TpmChallenge | None,
    trusted_cas: Sequence[Any],
) -> KeyCustody:
    """The custody of the TPM key ``public_key`` if ``attestation`` proves it, against the
    challenge ``challenge`` (already taken) and what it bound; else AttestationRefused."""
    from dock.attest import AttestationError, check_attestation

    if bound is None:
        raise AttestationRefused(
            "the challenge was not asked for with this TPM's endorsement key: ask "
            'POST /v1/enroll/challenge with {"tpm": ...}'
        )
    try:
        result = check_attestation(
            dict(attestation),
            public_key=public_key,
            secret=bound.secret,
            qualifying_data=bytes.fromhex(challenge),
            trusted_cas=trusted_cas,
        )
    except (AttestationError, ValueError, TypeError) as exc:
        raise AttestationRefused(f"TPM attestation refused: {_reason(exc)}") from None
    return KeyCustody(TPM, result.attested_by)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    code = getattr(exc, "reason", None)
    return f"{text} ({code})" if isinstance(code, str) and code not in text else text

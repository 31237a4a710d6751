"""The dock's side of enrollment with attestation (issue 17): is the key a device asks to
enroll held in a TPM made by a maker this dock trusts? Pure Python and ``cryptography``: the
TPM structures are read by hand (TPM 2.0 spec part 2), MakeCredential is done as part 1 §24
says, and no TPM library is needed on the dock.

The exchange (the device's side is ``tpm.attest.TpmAttestor``):

1. The device sends its endorsement key's certificate (the EK, an RSA 2048 decryption key
   made from the TCG's standard template; the certificate from the TPM maker's CA) and the
   public area of an attestation key (AK: a restricted signing key, fixedTPM|fixedParent).
2. :func:`make_credential`: the dock encrypts a fresh secret to the EK, bound to the AK's name.
   Only that TPM can recover it (TPM2_ActivateCredential), and only while it holds that AK.
3. The device answers with the recovered secret and a TPM2_Certify of its device key by the
   AK, over the enrollment challenge (qualifyingData).
4. :func:`check_attestation`: the EK certificate chains to a trusted CA, the secret came back,
   the certification is the TPM's own (magic, type, the AK's signature), names the device key
   (its TPM name), over this challenge, and the device key is bound to the TPM
   (fixedTPM|fixedParent|sensitiveDataOrigin) and is the 65-byte key being enrolled.

Refusals are :class:`AttestationError` with a ``reason``: "untrusted_ca", "bad_credential",
"bad_certify", "wrong_key", "not_fixed", "malformed". The EK certificate's validity dates are
not checked (makers issue them for the TPM's life; some never expire).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # cryptography >= 47 keeps CFB among the "decrepit" modes (the TPM's credential uses it)
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB  # type: ignore[assignment,unused-ignore]

from dock.tpm_wire import (
    ALG_ECC,
    ALG_SHA256,
    BOUND,
    DECRYPT,
    ECC_NIST_P256,
    FIXED_PARENT,
    FIXED_TPM,
    GENERATED_VALUE,
    RESTRICTED,
    SIGN,
    AttestationError,
    CertifyInfo,
    Public,
    parse_certify_info,
    parse_public,
    parse_signature,
    public_key_of,
    verify_tpm_signature,
)

Attestation = Mapping[str, str]  # the enroll request's "attestation" object: hex fields
FIELDS = (
    "ek_certificate",
    "ak_public",
    "key_public",
    "activated_secret",
    "certify_info",
    "certify_signature",
)

CREDENTIAL_BYTES = 32  # the secret the TPM recovers (a TPM2B_DIGEST of the EK's nameAlg)
MAX_CHAIN = 8


@dataclass(frozen=True)
class AttestationResult:
    attested_by: str  # the trusted CA's subject (RFC 4514) the EK certificate chains to
    ek_serial: str  # the EK certificate's serial number, hex
    ek_issuer: str = field(default="")  # who issued the EK certificate itself


def check_ak(pub: Public) -> None:
    """An attestation key: restricted (it signs only what the TPM itself made, when the data
    begins with TPM_GENERATED_VALUE), a signing key, bound to its TPM."""
    if not pub.has(RESTRICTED | SIGN) or pub.attributes & DECRYPT:
        raise AttestationError("bad_certify", "the attestation key is not a restricted signing key")
    if not pub.has(FIXED_TPM | FIXED_PARENT):
        raise AttestationError(
            "not_fixed", "the attestation key may leave its TPM (no fixedTPM|fixedParent)"
        )
    public_key_of(pub)


# --- MakeCredential ----------------------------------------------------------------------


def kdfa(
    hash_alg: type[hashes.HashAlgorithm],
    key: bytes,
    label: bytes,
    context_u: bytes,
    context_v: bytes,
    bits: int,
) -> bytes:
    """KDFa (TPM 2.0 part 1, §11.4.10.2): SP 800-108 counter mode with HMAC; the label is
    followed by its terminating zero byte."""
    out = b""
    counter = 0
    while len(out) * 8 < bits:
        counter += 1
        mac = hmac.new(key, digestmod=hash_alg().name)
        mac.update(struct.pack(">I", counter) + label + b"\0" + context_u + context_v)
        mac.update(struct.pack(">I", bits))
        out += mac.digest()
    return out[: (bits + 7) // 8]


def ek_public_key(ek_cert_der: bytes) -> tuple[x509.Certificate, rsa.RSAPublicKey]:
    try:
        cert = x509.load_der_x509_certificate(ek_cert_der)
        key = cert.public_key()
        # cryptography reads a certificate's fields when first asked: ask here, where a
        # garbled one is "malformed", not later as a ValueError
        cert.issuer.rfc4514_string(), cert.subject.rfc4514_string(), cert.serial_number
    except Exception as e:  # noqa: BLE001 - untrusted DER: cryptography raises ValueError,
        # InvalidVersion, UnsupportedAlgorithm, TypeError (a garbled name's string type), ...;
        # hypothesis found each by flipping one bit. Whatever it is, the certificate is malformed
        raise AttestationError("malformed", f"the EK certificate cannot be read: {e}") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 2048:
        raise AttestationError("malformed", "the endorsement key is not an RSA 2048 key")
    return cert, key


def binding(ek_cert_der: bytes, ak_public: bytes) -> bytes:
    return hashlib.sha256(b"bwv:credential-binding:v1\0" + ek_cert_der + b"\0" + ak_public).digest()


def make_credential(ek_cert_der: bytes, ak_public: bytes) -> tuple[bytes, bytes, bytes]:
    """(secret, credential_blob, encrypted_secret): a fresh credential encrypted to the EK
    (RSA 2048, standard template: nameAlg SHA-256, AES-128-CFB) for the AK's name.

    ``credential_blob`` is a marshalled TPM2B_ID_OBJECT and ``encrypted_secret`` a
    TPM2B_ENCRYPTED_SECRET (what TPM2_ActivateCredential takes). ``secret`` is for the dock
    alone (keep it with the challenge; never send it): the credential the TPM will recover,
    followed by a hash binding it to this EK certificate and AK, which
    :func:`check_attestation` checks."""
    _cert, ek_key = ek_public_key(ek_cert_der)
    ak = parse_public(ak_public)
    check_ak(ak)
    credential = os.urandom(CREDENTIAL_BYTES)
    seed = os.urandom(32)
    encrypted_seed = ek_key.encrypt(
        seed,
        padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"IDENTITY\0"
        ),
    )
    name = ak.name
    sym_key = kdfa(hashes.SHA256, seed, b"STORAGE", name, b"", 128)
    plain = struct.pack(">H", len(credential)) + credential  # TPM2B_DIGEST
    encryptor = Cipher(algorithms.AES(sym_key), CFB(b"\0" * 16)).encryptor()
    enc_identity = encryptor.update(plain) + encryptor.finalize()
    hmac_key = kdfa(hashes.SHA256, seed, b"INTEGRITY", b"", b"", 256)
    outer = hmac.new(hmac_key, enc_identity + name, "sha256").digest()
    id_object = struct.pack(">H", len(outer)) + outer + enc_identity
    blob = struct.pack(">H", len(id_object)) + id_object
    encrypted_secret = struct.pack(">H", len(encrypted_seed)) + encrypted_seed
    return credential + binding(ek_cert_der, ak_public), blob, encrypted_secret


# --- the EK certificate's chain ---------------------------------------------------------


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Issuer name and signature, one hop (no path-validation policy: EK certificates break
    the WebPKI rules cryptography's verifier applies)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def chain_to_trusted(
    cert: x509.Certificate,
    trusted: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
) -> x509.Certificate:
    """The trusted CA the certificate chains to (as high up as the trusted set goes)."""
    current, anchor = cert, None
    for _ in range(MAX_CHAIN):
        up = next((c for c in trusted if c != current and issued_by(current, c)), None)
        if up is not None:
            anchor = up
        else:
            if anchor is not None:
                break
            up = next((c for c in intermediates if c != current and issued_by(current, c)), None)
            if up is None:
                break
        if up.subject == up.issuer and issued_by(up, up):
            break  # a root
        current = up
    if anchor is None:
        raise AttestationError(
            "untrusted_ca",
            "the endorsement key's certificate does not chain to a CA this dock trusts "
            f"(issuer: {cert.issuer.rfc4514_string()})",
        )
    return anchor


# --- the whole check --------------------------------------------------------------------


def field_bytes(att: Attestation, name: str) -> bytes:
    value = att.get(name) if isinstance(att, Mapping) else None
    if not isinstance(value, str):
        raise AttestationError("malformed", f"the attestation has no {name}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise AttestationError("malformed", f"the attestation's {name} is not hex") from None


def check_certify(att: Attestation, ak: Public, qualifying_data: bytes) -> CertifyInfo:
    info_raw = field_bytes(att, "certify_info")
    info = parse_certify_info(info_raw)
    sig = parse_signature(field_bytes(att, "certify_signature"))
    if info.magic != GENERATED_VALUE:
        raise AttestationError("bad_certify", "the certification was not made by a TPM (magic)")
    if not verify_tpm_signature(ak, sig, info_raw):
        raise AttestationError(
            "bad_certify", "the certification's signature is not the attestation key's"
        )
    if not hmac.compare_digest(info.extra_data, qualifying_data):
        raise AttestationError(
            "bad_certify", "the certification is not over this enrollment's challenge"
        )
    return info


def check_device_key(att: Attestation, info: CertifyInfo, public_key: bytes) -> None:
    key = parse_public(field_bytes(att, "key_public"))
    if key.name_alg != ALG_SHA256:
        raise AttestationError("wrong_key", "the device key's name algorithm is not SHA-256")
    if not hmac.compare_digest(info.name, key.name):
        raise AttestationError("wrong_key", "the certification names another key than key_public")
    if not key.has(BOUND):
        raise AttestationError(
            "not_fixed",
            "the device key was not made in its TPM or may leave it "
            "(fixedTPM|fixedParent|sensitiveDataOrigin not all set)",
        )
    if key.type != ALG_ECC or key.curve != ECC_NIST_P256 or not key.has(SIGN):
        raise AttestationError("wrong_key", "the device key is not a P-256 signing key")
    x, y = (v.rjust(32, b"\0") for v in key.unique)
    if not hmac.compare_digest(b"\x04" + x + y, public_key):
        raise AttestationError("wrong_key", "the certified key is not the key being enrolled")


def check_attestation(
    att: Attestation,
    *,
    public_key: bytes,
    secret: bytes,
    qualifying_data: bytes,
    trusted_cas: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
) -> AttestationResult:
    """Accept the attestation of ``public_key`` (65 bytes) or raise :class:`AttestationError`.
    ``secret`` is what :func:`make_credential` gave for this challenge; ``qualifying_data``
    the challenge's 32 bytes; ``intermediates`` CA certificates that may complete the chain
    but are not trusted by themselves."""
    ek_der = field_bytes(att, "ek_certificate")
    ak_raw = field_bytes(att, "ak_public")
    ek_cert, _key = ek_public_key(ek_der)
    anchor = chain_to_trusted(ek_cert, trusted_cas, intermediates)
    activated = field_bytes(att, "activated_secret")
    expected, bound = secret[:CREDENTIAL_BYTES], secret[CREDENTIAL_BYTES:]
    if not hmac.compare_digest(bound, binding(ek_der, ak_raw)):
        raise AttestationError(
            "bad_credential", "the attestation names other keys than the challenge was made for"
        )
    if len(expected) != CREDENTIAL_BYTES or not hmac.compare_digest(activated, expected):
        raise AttestationError("bad_credential", "the TPM did not recover the dock's credential")
    ak = parse_public(ak_raw)
    check_ak(ak)
    info = check_certify(att, ak, qualifying_data)
    check_device_key(att, info, public_key)
    return AttestationResult(
        attested_by=anchor.subject.rfc4514_string(),
        ek_serial=format(ek_cert.serial_number, "x"),
        ek_issuer=ek_cert.issuer.rfc4514_string(),
    )

"""Check an RFC 3161 time-stamp token against a digest and a CA: ``verify_token``.

A token (a TimeStampToken: CMS SignedData over a TSTInfo) is accepted only when, in this
order (each failure is a ``TokenError`` with its own ``reason``):

1. ``malformed``: it parses as a TimeStampToken whose TSTInfo is version 1 with a SHA-256
   message imprint and a GeneralizedTime genTime;
2. ``untrusted``: the signer's certificate (carried in the token) was issued by the given
   CA's certificate (its signature verifies under the CA's key, its issuer is the CA's
   subject), directly or through CA certificates the token carries, and all of them were
   valid at genTime;
3. ``not_a_tsa``: that certificate's extended key usage is critical and is timeStamping
   (RFC 3161 2.3);
4. ``bad_signature``: the CMS signature verifies (signed attributes, the content digest, the
   ESS signing certificate: ``rfc3161-client``);
5. ``wrong_digest``: the message imprint is the given SHA-256 digest.

The answer is genTime in Unix microseconds (the TSA's clock; ``openssl ts`` with
``clock_precision_digits = 6`` gives microseconds, others may give whole seconds).

``cryptography`` and ``rfc3161-client`` are imported inside the functions: importing this
module loads neither (tests/test_imports.py).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from tsa import der

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from rfc3161_client import TimeStampResponse

MAX_INTERMEDIATES = 4
REASONS = ("malformed", "untrusted", "not_a_tsa", "bad_signature", "wrong_digest")
_GENTIME = re.compile(rb"(\d{14})(?:\.(\d{1,6}))?Z")


class TokenError(Exception):
    """The token is not accepted; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def verify_token(token: bytes, digest_sha256: bytes, ca_pem: bytes) -> int:
    """genTime of ``token`` in Unix microseconds, once the token is checked as the module's
    docstring says; a ``TokenError`` otherwise."""
    if len(digest_sha256) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    ca = _load_ca(ca_pem)
    response = _parse(token)
    gen_time_us = gen_time_of(token)
    if int(response.tst_info.gen_time.timestamp()) != gen_time_us // 1_000_000:
        raise TokenError("malformed", "the token's genTime cannot be read consistently")
    signer, certs = _signer_certificate(response)
    _check_chain(signer, certs, ca, gen_time_us)
    _check_timestamping(signer)
    _check_signature(response, ca, digest_sha256)
    return gen_time_us


def _load_ca(ca_pem: bytes) -> Certificate:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        raise TokenError(
            "untrusted", f"the CA certificate given is not a PEM certificate ({exc})"
        ) from None


def _parse(token: bytes) -> TimeStampResponse:
    from rfc3161_client import decode_timestamp_response
    from rfc3161_client.verify import SHA256_OID

    try:
        token = der.with_sorted_certificates(token)  # what openssl sends unsorted
        response = decode_timestamp_response(der.wrap_token(token))
        info = response.tst_info
        algorithm = info.message_imprint.hash_algorithm.dotted_string
        version = info.version
    except (ValueError, der.DerError) as exc:
        raise TokenError("malformed", f"not an RFC 3161 time-stamp token ({exc})") from None
    if version != 1:
        raise TokenError("malformed", f"TSTInfo version {version}, not 1")
    if algorithm != SHA256_OID:
        raise TokenError("malformed", f"the message imprint is not SHA-256 ({algorithm})")
    return response


def gen_time_of(token: bytes) -> int:
    """genTime, Unix microseconds, read from the TSTInfo's DER (``rfc3161-client`` drops
    the fraction of a second). Does not check the token."""
    try:
        info = der.children(der.read_whole(tst_info_der(token), der.SEQUENCE).value)
        # version, policy, messageImprint, serialNumber, genTime
        gen = info[4]
    except (der.DerError, IndexError) as exc:
        raise TokenError("malformed", f"no TSTInfo in the token ({exc})") from None
    m = _GENTIME.fullmatch(gen.value)
    if gen.tag != 0x18 or m is None or (m.group(2) or b"").endswith(b"0"):
        raise TokenError("malformed", "the token's genTime is not a DER GeneralizedTime")
    try:
        whole = dt.datetime.strptime(m.group(1).decode(), "%Y%m%d%H%M%S")
    except ValueError:
        raise TokenError("malformed", "the token's genTime is not a date") from None
    seconds = int(whole.replace(tzinfo=dt.UTC).timestamp())
    fraction = (m.group(2) or b"").decode().ljust(6, "0")
    return seconds * 1_000_000 + int(fraction)


def tst_info_der(token: bytes) -> bytes:
    """The TSTInfo's DER: ContentInfo [0] SignedData, encapContentInfo [0] OCTET STRING."""
    content_info = der.children(der.read_whole(token, der.SEQUENCE).value)
    signed_data = der.children(der.read_whole(content_info[1].value, der.SEQUENCE).value)
    encap = der.children(signed_data[2].value)  # version, digestAlgorithms, encapContentInfo
    if content_info[1].tag != 0xA0 or encap[1].tag != 0xA0:
        raise der.DerError("not a SignedData with content")
    return der.read_whole(encap[1].value, der.OCTET_STRING).value


def _signer_certificate(response: TimeStampResponse) -> tuple[Certificate, list[Certificate]]:
    """The signer's certificate and all those the token carries."""
    from cryptography import x509

    signed = response.signed_data
    infos = list(signed.signer_infos)
    if len(infos) != 1:
        raise TokenError("malformed", f"{len(infos)} signers, not one")
    try:
        certs = [x509.load_der_x509_certificate(c) for c in signed.certificates]
    except ValueError as exc:
        raise TokenError(
            "malformed", f"a certificate in the token does not parse ({exc})"
        ) from None
    for cert in certs:
        if cert.issuer == infos[0].issuer and cert.serial_number == infos[0].serial_number:
            return cert, certs
    raise TokenError("untrusted", "the token does not carry its signer's certificate")


def _check_chain(
    signer: Certificate, carried: list[Certificate], ca: Certificate, gen_time_us: int
) -> None:
    """``signer`` is issued by ``ca``, directly or through CA certificates the token carries
    (at most ``MAX_INTERMEDIATES``), each valid at genTime."""
    at = dt.datetime.fromtimestamp(gen_time_us / 1e6, dt.UTC)
    if not _is_ca(ca):
        raise TokenError("untrusted", "the certificate given as the CA is not a CA's")
    cert, chain = signer, [signer]
    while not _issued_by(cert, ca):
        parent = next(
            (c for c in carried if c not in chain and _is_ca(c) and _issued_by(cert, c)), None
        )
        if parent is None or len(chain) > MAX_INTERMEDIATES:
            raise TokenError(
                "untrusted",
                f"the TSA certificate ({signer.subject.rfc4514_string()}) is not issued by the "
                f"given CA ({ca.subject.rfc4514_string()})",
            )
        cert = parent
        chain.append(parent)
    for c in (*chain, ca):
        if not c.not_valid_before_utc <= at <= c.not_valid_after_utc:
            what = "TSA" if c is signer else "CA"
            raise TokenError(
                "untrusted",
                f"the {what} certificate {c.subject.rfc4514_string()} was not valid at genTime",
            )


def _issued_by(child: Certificate, parent: Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: Certificate) -> bool:
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_timestamping(signer: Certificate) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TokenError(
            "not_a_tsa", "the signer's certificate has no extended key usage"
        ) from None
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TokenError(
            "not_a_tsa",
            "the signer's certificate is not a TSA's (extended key usage must be critical "
            "and timeStamping alone)",
        )


def _check_signature(response: TimeStampResponse, ca: Certificate, digest: bytes) -> None:
    from rfc3161_client import VerificationError, VerifierBuilder

    verifier = VerifierBuilder().add_root_certificate(ca).build()
    try:
        verifier.verify(response, digest)
    except VerificationError as exc:
        if str(exc) == "Mismatch between messages":
            raise TokenError(
                "wrong_digest", "the token is for another digest than the one checked"
            ) from None
        raise TokenError(
            "bad_signature", f"the token's signature does not verify ({exc})"
        ) from None


def token_serial(token: bytes) -> int:
    """The TSTInfo's serialNumber (unique per TSA), read without checking the token."""
    try:
        info = der.children(der.read_whole(tst_info_der(token), der.SEQUENCE).value)
        return der.read_int(info[3])
    except (der.DerError, IndexError) as exc:
        raise TokenError("malformed", f"no TSTInfo in the token ({exc})") from None

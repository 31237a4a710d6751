"""TLS for the dock, with one key: the dock's Ed25519 signing key is also its TLS key.

The dock makes itself a self-signed Ed25519 certificate for its own key on first start
(``tls.crt``, with the key in PEM as ``tls.key``, mode 0600, beside ``dock.key``). A camera
pins the dock's public key once, at provisioning; on every connection it checks, during the
TLS handshake and before one byte of a request is sent, that the certificate the server shows
holds exactly that key (``pinned_client_context``). No certificate authority, no host name:
the pinned key is the dock's identity, for the channel and for its signed answers alike.
Only TLS 1.3 is spoken, both ways.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nacl.signing import SigningKey

from dock.keys import KeyFileError, write_secret

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"
CERT_DAYS = 20 * 365  # the pin is the key, not the certificate: its dates carry no trust


class PinError(ssl.SSLCertVerificationError):
    """The server's certificate does not hold the pinned dock key."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def _private(key: SigningKey) -> Ed25519PrivateKey:
    # the dock's side only: a camera never imports ``cryptography``
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(key.encode())


def make_certificate(key: SigningKey, now: datetime.datetime | None = None) -> bytes:
    """A self-signed certificate (PEM) for the dock's Ed25519 ``key``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    now = now or datetime.datetime.now(datetime.UTC)
    priv = _private(key)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bwv dock")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(priv.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(  # for tools that check names (curl --cacert tls.crt on the dock itself)
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .sign(priv, None)
    )
    return cert.public_bytes(serialization.Encoding.PEM)


ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # RFC 8410


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at ``at``: (tag, start of its content, end of its content)."""
    if at + 2 > len(data):
        raise ValueError("truncated")
    tag, first = data[at], data[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 0 < count <= 4 or at + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + length > len(data):
        raise ValueError("truncated")
    return tag, at, at + length


def _spki(der: bytes) -> bytes:
    """The subjectPublicKeyInfo of an X.509 certificate, found by walking its structure
    (never by searching bytes: an extension could hold a copy of another key)."""
    tag, start, _ = _tlv(der, 0)  # Certificate
    if tag != 0x30:
        raise ValueError("not a certificate")
    tag, at, _ = _tlv(der, start)  # tbsCertificate
    if tag != 0x30:
        raise ValueError("not a certificate")
    fields = 6  # [version], serial, signature, issuer, validity, subject, then the key
    tag, _, end = _tlv(der, at)
    if tag == 0xA0:  # the explicit version
        at = end
    for _ in range(fields - 1):
        _, _, at = _tlv(der, at)
    tag, _, end = _tlv(der, at)
    if tag != 0x30:
        raise ValueError("no subject public key")
    return der[at:end]


def certificate_key(pem_or_der: bytes) -> bytes:
    """The raw Ed25519 public key a certificate holds (KeyFileError if it holds another kind).
    Pure Python: a camera checks the dock's certificate without the ``cryptography`` package."""
    der = pem_or_der
    if pem_or_der.lstrip().startswith(b"-----"):
        body = b"".join(
            line for line in pem_or_der.strip().splitlines() if not line.startswith(b"-----")
        )
        try:
            der = base64.b64decode(body, validate=True)
        except ValueError:
            raise KeyFileError("not a certificate (bad PEM)") from None
    try:
        spki = _spki(der)
    except ValueError as exc:
        raise KeyFileError(f"not a certificate ({exc})") from None
    if len(spki) != 44 or not spki.startswith(ED25519_SPKI_PREFIX):
        raise KeyFileError("the certificate does not hold an Ed25519 key")
    return spki[12:]


def ensure_tls_files(store_dir: Path, key: SigningKey, given_cert: Path | None = None) -> TlsFiles:
    """The dock's certificate and TLS key in ``store_dir``, made on first use.

    ``given_cert`` (``bwv dock serve --tls-cert``): a certificate for the dock's own key (e.g.
    one an agency CA signed); refused if it holds another key, since cameras pin that key."""
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    from cryptography.hazmat.primitives import serialization

    key_path = Path(store_dir) / TLS_KEY_FILE
    pem = _private(key).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if not key_path.exists() or key_path.read_bytes() != pem:
        write_secret(key_path, pem)
    if given_cert is not None:
        if certificate_key(Path(given_cert).read_bytes()) != bytes(key.verify_key):
            raise KeyFileError(
                f"{given_cert}: the certificate is not for this dock's key (cameras pin that "
                "key: the certificate must hold it)"
            )
        return TlsFiles(Path(given_cert), key_path)
    cert_path = Path(store_dir) / TLS_CERT_FILE
    try:
        current = certificate_key(cert_path.read_bytes()) if cert_path.exists() else None
    except KeyFileError:
        current = None
    if current != bytes(key.verify_key):
        write_secret(cert_path, make_certificate(key))
    return TlsFiles(cert_path, key_path)


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The server side: TLS 1.3 only, the dock's certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(files.cert), str(files.key))
    return ctx


def _check_peer(sslobj: Any, accept: Callable[[bytes], bool]) -> None:
    der = sslobj.getpeercert(binary_form=True)
    try:
        key = certificate_key(der) if der else None
    except KeyFileError:
        key = None
    if key is None or not accept(key):
        raise PinError("the server's certificate does not hold the pinned dock key")


def pinned_client_context(accept: Callable[[bytes], bool]) -> ssl.SSLContext:
    """A client context that completes a handshake only with a server whose certificate
    holds a key ``accept`` takes (normally: ``lambda k: k == pinned``). The check runs inside
    the handshake, so nothing is sent to any other server. TLS 1.3 only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # the identity is the pinned key, not a name
    ctx.verify_mode = ssl.CERT_NONE  # no CA: checked against the pin below, or refused

    class PinnedSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            try:
                _check_peer(self, accept)
            except PinError:
                self.close()
                raise

    class PinnedObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            _check_peer(self, accept)

    ctx.sslsocket_class = PinnedSocket
    ctx.sslobject_class = PinnedObject
    return ctx


def pinned_to(dock_public_key: bytes) -> ssl.SSLContext:
    """A client context for the dock whose public key is ``dock_public_key``."""
    pinned = bytes(dock_public_key)
    return pinned_client_context(lambda key: key == pinned)


def fingerprint(public_key: bytes) -> str:
    """The dock key's fingerprint as ``bwv dock serve`` prints it: SHA-256, 64 hex digits
    (its first 16 are the key id)."""
    return hashlib.sha256(bytes(public_key)).hexdigest()


class FirstSeen:
    """The key of the first dock that completes a handshake, for the caller to pin: any key
    (``bwv provision --trust-first-dock``), or only one with the given fingerprint (or the
    key itself, in hex: ``--dock-key`` as the technician read it off the dock)."""

    def __init__(self, match: str | None = None) -> None:
        self.match = match.strip().lower() if match else None
        self.key: bytes | None = None

    def __call__(self, key: bytes) -> bool:
        if self.match is not None and self.match not in (key.hex(), fingerprint(key)):
            return False
        if self.key is None:
            self.key = key
        return key == self.key

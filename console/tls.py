"""The console's HTTPS certificate: its own ECDSA P-256 key (``STORE/console.key``, mode 0600)
and a self-signed certificate for it (``STORE/console.crt``, 0644), made on first use and
renewed when near its end. Not the dock's key: browsers speak no Ed25519 TLS, and the
console's certificate is what a person's browser is asked to accept (or an agency's own, given
with ``--console-cert``/``--console-key``).

The certificate names localhost, 127.0.0.1, ::1 and the address the console listens on, so a
tablet on the dock's network can reach it by that address. Its SHA-256 fingerprint (of the
DER certificate) is what ``bwv dock serve`` prints, for a person to compare with what the
browser shows before accepting it.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.durable import write_atomic
from dock.keys import write_secret
from dock.tls import TlsFiles

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

CONSOLE_KEY_FILE = "console.key"
CONSOLE_CERT_FILE = "console.crt"
CERT_DAYS = 397  # browsers' longest for a server certificate (a self-signed one too, some)
RENEW_DAYS = 30  # a certificate this close to its end is made again
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


class ConsoleTlsError(ValueError):
    """The console's certificate or key cannot be used (one line for the user)."""


def ensure_console_tls(
    store_dir: Path,
    names: Iterable[str] = (),
    *,
    given_cert: Path | None = None,
    given_key: Path | None = None,
    now: datetime.datetime | None = None,
) -> TlsFiles:
    """The console's certificate and key: the given pair (checked to match), else
    ``STORE/console.crt`` and ``STORE/console.key``, made (or renewed) as needed for
    ``names`` (host names or addresses besides localhost)."""
    if (given_cert is None) != (given_key is None):
        raise ConsoleTlsError("--console-cert and --console-key go together (give both)")
    if given_cert is not None and given_key is not None:
        return _given(Path(given_cert), Path(given_key))
    now = now or datetime.datetime.now(datetime.UTC)
    store_dir = Path(store_dir)
    key = _load_or_make_key(store_dir / CONSOLE_KEY_FILE)
    wanted = _names(names)
    cert_path = store_dir / CONSOLE_CERT_FILE
    if not _still_good(cert_path, key, wanted, now):
        write_atomic(cert_path, make_certificate(key, wanted, now), mode=0o644)
    return TlsFiles(cert_path, store_dir / CONSOLE_KEY_FILE)


def fingerprint(cert_path: Path) -> str:
    """SHA-256 of the certificate (DER), as browsers show it: ``AB:CD:...``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def make_certificate(
    key: EllipticCurvePrivateKey, names: list[str], now: datetime.datetime
) -> bytes:
    """A self-signed certificate (PEM) for ``key``, valid for ``names``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bwv dock console")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# --------------------------------------------------------------------------- internals


def _names(extra: Iterable[str]) -> list[str]:
    out = list(DEFAULT_NAMES)
    for n in extra:
        n = n.strip().strip("[]")
        if n and n not in ("0.0.0.0", "::") and n not in out:  # "every address" is no name
            out.append(n)
    return out


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _load_or_make_key(path: Path) -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConsoleTlsError(f"{path}: readable by others (mode {mode:o}); it must be 0600")
        return _load_key(path)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_secret(path, pem)
    return key


def _load_key(path: Path) -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise ConsoleTlsError(f"{path}: not a PEM private key without a password") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConsoleTlsError(f"{path}: neither an ECDSA nor an RSA key (what browsers take)")
    return key  # type: ignore[return-value]


def _still_good(
    cert_path: Path, key: EllipticCurvePrivateKey, names: list[str], now: datetime.datetime
) -> bool:
    """The certificate at ``cert_path`` is for ``key``, names every one of ``names`` and is
    not near its end."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    if cert.public_key() != key.public_key():
        return False
    if cert.not_valid_after_utc - now < datetime.timedelta(days=RENEW_DAYS):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(g in san for g in _general_names(names))


def _given(cert_path: Path, key_path: Path) -> TlsFiles:
    """An agency's own certificate and key: readable, a key that matches."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except OSError as exc:
        raise ConsoleTlsError(f"{cert_path}: {exc.strerror}") from None
    except ValueError:
        raise ConsoleTlsError(f"{cert_path}: not a PEM certificate") from None
    if not os.access(key_path, os.R_OK):
        raise ConsoleTlsError(f"{key_path}: cannot be read")
    key = _load_key(key_path)
    if cert.public_key() != key.public_key():
        raise ConsoleTlsError(f"{cert_path}: the certificate is not for the key {key_path}")
    return TlsFiles(cert_path, key_path)

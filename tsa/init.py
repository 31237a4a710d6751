"""``bwv tsa init``: a new TSA state folder (see tsa/authority.py for its files).

The certificates are made with ``cryptography`` (imported here, not at start): a test CA
(self-signed, EC P-256, basicConstraints CA critical, keyUsage keyCertSign) and the TSA's
certificate under it (EC P-256, keyUsage digitalSignature critical, extendedKeyUsage
timeStamping critical, RFC 3161 2.3). The folder is built beside its final place and renamed
into it whole, so a crash leaves either no TSA or a complete one.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.durable import fsync_dir, write_atomic
from tsa.authority import (
    CA_FILE,
    CERT_FILE,
    CONFIG_FILE,
    KEY_FILE,
    SERIAL_FILE,
    TsaState,
    TsaStateError,
    openssl_config,
    write_serial,
)

if TYPE_CHECKING:
    from cryptography.x509 import KeyUsage

CA_DAYS = 3650
TSA_DAYS = 1825
BACKDATE = dt.timedelta(days=1)  # a verifier whose clock is a little behind still accepts it


@dataclass(frozen=True)
class InitResult:
    state: TsaState
    created: bool  # False: the folder already held a TSA (nothing was changed)
    ca_fingerprint: str  # SHA-256 of the CA certificate's DER, hex


def init_state(state_dir: Path, name: str = "bwv TSA") -> InitResult:
    """Make a TSA in ``state_dir`` (new, or an empty folder); a folder that already holds
    a whole TSA is left as it is. Anything else there: TsaStateError."""
    state = TsaState(Path(state_dir))
    if state.dir.is_dir() and any(state.dir.iterdir()):
        if state.missing():
            raise TsaStateError(
                f"{state.dir}: not empty and not a TSA state folder (missing "
                f"{', '.join(state.missing())}): give a new or empty folder"
            )
        return InitResult(state, False, ca_fingerprint(state.ca_pem))
    if state.dir.exists() and not state.dir.is_dir():
        raise TsaStateError(f"{state.dir}: is a file, not a folder")
    parent = state.dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{state.dir.name}.init-", dir=parent))
    try:
        ca_pem, cert_pem, key_pem = make_certificates(name)
        write_atomic(build / KEY_FILE, key_pem, mode=0o600)
        write_atomic(build / CERT_FILE, cert_pem)
        write_atomic(build / CA_FILE, ca_pem)
        write_atomic(build / CONFIG_FILE, openssl_config(state.dir).encode("utf-8"))
        write_serial(build / SERIAL_FILE, 0)
        os.chmod(build, 0o700)
        os.rename(build, state.dir)  # onto a missing or empty folder: atomic
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    fsync_dir(parent)
    return InitResult(state, True, ca_fingerprint(ca_pem))


def ca_fingerprint(ca_pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(ca_pem).fingerprint(hashes.SHA256()).hex()


def make_certificates(name: str) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, TSA certificate, TSA private key), PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    tag = secrets.token_hex(4)  # two inits never make the same CA name
    ca_key = ec.generate_private_key(ec.SECP256R1())
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA {tag}")])
    tsa_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {tag}")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    tsa = (
        x509.CertificateBuilder()
        .subject_name(tsa_name)
        .issuer_name(ca_name)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=TSA_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = tsa_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem), tsa.public_bytes(pem), key_pem


def _key_usage(cert_sign: bool) -> KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )

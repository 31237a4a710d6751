"""The TPM makers' CAs a dock trusts: a device key held in a TPM (P-256) is enrolled only
with an attestation whose endorsement key certificate chains to one of them (dock/attest.py).

They are named in the store directory's ``dock.toml``, as PEM files (each may hold more than
one certificate: a root and its intermediates)::

    tpm_ca = ["/etc/bwv/tpm-ca/infineon-root.pem", "/etc/bwv/tpm-ca/nuvoton-root.pem"]

``bwv dock init/serve --tpm-ca PEM`` (repeatable) sets the list, in place of the one before;
without it the dock uses what the file says. A dock that trusts no CA enrolls no TPM key
(and says so); Ed25519 keys held in a file enroll as ever.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.durable import write_atomic
from dock.backends import BACKENDS_FILE, backends_toml, load_backends

if TYPE_CHECKING:
    from cryptography import x509

TPM_CA_KEY = "tpm_ca"
NO_CA = (
    "this dock trusts no TPM maker's CA, so it enrolls no key held in a TPM "
    "(name one: bwv dock serve --tpm-ca PEM)"
)


class TpmCaError(ValueError):
    """The TPM CAs cannot be read or named as given (the text says why, in one line)."""


def tpm_ca_paths(store_dir: Path) -> list[Path]:
    """The CA files ``STORE/dock.toml`` names (none: [])."""
    path = Path(store_dir) / BACKENDS_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TpmCaError(f"{path}: cannot read it ({exc})") from None
    value = raw.get(TPM_CA_KEY, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TpmCaError(f"{path}: {TPM_CA_KEY} is a list of PEM file names")
    return [Path(v) for v in value]


def load_cas(paths: Sequence[Path]) -> tuple[x509.Certificate, ...]:
    """The certificates in the PEM files ``paths``; a TpmCaError naming the file that cannot
    be read or holds no certificate."""
    from cryptography import x509

    out: list[x509.Certificate] = []
    for p in paths:
        try:
            certs = x509.load_pem_x509_certificates(Path(p).read_bytes())
        except OSError as exc:
            raise TpmCaError(f"--tpm-ca {p}: cannot read it ({exc.strerror})") from None
        except ValueError:
            raise TpmCaError(f"--tpm-ca {p}: holds no PEM certificate") from None
        out.extend(certs)
    return tuple(out)


def trusted_tpm_cas(store_dir: Path) -> tuple[x509.Certificate, ...]:
    """The CAs the store's ``dock.toml`` names, read."""
    return load_cas(tpm_ca_paths(store_dir))


def save_tpm_cas(store_dir: Path, paths: Sequence[Path]) -> tuple[x509.Certificate, ...]:
    """Name the CA files ``paths`` (checked first) in ``STORE/dock.toml``, in place of those
    named before, keeping its ``[store]`` table; the certificates."""
    cas = load_cas(paths)
    names = [str(Path(p).resolve()) for p in paths]
    if [str(p) for p in tpm_ca_paths(store_dir)] != names:
        text = tpm_ca_toml(names) + backends_toml(load_backends(store_dir))
        write_atomic(Path(store_dir) / BACKENDS_FILE, text.encode(), mode=0o600)
    return cas


def tpm_ca_toml(names: Sequence[str]) -> str:
    """The ``tpm_ca`` line of ``dock.toml`` (a top-level key: before any table), or ""."""
    if not names:
        return ""
    quoted = ", ".join('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
    return f"{TPM_CA_KEY} = [{quoted}]\n"


def describe_cas(cas: Sequence[x509.Certificate]) -> str:
    """For ``serve``'s start lines and ``status``: whom the dock trusts for TPM keys."""
    if not cas:
        return "none (TPM keys are not enrolled)"
    return "; ".join(c.subject.rfc4514_string() for c in cas)

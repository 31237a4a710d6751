"""``bwv provision --tsa-ca FILE``: pin the time-stamping authority's CA certificate (PEM) at
``keys.tsa_ca``. The camera applies a clock correction over ``clock.max_step_s`` only when
the dock's time answer carries an RFC 3161 token that verifies against it
(dock/clocksync.py)."""

from __future__ import annotations

from pathlib import Path

import click

from crypto.durable import write_atomic

PUBLIC_MODE = 0o644


def read_tsa_ca(path: Path) -> bytes:
    """The PEM certificate(s) in ``path``; a usage error when it holds none."""
    from cryptography import x509

    try:
        pem = Path(path).read_bytes()
        certs = x509.load_pem_x509_certificates(pem)
    except OSError as exc:
        raise click.UsageError(f"--tsa-ca {path}: cannot read ({exc.strerror})") from None
    except ValueError:
        raise click.UsageError(f"--tsa-ca {path}: not a PEM certificate") from None
    if not certs:
        raise click.UsageError(f"--tsa-ca {path}: holds no certificate")
    return pem


def pin_tsa_ca(target: Path, pem: bytes) -> str:
    """Pin ``pem`` at ``target`` atomically; the CA certificate's fingerprint (SHA-256 of
    its DER), the number `bwv tsa init` prints, to compare with the TSA's."""
    from tsa.init import ca_fingerprint

    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, pem, mode=PUBLIC_MODE)
    return ca_fingerprint(pem)
